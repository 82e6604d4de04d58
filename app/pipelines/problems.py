"""A problem found in a pipeline file, with where it is: ``{line, column, path, code, message}``.

Problems are data, never exceptions: the loader and the validator collect every one of them so a
user sees all that is wrong at once. ``code`` is stable (tests, editors and the API rely on it);
``message`` is for people. ``path`` reads like ``steps[3].with.url`` (``""`` for the whole file).

>>> format_path(("steps", 3, "with", "Content-Type"))
'steps[3].with["Content-Type"]'
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PathKey = str | int
Path = tuple[PathKey, ...]

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

PROBLEM_CODES: dict[str, str] = {
    # YAML (app.pipelines.loader)
    "yaml_syntax": "the text is not valid YAML",
    "duplicate_key": "a key appears twice in one mapping",
    "yaml_alias": "an anchor (&x) or alias (*x): not allowed",
    "yaml_tag": "a tag (!x) other than the core ones: not allowed",
    "non_string_key": "a key that is a number, boolean, null, list or mapping",
    "multiple_documents": "more than one YAML document in the file",
    "too_deep": "the document nests deeper than the limit (64)",
    "too_large": "the file is larger than the limit",
    "unsupported_value": "an infinite or NaN number",
    # shape (app.pipelines.structure)
    "empty": "the file holds nothing",
    "type": "a value of the wrong type",
    "missing": "a required key is missing",
    "unknown_key": "a key the format does not know",
    "invalid_value": "a value outside what the field allows (choices, pattern, range, duration)",
    # steps (app.pipelines.step_checks)
    "duplicate_step": "two steps have the same id",
    "unknown_connector": "`uses` names a connector that is not installed",
    "unknown_operation": "`uses` names an operation (or core step) that does not exist",
    "invalid_with": "`with` does not match the operation's parameters",
    "invalid_for_each": "`for_each` is text that is not exactly one `${{ }}`",
    # inputs and triggers (app.pipelines.trigger_checks)
    "invalid_name": "an input name that expressions cannot use",
    "invalid_default": "an input's default does not match its declaration",
    "invalid_trigger": "a trigger with no kind or more than one",
    "invalid_cron": "a schedule's cron expression is invalid",
    "invalid_timezone": "a schedule's time zone is unknown",
    "invalid_input": "a schedule gives an unknown or invalid input, or misses a required one",
    "unknown_poll": "a poll trigger names a polling trigger the connector does not have",
    # expressions (app.pipelines.expr_checks)
    "expression_syntax": "an expression that does not compile, or an unclosed `${{`",
    "template_in_bare": "`${{ }}` in a field that takes a bare expression (`if`, `where`, `by`...)",
    "unknown_step": "a reference to (or `needs` of) a step that does not exist",
    "unknown_step_field": "`steps.X.` followed by something else than `output` or `status`",
    "dynamic_reference": "`steps[...]` with a computed step id",
    "self_reference": "a step that reads or needs itself",
    "unknown_input": "a reference to an input the pipeline does not declare",
    "unknown_secret": "a reference to a secret the account does not have",
    "unknown_variable": "a variable other than inputs, steps, trigger, secrets, run, item, index",
    "item_out_of_scope": "`item` or `index` where no element is bound",
    "invalid_reference": "a trigger that reads `steps`",
    # graph (app.pipelines.graph)
    "cycle": "steps that wait for each other",
    "secret_in_outputs": "an output that would carry a secret, directly or through core steps",
}
"""Every problem code validation reports, with what it means (documented in docs/pipeline-validation.md)."""


def format_path(path: Path) -> str:
    """``("steps", 3, "with", "url")`` as ``steps[3].with.url``."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _PLAIN_KEY.match(part):
            out.append(f".{part}" if out else part)
        else:
            out.append(f"[{json.dumps(part, ensure_ascii=False)}]")
    return "".join(out)


class Problem(BaseModel):
    """One problem, 1-based ``line``/``column`` of the offending node (or the nearest existing one)."""

    model_config = ConfigDict(frozen=True)

    line: int = Field(ge=1, description="1-based line of the offending node")
    column: int = Field(ge=1, description="1-based column of the offending node")
    path: str = Field(description='Where in the document, like `steps[3].with.url` ("" for the whole file)')
    code: str = Field(description="Stable problem code, e.g. unknown_key, expression_syntax")
    message: str = Field(description="What is wrong, for people")

    def sort_key(self) -> tuple[int, int, str, str]:
        return (self.line, self.column, self.code, self.message)

    def __str__(self) -> str:
        return f"{self.line}:{self.column}: {self.message} [{self.code}]"


def sorted_problems(problems: list[Problem]) -> list[Problem]:
    """Problems in file order, each reported once."""
    seen: set[tuple[Any, ...]] = set()
    unique: list[Problem] = []
    for problem in sorted(problems, key=Problem.sort_key):
        key = (problem.line, problem.column, problem.code, problem.message)
        if key not in seen:
            seen.add(key)
            unique.append(problem)
    return unique
