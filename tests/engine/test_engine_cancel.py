"""Cancellation: through the cancel event, and when the task running the engine is cancelled."""

from __future__ import annotations

import asyncio

import pytest

from app.engine.types import RunStatus, StepStatus
from tests.engine.fakes import FakeCaller, RecordingObserver, pipeline, run

GUARD = 5


def _spec():
    return pipeline(
        [
            {"id": "slow", "uses": "demo.slow"},
            {"id": "after", "uses": "demo.slow", "with": {"x": "${{ steps.slow.output }}"}},
            {"id": "done", "uses": "core.set", "with": {"value": 1}},
        ]
    )


async def test_the_cancel_event_cancels_the_run():
    started = asyncio.Event()
    saw_cancel = asyncio.Event()

    async def slow(call):
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            saw_cancel.set()
            raise

    cancel = asyncio.Event()
    observer = RecordingObserver()

    async def cancel_when_started():
        await started.wait()
        cancel.set()

    result, _ = await asyncio.wait_for(
        asyncio.gather(
            run(_spec(), caller=FakeCaller({"demo.slow": slow}), observer=observer, cancel=cancel),
            cancel_when_started(),
        ),
        GUARD,
    )
    assert saw_cancel.is_set()
    assert result.status == RunStatus.CANCELLED
    assert result.outputs is None
    assert result.error is not None
    assert result.error.code == "cancelled"
    assert result.steps["slow"].status == StepStatus.CANCELLED
    assert result.steps["after"].status == StepStatus.CANCELLED
    assert result.steps["after"].error is not None
    assert result.steps["after"].error.message == "not started: the run was cancelled"
    assert result.steps["done"].status == StepStatus.SUCCEEDED
    finished = [e for e in observer.events if e[0] == "finished"]
    assert sorted(e[1] for e in finished) == ["after", "done", "slow"]


async def test_a_cancel_set_before_the_start_runs_nothing():
    cancel = asyncio.Event()
    cancel.set()
    caller = FakeCaller({"demo.slow": 1})
    result = await run(_spec(), caller=caller, cancel=cancel)
    assert result.status == RunStatus.CANCELLED
    assert caller.calls == []
    assert {s.status for s in result.steps.values()} == {StepStatus.CANCELLED}


async def test_cancelling_the_engine_task_cancels_its_steps():
    started = asyncio.Event()
    saw_cancel = asyncio.Event()

    async def slow(call):
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            saw_cancel.set()
            raise

    task = asyncio.create_task(run(_spec(), caller=FakeCaller({"demo.slow": slow})))
    await asyncio.wait_for(started.wait(), GUARD)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert saw_cancel.is_set()


async def test_a_run_without_cancel_event_finishes():
    result = await run(pipeline([{"id": "a", "uses": "core.set", "with": {"value": 1}}]), cancel=None)
    assert result.status == RunStatus.SUCCEEDED
