"""dependencies(spec): what each step waits for; the same answer as the engine's plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.engine.plan import compile_plan
from app.pipelines.spec import PipelineSpec
from app.pipelines.validate import dependencies, validate_source

from .fakes import FakeCatalog

VALID = sorted((Path(__file__).resolve().parent.parent / "golden" / "valid").glob("*.yaml"))


def test_references_in_with_if_for_each_and_needs() -> None:
    spec = PipelineSpec.model_validate(
        {
            "version": 1,
            "name": "deps",
            "steps": [
                {"id": "a", "uses": "core.set", "with": {"value": 1}},
                {"id": "b", "uses": "core.set", "with": {"value": {"x": ["${{ steps.a.output }}"]}}},
                {"id": "c", "uses": "core.set", "if": "steps.b.status == 'succeeded'", "with": {"value": 1}},
                {"id": "d", "uses": "core.set", "for_each": "${{ steps['c'].output }}", "with": {"value": 1}},
                {"id": "e", "uses": "core.filter", "with": {"items": [], "where": "item in steps.d.output"}},
                {"id": "f", "uses": "core.set", "needs": ["a", "e"], "with": {"value": "${{ 'steps.b' }}"}},
                {"id": "g", "uses": "core.set", "with": {"value": "${{ [steps.g.output, steps.z] }}"}},
                {"id": "h", "uses": "http.request", "on_error_output": "${{ steps.a.output }}"},
            ],
        }
    )
    assert dependencies(spec) == {
        "a": set(),
        "b": {"a"},
        "c": {"b"},
        "d": {"c"},
        "e": {"d"},
        "f": {"a", "e"},
        "g": set(),
        "h": set(),
    }


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_the_engine_plan_waits_for_the_same_steps(path: Path) -> None:
    spec = validate_source(path.read_text(), FakeCatalog()).require_spec()
    plan = compile_plan(spec)
    assert dependencies(spec) == {step_id: set(step.deps) - {step_id} for step_id, step in plan.steps.items()}
