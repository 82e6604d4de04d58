"""The executor's cheaper bookkeeping behaves as before.

An attempt's timeout is armed only when the attempt suspends, and behaves as ``asyncio.timeout``.

Attempts that finish without waiting (core steps over small lists, a cached answer) get no timer;
attempts that suspend get one whose deadline counts from the attempt's start; values, exceptions
and cancellation pass through the resumed coroutine unchanged. The null observer is skipped. Pure
paths of parameters and outputs are read directly, with read_path's answers and errors.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from app.engine import attempts
from app.engine.executor import _timestamp, compile_plan
from app.engine.types import NullObserver, OperationCall, RunStatus, StepResult, StepStatus
from app.errors import UpstreamError
from app.pipelines.expressions import to_json_value
from tests.engine.fakes import FakeCaller, pipeline, run


@pytest.fixture
def armed(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The deadlines of the timers armed by attempts (the real timers still run)."""
    deadlines: list[float] = []
    real = asyncio.timeout_at

    def recording(when: float | None) -> asyncio.Timeout:
        assert when is not None
        deadlines.append(when)
        return real(when)

    monkeypatch.setattr(asyncio, "timeout_at", recording)
    return deadlines


def one_step(**step: Any) -> Any:
    return pipeline([{"id": "s", "uses": "demo.op", **step}], outputs={"v": "${{ steps.s.output }}"})


async def test_an_attempt_that_never_suspends_gets_no_timer(armed: list[float]) -> None:
    spec = pipeline(
        [
            {"id": "s", "uses": "demo.op"},
            {
                "id": "k",
                "uses": "core.filter",
                "with": {"items": "${{ steps.s.output }}", "where": "item > 1"},
            },
        ],
        outputs={"v": "${{ steps.k.output }}"},
    )
    result = await run(spec, caller=FakeCaller({"demo.op": [1, 2, 3]}))
    assert result.outputs == {"v": [2, 3]}
    assert armed == []


async def test_an_attempt_that_suspends_gets_its_deadline_from_its_start(armed: list[float]) -> None:
    async def slow(call: OperationCall) -> str:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return "done"

    before = asyncio.get_running_loop().time()
    result = await run(one_step(timeout="30s"), caller=FakeCaller({"demo.op": slow}))
    after = asyncio.get_running_loop().time()
    assert result.outputs == {"v": "done"}
    assert len(armed) == 1
    assert before + 30 <= armed[0] <= after + 30


async def test_a_suspended_attempt_past_its_timeout_times_out() -> None:
    async def hang(call: OperationCall) -> None:
        await asyncio.sleep(0)  # suspends once, then waits far beyond the limit
        await asyncio.sleep(60)

    result = await run(one_step(timeout="50ms"), caller=FakeCaller({"demo.op": hang}))
    step = result.steps["s"]
    assert step.status == StepStatus.FAILED
    assert step.error is not None
    assert (step.error.code, step.error.message) == ("timeout", "timed out after 0.05s")


async def test_values_and_errors_pass_through_a_resumed_attempt() -> None:
    loop = asyncio.get_running_loop()

    async def answer(call: OperationCall) -> Any:
        future: asyncio.Future[int] = loop.create_future()
        loop.call_soon(future.set_result, 41)
        value = await future  # the value sent back into the coroutine
        try:
            failing: asyncio.Future[int] = loop.create_future()
            loop.call_soon(failing.set_exception, ValueError("inner"))
            await failing  # the exception thrown into it
        except ValueError as exc:
            return {"value": value + 1, "caught": str(exc)}
        return None

    async def fails(call: OperationCall) -> None:
        await asyncio.sleep(0)
        raise UpstreamError("bad gateway", retry_kind="http_5xx")

    ok = await run(one_step(), caller=FakeCaller({"demo.op": answer}))
    assert ok.outputs == {"v": {"value": 42, "caught": "inner"}}
    failed = await run(one_step(), caller=FakeCaller({"demo.op": fails}))
    assert failed.steps["s"].error is not None
    assert (failed.steps["s"].error.code, failed.steps["s"].error.message) == (
        "upstream_error",
        "bad gateway",
    )


async def test_a_timeout_error_raised_before_any_suspension_is_a_step_timeout() -> None:
    def raises(call: OperationCall) -> None:
        raise TimeoutError

    result = await run(one_step(timeout="2s"), caller=FakeCaller({"demo.op": raises}))
    assert result.steps["s"].error is not None
    assert result.steps["s"].error.message == "timed out after 2s"


async def test_an_awaitable_that_is_not_a_coroutine_is_timed_too(armed: list[float]) -> None:
    loop = asyncio.get_running_loop()

    class Caller:
        def __call__(self, call: OperationCall) -> asyncio.Future[str]:
            future: asyncio.Future[str] = loop.create_future()
            loop.call_soon(future.set_result, "from a future")
            return future

    result = await run(one_step(timeout="5s"), caller=Caller())
    assert result.outputs == {"v": "from a future"}
    assert armed == []  # asyncio.timeout (relative), not the lazy path


