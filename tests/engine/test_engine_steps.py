"""Semantics and errors of every core.* step, run through the engine."""

from __future__ import annotations

import pytest

from app.engine.steps import CORE_STEPS
from app.engine.types import StepStatus
from tests.engine.fakes import FakeCaller, pipeline, run, run_step

ITEMS = [
    {"title": "Tea time", "score": 3, "lang": "py"},
    {"title": "Cake walk", "score": 12, "lang": "rs"},
    {"title": "Bun fight", "score": 7, "lang": "py"},
]


async def test_core_steps_registry_is_complete():
    assert set(CORE_STEPS) == {
        "filter", "map", "sort", "limit", "unique", "merge", "join",
        "group", "count", "flatten", "set", "template", "regex", "fail",
    }  # fmt: skip
    for name, step in CORE_STEPS.items():
        assert step.name == name
        assert step.run is not None
        assert step.Params.model_config.get("extra") == "forbid"
        assert step.description


# ----------------------------------------------------------------------------- filter


async def test_filter_keeps_matching_items_in_order():
    result = await run_step("core.filter", {"items": ITEMS, "where": "item.score > 5"})
    assert result.status == StepStatus.SUCCEEDED
    assert result.output == [ITEMS[1], ITEMS[2]]


async def test_filter_sees_inputs_and_index():
    spec = pipeline(
        [{"id": "f", "uses": "core.filter", "with": {"items": ITEMS, "where": "index >= inputs.skip"}}],
        inputs={"skip": {"type": "integer"}},
    )
    result = await run(spec, {"skip": 2})
    assert result.steps["f"].output == [ITEMS[2]]


async def test_filter_where_must_be_boolean():
    result = await run_step("core.filter", {"items": ITEMS, "where": "item.score"})
    assert result.status == StepStatus.FAILED
    assert result.error is not None
    assert result.error.code == "invalid_params"
    assert "where must yield a boolean, got integer on items[0]" in result.error.message


async def test_filter_expression_error_names_the_item():
    items = [{"score": 1}, {"nope": 2}]
    result = await run_step("core.filter", {"items": items, "where": "item.score > 0"})
    assert result.error is not None
    assert result.error.code == "expression_error"
    assert "where failed on items[1]" in result.error.message
    assert "score" in result.error.message


@pytest.mark.parametrize(
    ("items", "kind"),
    [({"a": 1}, "object"), ("text", "string"), (3, "integer"), (True, "boolean")],
)
async def test_list_steps_refuse_non_lists(items, kind):
    spec = pipeline(
        [
            {"id": "v", "uses": "core.set", "with": {"value": items}},
            {"id": "f", "uses": "core.filter", "with": {"items": "${{ steps.v.output }}", "where": "true"}},
        ]
    )
    result = await run(spec)
    step = result.steps["f"]
    assert step.status == StepStatus.FAILED
    assert step.error is not None
    assert step.error.code == "invalid_params"
    assert step.error.message == f"items must be a list, got {kind}"


async def test_list_steps_take_null_as_empty():
    spec = pipeline(
        [
            {"id": "off", "uses": "core.set", "if": "false", "with": {"value": [1]}},
            {"id": "f", "uses": "core.filter", "with": {"items": "${{ steps.off.output }}", "where": "true"}},
            {"id": "c", "uses": "core.count", "with": {"items": "${{ steps.off.output }}"}},
        ]
    )
    result = await run(spec)
    assert result.steps["f"].output == []
    assert result.steps["c"].output == 0


# ----------------------------------------------------------------------------- map


async def test_map_builds_one_value_per_item():
    to = {"name": "${{ lower(item.title) }}", "score": "${{ item.score }}", "at": "#${{ index }}", "k": 1}
    result = await run_step("core.map", {"items": ITEMS[:2], "to": to})
    assert result.output == [
        {"name": "tea time", "score": 3, "at": "#0", "k": 1},
        {"name": "cake walk", "score": 12, "at": "#1", "k": 1},
    ]


async def test_map_to_scalar_and_nested_list():
    result = await run_step("core.map", {"items": ITEMS, "to": ["${{ item.score * 2 }}", "x"]})
    assert result.output == [[6, "x"], [24, "x"], [14, "x"]]
    result = await run_step("core.map", {"items": ITEMS, "to": "${{ item.title }}"})
    assert result.output == ["Tea time", "Cake walk", "Bun fight"]


