"""compile_plan: what it compiles, and every problem it refuses (all reported at once)."""

from __future__ import annotations

import pytest

from app.engine.evaluation import Evaluator
from app.engine.plan import DEFAULT_TIMEOUT, compile_plan
from app.engine.values import ValueTemplate
from app.errors import PipelineInvalid
from tests.engine.fakes import pipeline


def problems(steps, **kw):
    with pytest.raises(PipelineInvalid) as info:
        compile_plan(pipeline(steps, **kw))
    return [(p["path"], p["code"], p["message"]) for p in info.value.details]


def test_plan_order_deps_and_fields():
    plan = compile_plan(
        pipeline(
            [
                {"id": "post", "uses": "slack.post", "if": "size(steps.top.output) > 0", "with": {"t": "x"}},
                {
                    "id": "top",
                    "uses": "core.sort",
                    "with": {"items": "${{ steps.src.output }}", "by": "item.score * steps.w.output"},
                },
                {"id": "w", "uses": "core.set", "with": {"value": 2}},
                {"id": "src", "uses": "demo.src", "needs": ["w"]},
                {
                    "id": "j",
                    "uses": "core.join",
                    "with": {
                        "left": [],
                        "right": [],
                        "on": {"left": "item.a", "right": "item.b + steps.w.output"},
                    },
                },
            ]
        )
    )
    assert plan.order == ("w", "src", "j", "top", "post")
    assert plan.steps["post"].deps == {"top"}
    assert plan.steps["top"].deps == {"src", "w"}
    assert plan.steps["src"].deps == {"w"}
    assert plan.steps["j"].deps == {"w"}
    top = plan.steps["top"]
    assert isinstance(top.item_fields["by"], Evaluator)
    assert top.params.raw == {"items": "${{ steps.src.output }}"}
    join = plan.steps["j"]
    assert set(join.item_fields) == {"on.left", "on.right"}
    assert join.params.raw == {"left": [], "right": [], "on": {}}
    assert plan.steps["post"].core is None
    assert top.core is not None
    assert top.core.name == "sort"
    assert top.timeout == DEFAULT_TIMEOUT


def test_per_item_fields_are_templates():
    plan = compile_plan(
        pipeline([{"id": "m", "uses": "core.map", "with": {"items": [], "to": {"a": "${{ item }}"}}}])
    )
    assert isinstance(plan.steps["m"].item_fields["to"], ValueTemplate)


def test_unknown_steps_self_reference_and_outputs():
    found = problems(
        [
            {"id": "a", "uses": "core.set", "with": {"value": "${{ steps.nope.output }}"}},
            {"id": "b", "uses": "core.set", "with": {"value": "${{ steps.b.output }}"}},
            {"id": "c", "uses": "demo.x", "needs": ["ghost"]},
        ],
        outputs={"o": "${{ steps.missing.output }}"},
    )
    assert ("steps[0]", "unknown_step", "step `a` refers to an unknown step `nope`") in found
    assert ("steps[1]", "self_reference", "step `b` refers to itself") in found
    assert ("steps[2]", "unknown_step", "step `c` refers to an unknown step `ghost`") in found
    assert ("outputs.o", "unknown_step", "output `o` refers to an unknown step `missing`") in found


def test_cycles_are_reported_with_their_path():
    found = problems(
        [
            {"id": "a", "uses": "demo.x", "with": {"v": "${{ steps.c.output }}"}},
            {"id": "b", "uses": "demo.x", "if": "steps.a.output == 1"},
            {"id": "c", "uses": "demo.x", "needs": ["b"]},
            {"id": "free", "uses": "demo.x"},
        ]
    )
    assert found == [("steps", "cycle", "steps depend on each other in a cycle: a -> c -> b -> a")]


def test_core_params_are_checked():
    found = problems(
        [
            {"id": "f", "uses": "core.filter", "with": {"items": "plain text"}},
            {"id": "s", "uses": "core.sort", "with": {"items": [], "order": "sideways", "extra": 1}},
            {"id": "l", "uses": "core.limit", "with": {"items": [], "count": -1}},
            {"id": "u", "uses": "core.nope"},
            {"id": "r", "uses": "core.regex", "with": {"value": "x", "pattern": "("}},
            {"id": "t", "uses": "core.template", "with": {"items": []}},
        ]
    )
    paths = {(path, code) for path, code, _ in found}
    assert ("steps[0].with.items", "invalid_with") in paths
    assert ("steps[0].with.where", "invalid_with") in paths
    assert ("steps[1].with.order", "invalid_with") in paths
    assert ("steps[1].with.extra", "invalid_with") in paths
    assert ("steps[2].with.count", "invalid_with") in paths
    assert ("steps[3].uses", "unknown_operation") in paths
    assert ("steps[4].with.pattern", "invalid_with") in paths
    assert ("steps[5].with", "invalid_with") in paths
    regex = next(m for p, _, m in found if p == "steps[4].with.pattern")
    assert "invalid pattern '('" in regex
    unknown = next(m for p, _, m in found if p == "steps[3].uses")
    assert unknown.startswith("no built-in step `core.nope`; known: core.count, ")


def test_expression_problems():
    found = problems(
        [
            {"id": "a", "uses": "core.filter", "with": {"items": [], "where": "${{ item.x }}"}},
            {"id": "b", "uses": "core.set", "if": "1 +", "with": {"value": "${{ (1 }}"}},
            {"id": "c", "uses": "core.set", "for_each": "just text", "with": {"value": 1}},
            {"id": "d", "uses": "core.set", "with": {"value": "${{ 1"}},
        ]
    )
    codes = {(path, code) for path, code, _ in found}
    assert codes == {
        ("steps[0].with.where", "expression_syntax"),
        ("steps[1].if", "expression_syntax"),
        ("steps[1].with", "expression_syntax"),
        ("steps[2].for_each", "type"),
        ("steps[3].with", "expression_syntax"),
    }


def test_zero_timeout_and_duplicate_ids():
    found = problems([{"id": "a", "uses": "demo.x", "timeout": 0}, {"id": "a", "uses": "demo.y"}])
    assert ("steps[0].timeout", "type", "a timeout must be longer than 0") in found
    assert ("steps[1].id", "duplicate_step", "step id `a` is used twice") in found


def test_the_error_message_summarises():
    with pytest.raises(PipelineInvalid) as info:
        compile_plan(pipeline([{"id": "a", "uses": "core.set", "with": {"value": "${{ steps.x.output }}"}}]))
    assert info.value.message == (
        "pipeline `test` cannot run: 1 problem; first: steps[0]: step `a` refers to an unknown step `x`"
    )
    assert info.value.status == 422