async def test_cancelling_the_run_while_an_attempt_is_suspended() -> None:
    started = asyncio.Event()

    async def hang(call: OperationCall) -> None:
        started.set()
        await asyncio.sleep(60)

    task = asyncio.create_task(run(one_step(), caller=FakeCaller({"demo.op": hang})))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_null_observer_is_skipped_but_a_subclass_is_told() -> None:
    class Counting(NullObserver):
        def __init__(self) -> None:
            self.events: list[tuple[str, StepStatus]] = []

        async def step_started(self, run_id: str, result: StepResult) -> None:
            self.events.append(("started", result.status))

        async def step_finished(self, run_id: str, result: StepResult) -> None:
            self.events.append(("finished", result.status))

    observer = Counting()
    result = await run(one_step(), caller=FakeCaller({"demo.op": 1}), observer=observer)
    assert result.status == RunStatus.SUCCEEDED
    assert observer.events == [("started", StepStatus.RUNNING), ("finished", StepStatus.SUCCEEDED)]
    plain = await run(one_step(), caller=FakeCaller({"demo.op": 1}), observer=NullObserver())
    assert plain.outputs == {"v": 1}
    assert plain.steps["s"].attempts == 1


async def test_retries_go_on_after_an_attempt_that_failed_without_suspending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(attempts, "sleep", no_sleep)
    calls: list[int] = []

    def flaky_once(call: OperationCall) -> str:
        calls.append(call.attempt)
        if call.attempt == 1:
            raise UpstreamError("503 from upstream", retry_kind="http_5xx")
        return "second"

    result = await run(
        one_step(retry={"attempts": 3, "initial": "1s"}), caller=FakeCaller({"demo.op": flaky_once})
    )
    assert calls == [1, 2]
    assert waits == [1.0]
    assert result.outputs == {"v": "second"}
    assert result.steps["s"].attempts == 2


def test_the_run_start_time_is_written_as_to_json_value_writes_it() -> None:
    moments = [
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 1, 2, 3, 4, 5),
    ]
    for moment in moments:
        assert _timestamp(moment) == to_json_value(moment)


async def test_pure_paths_in_parameters_and_outputs_read_as_before() -> None:
    spec = pipeline(
        [
            {"id": "s", "uses": "demo.op"},
            {"id": "n", "uses": "demo.op", "if": "false"},
            {"id": "k", "uses": "core.limit", "with": {"items": "${{ steps.s.output.list }}", "count": 2}},
        ],
        outputs={
            "k": "${{ steps.k.output }}",
            "through_null": "${{ steps.n.output.deep }}",
            "text": "${{ steps.s.output.text }}",
        },
    )
    result = await run(spec, caller=FakeCaller({"demo.op": {"list": [1, 2, 3], "text": "t"}}))
    assert result.outputs == {"k": [1, 2], "through_null": None, "text": "t"}
    missing = pipeline([{"id": "s", "uses": "demo.op"}], outputs={"x": "${{ steps.s.output.nope }}"})
    failed = await run(missing, caller=FakeCaller({"demo.op": {"a": 1}}))
    assert failed.error is not None
    assert failed.error.message == "outputs.x: `steps.s.output.nope`: no such key 'nope'"
    listed = pipeline([{"id": "s", "uses": "demo.op"}], outputs={"x": "${{ steps.s.output.nope }}"})
    failed = await run(listed, caller=FakeCaller({"demo.op": [1]}))
    assert failed.error is not None
    assert failed.error.message == "outputs.x: `steps.s.output.nope`: cannot read 'nope' of a list"


async def test_the_run_variable_is_there_wherever_an_expression_reads_it() -> None:
    spec = pipeline(
        [
            {"id": "s", "uses": "demo.op", "if": "run.id == 'run-7'"},
            {"id": "e", "uses": "demo.op", "for_each": "${{ [run.id] }}"},
            {
                "id": "m",
                "uses": "core.map",
                "with": {
                    "items": [1],
                    "to": {"id": "${{ run.id }}", "ok": "${{ [1].all(x, run.id != '') }}"},
                },
            },
        ],
        outputs={"started": "${{ run.started_at }}", "m": "${{ steps.m.output }}"},
    )
    result = await run(spec, caller=FakeCaller({"demo.op": 1}), run_id="run-7")
    assert result.status == RunStatus.SUCCEEDED
    assert result.outputs is not None
    assert result.outputs["m"] == [{"id": "run-7", "ok": True}]
    assert result.started_at is not None
    assert result.outputs["started"] == _timestamp(result.started_at)
    assert result.steps["s"].status == StepStatus.SUCCEEDED


def test_a_plan_knows_the_variables_its_expressions_read() -> None:
    spec = pipeline(
        [
            {"id": "s", "uses": "demo.op", "with": {"q": "${{ inputs.q }}"}},
            {
                "id": "f",
                "uses": "core.filter",
                "with": {"items": "${{ steps.s.output }}", "where": "item > 1"},
            },
        ],
        outputs={"x": "${{ secrets.k }}"},
    )
    assert compile_plan(spec).roots == frozenset({"inputs", "steps", "item", "secrets"})
