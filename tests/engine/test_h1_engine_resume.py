"""``RunRequest.attempts_used``: a resumed run's interrupted step goes on within its retry budget."""

from __future__ import annotations

import pytest

from app.engine import attempts
from app.engine.executor import compile_plan, execute
from app.engine.types import NullObserver, RunRequest

from .fakes import FakeCaller, flaky, load

SPEC = load(
    """
    version: 1
    name: resumed
    steps:
      - id: call
        uses: demo.op
        retry: {attempts: 3, initial: 1s}
    outputs: {value: "${{ steps.call.output }}"}
    """
)


@pytest.fixture
def no_waits(monkeypatch):
    async def fake_sleep(delay: float) -> None:
        return None

    monkeypatch.setattr(attempts, "sleep", fake_sleep)


async def resume(caller: FakeCaller, used: int):
    request = RunRequest(run_id="r", inputs={}, attempts_used={"call": used})
    return await execute(compile_plan(SPEC), request, caller=caller, observer=NullObserver())


async def test_attempts_go_on_from_the_interrupted_one(no_waits):
    caller = FakeCaller({"demo.op": flaky(1, "ok")})
    result = await resume(caller, used=1)
    assert result.status == "succeeded"
    assert [call.attempt for call in caller.calls] == [2, 3]
    assert result.steps["call"].attempts == 3


async def test_the_budget_is_shared_with_the_interrupted_execution(no_waits):
    caller = FakeCaller({"demo.op": flaky(5, "ok")})
    result = await resume(caller, used=2)
    assert result.status == "failed"
    assert [call.attempt for call in caller.calls] == [3]  # the last attempt of 3, not 3 more
    assert result.steps["call"].attempts == 3


async def test_without_attempts_used_a_step_starts_at_one(no_waits):
    caller = FakeCaller({"demo.op": "ok"})
    result = await execute(
        compile_plan(SPEC), RunRequest(run_id="r", inputs={}), caller=caller, observer=NullObserver()
    )
    assert result.outputs == {"value": "ok"}
    assert [call.attempt for call in caller.calls] == [1]
