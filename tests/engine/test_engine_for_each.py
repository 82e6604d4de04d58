"""for_each: per-element calls, results in input order, bounded concurrency, failures."""

from __future__ import annotations

import asyncio

from app.engine.types import RunStatus, StepStatus
from app.errors import UpstreamError
from tests.engine.fakes import FakeCaller, flaky, pipeline, run

GUARD = 5


async def test_results_keep_input_order_whatever_the_finishing_order():
    gates = {n: asyncio.Event() for n in range(4)}

    async def fetch(call):
        await gates[call.params["n"]].wait()
        if call.params["n"] > 0:
            gates[call.params["n"] - 1].set()  # element n finishes before element n - 1
        return {"n": call.params["n"], "i": call.index}

    gates[3].set()
    caller = FakeCaller({"demo.fetch": fetch})
    spec = pipeline(
        [{"id": "each", "uses": "demo.fetch", "for_each": "${{ inputs.ns }}", "with": {"n": "${{ item }}"}}]
    )
    result = await asyncio.wait_for(run(spec, {"ns": [0, 1, 2, 3]}, caller=caller), GUARD)
    assert result.steps["each"].output == [{"n": n, "i": n} for n in range(4)]
    assert [c.index for c in caller.calls] == [0, 1, 2, 3]


async def test_concurrency_is_bounded():
    in_flight = 0
    peak = 0
    release = asyncio.Event()
    reached = asyncio.Event()

    async def work(call):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 3:
            reached.set()
        await release.wait()
        in_flight -= 1
        return call.index

    async def opener():
        await reached.wait()
        for _ in range(10):  # let any extra element start, if the bound were broken
            await asyncio.sleep(0)
        release.set()

    caller = FakeCaller({"demo.work": work})
    spec = pipeline([{"id": "w", "uses": "demo.work", "for_each": list(range(12)), "concurrency": 3}])
    result, _ = await asyncio.wait_for(asyncio.gather(run(spec, caller=caller), opener()), GUARD)
    assert peak == 3
    assert result.steps["w"].output == list(range(12))


async def test_default_concurrency_is_ten():
    in_flight = 0
    peak = 0

    async def work(call):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(5):
            await asyncio.sleep(0)
        in_flight -= 1

    spec = pipeline([{"id": "w", "uses": "demo.work", "for_each": list(range(30))}])
    await run(spec, caller=FakeCaller({"demo.work": work}))
    assert peak == 10


async def test_literal_list_with_templates_and_index():
    spec = pipeline(
        [
            {
                "id": "e",
                "uses": "core.set",
                "for_each": ["${{ inputs.a }}", "b"],
                "with": {"value": "${{ index }}:${{ item }}"},
            }
        ]
    )
    result = await run(spec, {"a": "A"})
    assert result.steps["e"].output == ["0:A", "1:b"]


async def test_null_is_empty_and_other_types_fail():
    spec = pipeline(
        [
            {"id": "off", "uses": "core.set", "if": "false", "with": {"value": 1}},
            {"id": "e", "uses": "demo.x", "for_each": "${{ steps.off.output }}"},
        ]
    )
    result = await run(spec)
    assert result.steps["e"].status == StepStatus.SUCCEEDED
    assert result.steps["e"].output == []
    spec = pipeline([{"id": "e", "uses": "demo.x", "for_each": "${{ inputs.x }}"}])
    result = await run(spec, {"x": {"a": 1}})
    assert result.steps["e"].error is not None
    assert result.steps["e"].error.message == "for_each must yield a list, got object"


async def test_a_failing_element_fails_the_step_and_cancels_the_others():
    blocked = asyncio.Event()
    cancelled: list[int] = []

    async def work(call):
        if call.index == 1:
            await blocked.wait()
            raise UpstreamError("404 for that one")
        try:
            blocked.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(call.index)
            raise

    spec = pipeline([{"id": "w", "uses": "demo.work", "for_each": [0, 1, 2], "concurrency": 3}])
    result = await asyncio.wait_for(run(spec, caller=FakeCaller({"demo.work": work})), GUARD)
    assert result.status == RunStatus.FAILED
    step = result.steps["w"]
    assert step.status == StepStatus.FAILED
    assert step.error is not None
    assert step.error.message == "item 1: 404 for that one"
    assert step.error.code == "upstream_error"
    assert sorted(cancelled) == [0, 2]


async def test_each_element_retries_on_its_own():
    handlers = {0: flaky(0, "a"), 1: flaky(2, "b"), 2: flaky(1, "c")}
    caller = FakeCaller({"demo.work": lambda call: handlers[call.index](call)})
    spec = pipeline(
        [
            {
                "id": "w",
                "uses": "demo.work",
                "for_each": [0, 1, 2],
                "retry": {"attempts": 3, "initial": "1ms"},
            }
        ]
    )
    result = await run(spec, caller=caller)
    assert result.steps["w"].output == ["a", "b", "c"]
    assert result.steps["w"].attempts == 3
    assert len(caller.calls) == 6


async def test_core_step_with_for_each_item_shadowing():
    spec = pipeline(
        [
            {
                "id": "f",
                "uses": "core.filter",
                "for_each": [[1, 5, 9], [2, 6]],
                "with": {"items": "${{ item }}", "where": "item > 4"},
            }
        ]
    )
    result = await run(spec)
    assert result.steps["f"].output == [[5, 9], [6]]
