"""Golden pipeline files: every valid one validates clean, every invalid one gives exactly its problems.

`tests/golden/valid/*.yaml` are realistic pipelines; `tests/golden/invalid/NAME.yaml` each has a
sibling `NAME.expected.json`: `{"problems": [{line, column, code, path}, ...], "secret_names": [...]?}`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from app.engine.steps import CORE_STEPS
from app.pipelines.validate import validate_source

from .fakes import FakeCatalog

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
VALID = sorted((GOLDEN / "valid").glob("*.yaml"))
INVALID = sorted((GOLDEN / "invalid").glob("*.yaml"))
FEATURES = ("for_each", "retry", "timeout", "on_error", "needs", "if")
VALID_SECRETS = {"SLACK_TOKEN", "GITHUB_WEBHOOK_SECRET", "GITHUB_TOKEN"}


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_golden_file_has_no_problem(path: Path) -> None:
    result = validate_source(path.read_text(), FakeCatalog(), secret_names=VALID_SECRETS)
    assert [str(p) for p in result.problems] == []
    assert result.ok
    assert result.spec is not None


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_golden_file_gives_exactly_its_problems(path: Path) -> None:
    expected = json.loads(path.with_suffix(".expected.json").read_text())
    names = expected.get("secret_names")
    result = validate_source(path.read_text(), FakeCatalog(), secret_names=set(names) if names else None)
    found = [{"line": p.line, "column": p.column, "code": p.code, "path": p.path} for p in result.problems]
    assert found == expected["problems"]
    assert not result.ok
    assert result.spec is None
    assert all(p.message for p in result.problems)


def test_every_invalid_file_has_its_expectations() -> None:
    assert len(INVALID) >= 8
    for path in INVALID:
        assert path.with_suffix(".expected.json").exists(), path.name
    for expected in (GOLDEN / "invalid").glob("*.expected.json"):
        assert expected.with_name(expected.name.replace(".expected.json", ".yaml")).exists(), expected.name


def test_valid_files_cover_every_core_step_and_trigger_kind() -> None:
    used_steps: set[str] = set()
    trigger_kinds: set[str] = set()
    features: set[str] = set()
    for path in VALID:
        data = YAML(typ="safe", pure=True).load(path.read_text())
        for step in data["steps"]:
            if step["uses"].startswith("core."):
                used_steps.add(step["uses"].removeprefix("core."))
            features.update(key for key in FEATURES if key in step)
        for trigger in data.get("triggers", []):
            trigger_kinds.update(trigger)
        if data.get("inputs"):
            features.add("inputs")
    assert len(VALID) >= 8
    assert used_steps == set(CORE_STEPS)
    assert trigger_kinds == {"schedule", "webhook", "endpoint", "poll"}
    assert features >= {"for_each", "retry", "timeout", "on_error", "needs", "if", "inputs"}