async def test_map_data_is_never_evaluated_again():
    caller = FakeCaller({"demo.items": [{"text": "${{ 1 + 1 }}"}]})
    to = {"t": "${{ item.text }}", "u": "<${{ item.text }}>", "v": "${{ item.text + '!' }}"}
    spec = pipeline(
        [
            {"id": "src", "uses": "demo.items"},
            {"id": "m", "uses": "core.map", "with": {"items": "${{ steps.src.output }}", "to": to}},
        ]
    )
    result = await run(spec, caller=caller)
    assert result.steps["m"].output == [{"t": "${{ 1 + 1 }}", "u": "<${{ 1 + 1 }}>", "v": "${{ 1 + 1 }}!"}]


async def test_map_null_path_and_missing_key():
    items = [{"a": None}]
    result = await run_step("core.map", {"items": items, "to": "${{ item.a.b }}"})
    assert result.output == [None]
    result = await run_step("core.map", {"items": items, "to": "${{ item.zzz }}"})
    assert result.error is not None
    assert "to failed on items[0]" in result.error.message
    assert "no such key 'zzz'" in result.error.message


# ----------------------------------------------------------------------------- sort


async def test_sort_asc_desc_stable_and_limit():
    items = [{"k": 2, "n": "a"}, {"k": 1, "n": "b"}, {"k": 2, "n": "c"}, {"k": 1, "n": "d"}]
    asc = await run_step("core.sort", {"items": items, "by": "item.k"})
    assert [i["n"] for i in asc.output] == ["b", "d", "a", "c"]
    desc = await run_step("core.sort", {"items": items, "by": "item.k", "order": "desc"})
    assert [i["n"] for i in desc.output] == ["a", "c", "b", "d"]
    top = await run_step("core.sort", {"items": items, "by": "item.k", "order": "desc", "limit": 3})
    assert [i["n"] for i in top.output] == ["a", "c", "b"]


async def test_sort_mixed_types_never_crash_and_null_is_last():
    items = [3, "b", None, 1.5, True, [1], {"a": 1}, "a", None, False, 2]
    asc = await run_step("core.sort", {"items": items})
    assert asc.output == [False, True, 1.5, 2, 3, "a", "b", [1], {"a": 1}, None, None]
    desc = await run_step("core.sort", {"items": items, "order": "desc"})
    assert desc.output == [{"a": 1}, [1], "b", "a", 3, 2, 1.5, True, False, None, None]


async def test_sort_by_cel_expression_and_computed_params():
    spec = pipeline(
        [
            {
                "id": "s",
                "uses": "core.sort",
                "with": {
                    "items": ITEMS,
                    "by": "size(item.title)",
                    "order": "${{ inputs.order }}",
                    "limit": "${{ inputs.n }}",
                },
            }
        ],
        inputs={"order": {"type": "string"}, "n": {"type": "integer"}},
    )
    result = await run(spec, {"order": "desc", "n": 2})
    assert [i["title"] for i in result.steps["s"].output] == ["Cake walk", "Bun fight"]


async def test_sort_bad_computed_order_and_limit():
    result = await run_step("core.sort", {"items": ITEMS, "order": "${{ 'sideways' }}"})
    assert result.error is not None
    assert result.error.message == "order must be 'asc' or 'desc', got 'sideways'"
    result = await run_step("core.sort", {"items": ITEMS, "limit": "${{ 'x' }}"})
    assert result.error is not None
    assert result.error.message == "limit must be an integer, got string"
    result = await run_step("core.sort", {"items": ITEMS, "limit": "${{ -1 }}"})
    assert result.error is not None
    assert result.error.message == "limit must be at least 0, got -1"


async def test_sort_by_timestamps():
    items = [
        {"at": "2024-03-01T00:00:00Z"},
        {"at": "2024-01-01T10:00:00+09:00"},
        {"at": "2024-01-01T00:00:00Z"},
    ]
    result = await run_step("core.sort", {"items": items, "by": "timestamp(item.at)"})
    assert [i["at"] for i in result.output] == [
        "2024-01-01T00:00:00Z",
        "2024-01-01T10:00:00+09:00",  # 01:00 UTC
        "2024-03-01T00:00:00Z",
    ]


# ----------------------------------------------------------------------------- limit


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"count": 2}, [0, 1]),
        ({"count": 2, "offset": 3}, [3, 4]),
        ({"count": 10, "offset": 4}, [4]),
        ({"count": 0}, []),
        ({"count": "${{ 1 + 1 }}", "offset": "${{ 1 }}"}, [1, 2]),
    ],
)
async def test_limit_slices(params, expected):
    result = await run_step("core.limit", {"items": [0, 1, 2, 3, 4], **params})
    assert result.output == expected


