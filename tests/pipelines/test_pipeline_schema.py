"""The JSON Schema of the format: committed file up to date, valid draft 2020-12, agrees with validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel

from app.engine.steps import CORE_STEPS
from app.pipelines.loader import load_yaml
from app.pipelines.schema import DEFAULT_PATH, main, pipeline_json_schema, render_schema, write_schema

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / DEFAULT_PATH
GOLDEN = ROOT / "tests" / "golden"
BASE: dict[str, Any] = {"version": 1, "name": "x", "steps": [{"id": "a", "uses": "core.set"}]}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(pipeline_json_schema())


def test_the_committed_schema_is_up_to_date() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render_schema(), (
        "openapi/pipeline.schema.json is stale: run `python -m app.pipelines.schema`"
    )


def test_the_schema_is_valid_draft_2020_12_with_an_id() -> None:
    schema = pipeline_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"]
    assert schema["title"] == "Mashpipe pipeline"
    step = schema["$defs"]["StepSpec"]["properties"]
    assert {"with", "if"} <= set(step)
    assert step["if"]["description"]
    assert step["uses"]["examples"] == [f"core.{name}" for name in CORE_STEPS]


def test_every_field_is_described() -> None:
    schema = pipeline_json_schema()
    for name in ("PipelineSpec", *[n for n in schema["$defs"] if not n.startswith("core.")]):
        node = schema if name == "PipelineSpec" else schema["$defs"][name]
        for field, prop in node.get("properties", {}).items():
            assert prop.get("description"), f"{name}.{field} has no description"


@pytest.mark.parametrize("path", sorted((GOLDEN / "valid").glob("*.yaml")), ids=lambda p: p.name)
def test_valid_golden_files_match_the_schema(path: Path, validator: jsonschema.Draft202012Validator) -> None:
    data = load_yaml(path.read_text()).data
    assert [error.message for error in validator.iter_errors(data)] == []


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ({**BASE, "steps": [{"id": "a", "uses": "core.set", "wiht": {}}]}, ["steps", 0]),
        ({**BASE, "steps": [{"id": "a", "uses": "core.sort", "with": {"items": "x"}}]}, None),
        ({**BASE, "triggers": [{}]}, None),
        ({**BASE, "defaults": {"timeout": "soon"}}, None),
        ({**BASE, "name": "Bad"}, ["name"]),
        ({**BASE, "steps": []}, ["steps"]),
    ],
)
def test_the_schema_refuses_bad_shapes(
    document: dict[str, Any], where: list[Any] | None, validator: jsonschema.Draft202012Validator
) -> None:
    errors = list(validator.iter_errors(document))
    assert errors
    if where is not None:
        assert [list(error.absolute_path) for error in errors] == [where]


def test_connector_operations_can_be_described_too() -> None:
    class EchoParams(BaseModel):
        message: str

    schema = pipeline_json_schema(operations={"demo.echo": EchoParams})
    validator = jsonschema.Draft202012Validator(schema)
    step = {"id": "a", "uses": "demo.echo", "with": {"message": 3}}
    assert list(validator.iter_errors({"version": 1, "name": "x", "steps": [step]}))
    step["with"] = {"message": "hi"}
    assert not list(validator.iter_errors({"version": 1, "name": "x", "steps": [step]}))


def test_write_schema_and_check(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "pipeline.schema.json"
    assert main([str(target), "--check"]) == 1
    assert write_schema(target) is True
    assert write_schema(target) is False
    assert json.loads(target.read_text()) == pipeline_json_schema()
    assert main([str(target), "--check"]) == 0
    target.write_text("{}\n")
    assert main([str(target)]) == 0
    assert main([str(target), "--check"]) == 0
