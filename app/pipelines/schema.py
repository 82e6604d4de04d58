"""The JSON Schema (draft 2020-12) of the pipeline format, generated from the spec models.

Editors use it to complete and check a file as it is typed (``# yaml-language-server: $schema=
.../v1/schemas/pipeline.json``). It is committed as ``openapi/pipeline.schema.json``; a test fails
when that file differs from :func:`render_schema` (regenerate with ``mashpipe openapi`` or
``python -m app.pipelines.schema``).

Beyond the models, the schema knows that a trigger has exactly one kind, what a duration looks
like, and the ``with`` block of every built-in ``core.*`` step (and of connector operations, when
given): a step whose ``uses`` is ``core.filter`` is checked against ``core.filter``'s parameters.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from app.engine.steps.base import CoreStep
from app.pipelines.spec import PipelineSpec

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:mashpipe:schema:pipeline:1"
DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*$"
DEFAULT_PATH = Path("openapi") / "pipeline.schema.json"


def _durations(node: Any) -> None:
    """Give the text member of every duration (``str | int | float``) its pattern, numbers a minimum."""
    if isinstance(node, dict):
        members = node.get("anyOf")
        if isinstance(members, list) and [m.get("type") for m in members if isinstance(m, dict)] == [
            "string",
            "integer",
            "number",
        ]:
            members[0]["pattern"] = DURATION_PATTERN
            members[1]["minimum"] = 0
            members[2]["minimum"] = 0
        for value in node.values():
            _durations(value)
    elif isinstance(node, list):
        for value in node:
            _durations(value)


def _params_schema(model: type[BaseModel], name: str, defs: dict[str, Any]) -> dict[str, Any]:
    """The schema of a ``with`` model under ``$defs[name]``, its own definitions hoisted and renamed."""
    schema = model.model_json_schema(by_alias=True, ref_template=f"#/$defs/{name}.{{model}}")
    for sub_name, sub in schema.pop("$defs", {}).items():
        defs[f"{name}.{sub_name}"] = sub
    schema["title"] = name
    defs[name] = schema
    return {"$ref": f"#/$defs/{name}"}


def pipeline_json_schema(
    *,
    core_steps: Mapping[str, CoreStep] | None = None,
    operations: Mapping[str, type[BaseModel]] | None = None,
    schema_id: str = SCHEMA_ID,
) -> dict[str, Any]:
    """The JSON Schema of a pipeline file.

    ``core_steps`` defaults to the installed built-in steps; ``operations`` maps
    ``CONNECTOR.OPERATION`` to its input model, to describe their ``with`` blocks too (the
    committed schema has none: the installed connectors vary).
    """
    if core_steps is None:
        from app.pipelines.validate import installed_core_steps

        core_steps = installed_core_steps()
    generated = PipelineSpec.model_json_schema(by_alias=True, mode="validation")
    defs: dict[str, Any] = generated.pop("$defs")
    defs["Trigger"]["minProperties"] = 1
    defs["Trigger"]["maxProperties"] = 1
    step = defs["StepSpec"]
    uses_known: list[str] = []
    conditions: list[dict[str, Any]] = []
    typed = [(f"core.{name}", core.Params) for name, core in core_steps.items()]
    typed += sorted((operations or {}).items())
    for uses, model in typed:
        uses_known.append(uses)
        ref = _params_schema(model, uses, defs)
        conditions.append(
            {
                "if": {"properties": {"uses": {"const": uses}}, "required": ["uses"]},
                "then": {"properties": {"with": ref}},
            }
        )
    if uses_known:
        step["properties"]["uses"]["examples"] = uses_known
        step["allOf"] = conditions
    _durations(defs)
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": schema_id,
        "title": "Mashpipe pipeline",
        **{key: value for key, value in generated.items() if key != "title"},
        "$defs": defs,
    }


def render_schema(schema: dict[str, Any] | None = None) -> str:
    """The schema as committed: indented JSON, one trailing newline."""
    return json.dumps(schema or pipeline_json_schema(), indent=2, ensure_ascii=False) + "\n"


def write_schema(path: str | Path = DEFAULT_PATH) -> bool:
    """Write the schema to ``path``; returns whether the file changed."""
    target = Path(path)
    text = render_schema()
    if target.exists() and target.read_text(encoding="utf-8") == text:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    """``python -m app.pipelines.schema [PATH] [--check]``: write the schema, or check it is current."""
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    paths = [arg for arg in args if arg != "--check"]
    target = Path(paths[0]) if paths else DEFAULT_PATH
    if check:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        return 0 if current == render_schema() else 1
    write_schema(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