# ----------------------------------------------------------------------------- unique


async def test_unique_keeps_first_of_each_key():
    items = [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 1.0, "v": "c"}, {"id": "1", "v": "d"}]
    result = await run_step("core.unique", {"items": items, "by": "item.id"})
    assert [i["v"] for i in result.output] == ["a", "b", "d"]


async def test_unique_whole_items_including_objects_and_bools():
    items = [{"a": 1, "b": 2}, {"b": 2, "a": 1}, 1, True, 1, None, None, [1], [1]]
    result = await run_step("core.unique", {"items": items})
    assert result.output == [{"a": 1, "b": 2}, 1, True, None, [1]]


# ----------------------------------------------------------------------------- merge


async def test_merge_concatenates_and_skips_null_sources():
    spec = pipeline(
        [
            {"id": "a", "uses": "core.set", "with": {"value": [1, 2]}},
            {"id": "dead", "uses": "demo.fail", "on_error": "continue"},
            {
                "id": "m",
                "uses": "core.merge",
                "with": {"sources": ["${{ steps.a.output }}", "${{ steps.dead.output.entries }}", [3]]},
            },
        ]
    )
    result = await run(spec)
    assert result.steps["dead"].status == StepStatus.FAILED
    assert result.steps["m"].output == [1, 2, 3]


async def test_merge_refuses_a_non_list_source():
    result = await run_step("core.merge", {"sources": [[1], "${{ 'x' }}"]})
    assert result.error is not None
    assert result.error.message == "sources[1] must be a list, got string"


# ----------------------------------------------------------------------------- join


LEFT: list[dict[str, object]] = [
    {"id": 1, "title": "Tea"},
    {"id": 2, "title": "Cake"},
    {"id": 3, "title": "Bun"},
    {"id": None},
]
RIGHT = [{"story": 1, "c": 4}, {"story": 3, "c": 0, "title": "BUN"}, {"story": 1, "c": 9}, {"story": None}]


async def test_join_inner_all_matches_right_fields_win():
    on = {"left": "item.id", "right": "item.story"}
    result = await run_step("core.join", {"left": LEFT, "right": RIGHT, "on": on})
    assert result.output == [
        {"id": 1, "title": "Tea", "story": 1, "c": 4},
        {"id": 1, "title": "Tea", "story": 1, "c": 9},
        {"id": 3, "title": "BUN", "story": 3, "c": 0},
    ]


async def test_join_left_keeps_unmatched_and_does_not_mutate():
    on = {"left": "item.id", "right": "item.story"}
    left = [dict(x) for x in LEFT]
    result = await run_step("core.join", {"left": left, "right": RIGHT, "on": on, "kind": "left"})
    assert [r.get("c") for r in result.output] == [4, 9, None, 0, None]
    assert left == LEFT


async def test_join_needs_objects():
    on = {"left": "item", "right": "item"}
    result = await run_step("core.join", {"left": [1], "right": [{"a": 1}], "on": on})
    assert result.error is not None
    assert result.error.message == "left[0] must be an object to be joined, got integer"


# ----------------------------------------------------------------------------- group / count


async def test_group_first_seen_order():
    result = await run_step("core.group", {"items": ITEMS, "by": "item.lang"})
    assert result.output == [
        {"key": "py", "items": [ITEMS[0], ITEMS[2]]},
        {"key": "rs", "items": [ITEMS[1]]},
    ]


async def test_group_by_computed_key_and_null_key():
    items = [{"n": 1}, {"n": 2}, {"n": 3}, {}]
    result = await run_step("core.group", {"items": items, "by": "has(item.n) ? item.n % 2 == 0 : null"})
    assert result.output == [
        {"key": False, "items": [{"n": 1}, {"n": 3}]},
        {"key": True, "items": [{"n": 2}]},
        {"key": None, "items": [{}]},
    ]


async def test_count_total_and_by_key():
    total = await run_step("core.count", {"items": ITEMS})
    assert total.output == 3
    per = await run_step("core.count", {"items": ITEMS, "by": "item.lang"})
    assert per.output == [{"key": "py", "count": 2}, {"key": "rs", "count": 1}]


# ----------------------------------------------------------------------------- flatten / set


async def test_flatten_one_level():
    result = await run_step("core.flatten", {"items": [[1, [2]], 3, [], None, ["a"]]})
    assert result.output == [1, [2], 3, None, "a"]


