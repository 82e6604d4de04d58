"""The evaluation limit of expressions: list macros over large data are refused before they run."""

from __future__ import annotations

import pytest
from aiohttp import web

from app.errors import ExpressionError
from app.pipelines.expressions import Scope, compile_expression
from app.pipelines.loop_budget import LOOP_BUDGET, DataSizes, loop_shape, measure
from tests.api.helpers import save, wait_finished


def test_the_shape_of_macros_is_read_from_the_expression():
    assert loop_shape("size(inputs.xs) > 2") is None
    shape = loop_shape("inputs.xs.filter(a, a.tags.exists(t, t == 'x')).map(a, a.id)")
    assert shape is not None
    assert [(c.name, c.inner, [b.name for b in c.body]) for c in shape.calls] == [
        ("filter", False, ["exists"]),
        ("map", False, []),
    ]
    assert shape.calls[0].body[0].inner is True  # a.tags: the element's own list
    self_join = loop_shape("xs.map(a, xs.map(b, a + b))")
    assert self_join is not None
    assert self_join.depth == 2
    assert self_join.calls[0].body[0].inner is False  # xs again: the whole list


def test_data_is_measured_by_list_lengths_and_element_weights():
    assert measure({"items": [{"id": 1, "tags": ["a", "b", "c", "d"]}] * 3, "n": 1}) == DataSizes(4, 4, 22)
    assert measure({"a": list(range(10)), "b": {"c": [1]}}) == DataSizes(10, 0, 1)
    assert measure([{"c": [1, 2]}, [5]]) == DataSizes(2, 2, 12)
    assert measure(["x" * 200]) == DataSizes(1, 0, 4)
    assert measure(None) == DataSizes(0, 0, 1)


@pytest.mark.parametrize(
    ("source", "allowed", "refused"),
    [
        ("inputs.xs.map(a, a)", 2000, 3000),
        ("inputs.xs.filter(a, a > 0).size()", 2000, 3000),
        ("inputs.xs.map(a, inputs.xs.map(b, a + b)).size()", 80, 200),
        ("inputs.xs.exists(a, inputs.xs.exists(b, a == b + 1))", 300, 2000),
    ],
)
def test_expressions_over_too_large_lists_are_refused_before_they_run(source, allowed, refused):
    expression = compile_expression(source)
    assert expression.evaluate(Scope({"inputs": {"xs": list(range(allowed))}})) is not None
    with pytest.raises(ExpressionError, match="evaluation limit") as caught:
        expression.evaluate(Scope({"inputs": {"xs": list(range(refused))}}))
    assert "core.map / core.filter" in caught.value.message
    assert caught.value.details["limit"] == LOOP_BUDGET


def test_the_weight_of_the_elements_counts():
    expression = compile_expression("inputs.items.filter(i, i.tags.exists(t, t == 'c')).size()")
    items = [{"id": i, "tags": ["a", "b", "c", "d"]} for i in range(300)]
    assert expression.evaluate(Scope({"inputs": {"items": items}})) == 300  # a feed-sized list is fine
    heavy = [{"id": i, "tags": ["a", "b", "c", "d"]} for i in range(2000)]
    with pytest.raises(ExpressionError, match="evaluation limit"):  # ~6 s if it ran
        expression.evaluate(Scope({"inputs": {"items": heavy}}))
    assert compile_expression("inputs.items.exists(i, i.id == 1999)").evaluate(
        Scope({"inputs": {"items": heavy}})
    )


def test_expressions_without_macros_have_no_limit():
    expression = compile_expression("size(inputs.xs) + inputs.xs[49999]")
    assert expression.evaluate(Scope({"inputs": {"xs": list(range(50_000))}})) == 100_000 - 1


@pytest.fixture
async def numbers(local_server):
    async def handler(request: web.Request) -> web.Response:
        count = int(request.query["n"])
        return web.json_response({"items": list(range(count)), "rows": [{"values": list(range(count))}]})

    return await local_server({"GET /numbers": handler})


async def test_a_run_fails_with_a_clear_step_error_instead_of_stalling_the_server(api, numbers):
    source = """\
version: 1
name: doubling
inputs:
  base: {type: string}
  n: {type: integer}
steps:
  - id: fetch
    uses: http.get_json
    with: {url: "${{ inputs.base }}/numbers?n=${{ inputs.n }}"}
  - id: doubled
    uses: core.template
    with: {text: "${{ string(steps.fetch.output.items.map(x, x * 2).size()) }}"}
  - id: per_row
    uses: core.map
    with:
      items: ${{ steps.fetch.output.rows }}
      to: {count: "${{ item.values.map(v, v * 2).size() }}"}
outputs:
  doubled: ${{ steps.doubled.output }}
  per_row: ${{ steps.per_row.output }}
"""
    await save(api, source)
    small = (
        await api.post("/v1/pipelines/doubling/runs", json={"inputs": {"base": numbers, "n": 100}})
    ).json()
    small = await wait_finished(api, small["id"])
    assert small["status"] == "succeeded", small
    assert small["outputs"] == {"doubled": "100", "per_row": [{"count": 100}]}

    large = (
        await api.post("/v1/pipelines/doubling/runs", json={"inputs": {"base": numbers, "n": 20_000}})
    ).json()
    large = await wait_finished(api, large["id"])
    assert large["status"] == "failed"
    steps = {step["id"]: step for step in large["steps"]}
    assert steps["doubled"]["error"]["code"] == "expression_error"
    assert "evaluation limit" in steps["doubled"]["error"]["message"]
    assert steps["per_row"]["status"] in ("failed", "cancelled", "skipped", "pending")


async def test_per_item_expressions_are_limited_too(api, numbers):
    source = """\
version: 1
name: per-item
inputs:
  base: {type: string}
steps:
  - id: fetch
    uses: http.get_json
    with: {url: "${{ inputs.base }}/numbers?n=20000"}
  - id: per_row
    uses: core.map
    with:
      items: ${{ steps.fetch.output.rows }}
      to: {count: "${{ item.values.map(v, v * 2).size() }}"}
"""
    await save(api, source)
    run = (await api.post("/v1/pipelines/per-item/runs", json={"inputs": {"base": numbers}})).json()
    run = await wait_finished(api, run["id"])
    assert run["status"] == "failed"
    per_row = next(step for step in run["steps"] if step["id"] == "per_row")
    assert per_row["error"]["code"] == "expression_error"
    assert "evaluation limit" in per_row["error"]["message"]
