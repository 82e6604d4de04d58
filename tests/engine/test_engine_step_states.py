"""StepStates: the engine keeps each step's latest state in it itself (no copies, no observer calls)."""

from __future__ import annotations

import asyncio

import pytest

from app.engine.types import OperationCall, RunStatus, StepResult, StepStates, StepStatus
from tests.engine.fakes import FakeCaller, RecordingObserver, pipeline, run

STEPS = [
    {"id": "a", "uses": "demo.a"},
    {"id": "b", "uses": "demo.b"},  # a and b are ready together: tasks, not the lone-step path
    {"id": "c", "uses": "core.set", "with": {"value": "${{ steps.a.output + steps.b.output }}"}},
    {"id": "d", "uses": "core.set", "if": "false", "with": {"value": 0}},
]


def caller() -> FakeCaller:
    return FakeCaller({"demo.a": 1, "demo.b": 2})


async def test_the_states_are_the_final_states_of_the_run() -> None:
    states = StepStates()
    result = await run(
        pipeline(STEPS, outputs={"c": "${{ steps.c.output }}"}), caller=caller(), observer=states
    )
    assert result.status == RunStatus.SUCCEEDED
    assert result.outputs == {"c": 3}
    assert set(states.states) == {"a", "b", "c", "d"}
    for step_id, state in states.states.items():
        assert state is result.steps[step_id]
    assert states.states["d"].status == StepStatus.SKIPPED
    assert states.states["c"].output == 3


async def test_they_match_what_an_observer_is_told_last() -> None:
    spec = pipeline(STEPS, outputs={"c": "${{ steps.c.output }}"})
    states, told = StepStates(), RecordingObserver()
    await run(spec, caller=caller(), observer=states)
    await run(spec, caller=caller(), observer=told)
    last: dict[str, StepResult] = {}
    for _event, result in told.results:
        last[result.step_id] = result
    assert set(last) == set(states.states)
    for step_id, state in states.states.items():
        assert (state.status, state.output, state.attempts, state.error) == (
            last[step_id].status,
            last[step_id].output,
            last[step_id].attempts,
            last[step_id].error,
        )


async def test_an_interrupted_run_leaves_the_states_reached() -> None:
    started = asyncio.Event()

    async def hang(call: OperationCall) -> None:
        started.set()
        await asyncio.sleep(60)

    spec = pipeline(
        [{"id": "first", "uses": "demo.a"}, {"id": "second", "uses": "demo.hang", "needs": ["first"]}]
    )
    states = StepStates()
    task = asyncio.create_task(
        run(spec, caller=FakeCaller({"demo.a": 1, "demo.hang": hang}), observer=states)
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert states.states["first"].status == StepStatus.SUCCEEDED
    assert states.states["second"].status == StepStatus.RUNNING  # started, never finished
    assert states.states["second"].started_at is not None


async def test_called_as_an_observer_it_keeps_what_it_is_given() -> None:
    states = StepStates()
    given = StepResult(step_id="x", status=StepStatus.RUNNING)
    await states.step_started("run", given)
    assert states.states == {"x": given}