async def test_set_evaluates_nested_values():
    spec = pipeline(
        [
            {
                "id": "s",
                "uses": "core.set",
                "with": {"value": {"a": "${{ inputs.x + 1 }}", "b": ["${{ run.id }}"]}},
            }
        ],
        inputs={"x": {"type": "integer"}},
    )
    result = await run(spec, {"x": 41})
    assert result.steps["s"].output == {"a": 42, "b": ["run-1"]}


# ----------------------------------------------------------------------------- template


async def test_template_text_and_each():
    params = {
        "text": "Top ${{ size(inputs.xs) }}:",
        "items": "${{ inputs.xs }}",
        "each": "${{ index + 1 }}. ${{ item.t }} ${{ item.tags }}",
    }
    spec = pipeline([{"id": "t", "uses": "core.template", "with": params}], inputs={"xs": {"type": "array"}})
    result = await run(spec, {"xs": [{"t": "a", "tags": ["x"]}, {"t": "b", "tags": None}]})
    assert result.steps["t"].output == 'Top 2:\n1. a ["x"]\n2. b '


async def test_template_text_only_each_only_and_separator():
    result = await run_step("core.template", {"text": "${{ 1 + 1 }} items"})
    assert result.output == "2 items"
    result = await run_step("core.template", {"items": ["a", "b"], "each": "${{ item }}", "separator": ", "})
    assert result.output == "a, b"
    result = await run_step("core.template", {"items": [1, True, None], "each": "${{ item }}"})
    assert result.output == "1\ntrue\n"


# ----------------------------------------------------------------------------- regex


async def test_regex_on_value_items_and_field():
    result = await run_step("core.regex", {"value": "a1b22", "pattern": r"\d+", "replace": "#"})
    assert result.output == "a#b#"
    result = await run_step(
        "core.regex", {"items": ["x-1", "y-2"], "pattern": r"(\w)-(\d)", "replace": r"\2\1"}
    )
    assert result.output == ["1x", "2y"]
    items = [{"t": "Show HN: A"}, {"t": None}, {"u": 1}]
    result = await run_step("core.regex", {"items": items, "field": "t", "pattern": "^Show HN: "})
    assert result.output == [{"t": "A"}, {"t": None}, {"u": 1}]
    assert items[0] == {"t": "Show HN: A"}


async def test_regex_catastrophic_pattern_is_linear():
    text = "a" * 100_000 + "!"
    result = await run_step("core.regex", {"value": text, "pattern": "(a+)+$", "replace": "x"})
    assert result.status == StepStatus.SUCCEEDED
    assert result.output == text


async def test_regex_errors():
    result = await run_step("core.regex", {"value": "abc", "pattern": "${{ '(' }}"})
    assert result.error is not None
    assert result.error.code == "invalid_params"
    assert "invalid pattern '('" in result.error.message
    result = await run_step("core.regex", {"value": "abc", "pattern": "(b)", "replace": r"\2"})
    assert result.error is not None
    assert "cannot apply replace" in result.error.message
    result = await run_step("core.regex", {"items": [{"t": 1}], "field": "t", "pattern": "x"})
    assert result.error is not None
    assert result.error.message == "items[0].t must be a string, got integer"
    result = await run_step("core.regex", {"items": [1], "pattern": "x"})
    assert result.error is not None
    assert result.error.message == "items[0] must be a string (or give `field`), got integer"


# ----------------------------------------------------------------------------- fail


async def test_fail_fails_the_step_and_the_run():
    spec = pipeline(
        [
            {
                "id": "guard",
                "uses": "core.fail",
                "if": "inputs.n > 2",
                "with": {"message": "too many: ${{ inputs.n }}"},
            },
            {"id": "after", "uses": "core.set", "needs": ["guard"], "with": {"value": 1}},
        ],
        inputs={"n": {"type": "integer"}},
    )
    ok = await run(spec, {"n": 1})
    assert ok.status == "succeeded"
    assert ok.steps["guard"].status == StepStatus.SKIPPED
    bad = await run(spec, {"n": 5})
    assert bad.status == "failed"
    assert bad.steps["guard"].error is not None
    assert bad.steps["guard"].error.code == "step_failed"
    assert bad.steps["guard"].error.message == "too many: 5"
    assert bad.error is not None
    assert bad.error.message == "step `guard` failed: too many: 5"
    assert bad.steps["after"].status == StepStatus.CANCELLED


async def test_core_steps_never_reach_the_caller():
    caller = FakeCaller()
    await run(pipeline([{"id": "s", "uses": "core.set", "with": {"value": 1}}]), caller=caller)
    assert caller.calls == []
