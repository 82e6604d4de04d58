"""Retries with backoff, Retry-After, timeouts per attempt, and what is never retried."""

from __future__ import annotations

import asyncio

import pytest

from app.engine import attempts
from app.engine.types import RunStatus, StepStatus
from app.errors import RateLimited, StepError, UpstreamError
from tests.engine.fakes import FakeCaller, flaky, pipeline, run


@pytest.fixture
def waits(monkeypatch):
    """Record the engine's waits between attempts instead of sleeping."""
    recorded: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(attempts, "sleep", fake_sleep)
    return recorded


def one_step(**step):
    return pipeline([{"id": "s", "uses": "demo.op", **step}])


async def test_transient_errors_are_retried_with_exponential_backoff(waits):
    caller = FakeCaller({"demo.op": flaky(3, "ok")})
    result = await run(one_step(retry={"attempts": 4, "initial": "500ms", "max": "30s"}), caller=caller)
    step = result.steps["s"]
    assert step.status == StepStatus.SUCCEEDED
    assert step.output == "ok"
    assert step.attempts == 4
    assert waits == [0.5, 1.0, 2.0]
    assert [c.attempt for c in caller.calls] == [1, 2, 3, 4]
    assert step.logs[0] == "attempt 1 failed (upstream_error): 503 from upstream; retrying in 0.5s"


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [("constant", [2.0, 2.0, 2.0]), ("linear", [2.0, 4.0, 5.0]), ("exponential", [2.0, 4.0, 5.0])],
)
async def test_backoff_kinds_and_max(waits, backoff, expected):
    retry = {"attempts": 4, "backoff": backoff, "initial": "2s", "max": "5s"}
    await run(one_step(retry=retry), caller=FakeCaller({"demo.op": flaky(9)}))
    assert waits == expected


async def test_giving_up_after_the_last_attempt(waits):
    caller = FakeCaller({"demo.op": flaky(9)})
    result = await run(one_step(retry={"attempts": 2, "initial": "1s"}), caller=caller)
    step = result.steps["s"]
    assert step.status == StepStatus.FAILED
    assert step.attempts == 2
    assert step.error is not None
    assert step.error.message == "503 from upstream"
    assert len(caller.calls) == 2
    assert result.status == RunStatus.FAILED


async def test_defaults_retry_applies_and_a_step_retry_overrides_it(waits):
    spec = pipeline(
        [{"id": "a", "uses": "demo.a"}, {"id": "b", "uses": "demo.b", "retry": {"attempts": 1}}],
        defaults={"retry": {"attempts": 3, "initial": "1s"}},
    )
    caller = FakeCaller({"demo.a": flaky(2, "a"), "demo.b": flaky(1, "b")})
    result = await run(spec, caller=caller)
    assert result.steps["a"].attempts == 3
    assert result.steps["a"].output == "a"
    assert result.steps["b"].attempts == 1
    assert result.steps["b"].status == StepStatus.FAILED


@pytest.mark.parametrize(
    "error",
    [
        lambda: UpstreamError("422 unprocessable"),
        lambda: StepError("bad params", code="invalid_params"),
        lambda: ValueError("a bug"),
    ],
)
async def test_permanent_errors_are_not_retried(waits, error):
    caller = FakeCaller({"demo.op": flaky(9, error=error)})
    result = await run(one_step(retry={"attempts": 5}), caller=caller)
    assert result.steps["s"].attempts == 1
    assert len(caller.calls) == 1
    assert waits == []


async def test_retry_on_narrows_the_kinds(waits):
    caller = FakeCaller({"demo.op": flaky(9)})  # http_5xx
    result = await run(one_step(retry={"attempts": 5, "on": ["http_429", "timeout"]}), caller=caller)
    assert result.steps["s"].attempts == 1
    too_many = FakeCaller(
        {"demo.op": flaky(1, "ok", error=lambda: UpstreamError("429", retry_kind="http_429"))}
    )
    result = await run(one_step(retry={"attempts": 5, "on": ["http_429"]}), caller=too_many)
    assert result.steps["s"].attempts == 2


async def test_errors_without_a_retry_kind_are_never_retried(waits):
    # app.errors.RateLimited is the API's own 429 (not a step error): it carries no retry kind.
    caller = FakeCaller({"demo.op": flaky(1, "ok", error=lambda: RateLimited("slow down"))})
    result = await run(one_step(retry={"attempts": 5}), caller=caller)
    step = result.steps["s"]
    assert step.attempts == 1
    assert step.error is not None
    assert step.error.code == "rate_limited"


async def test_retry_after_is_honoured_when_longer(waits):
    def too_many():
        return UpstreamError("429", retry_kind="http_429", retry_after=7)

    caller = FakeCaller({"demo.op": flaky(2, "ok", error=too_many)})
    result = await run(one_step(retry={"attempts": 3, "initial": "1s"}), caller=caller)
    assert result.steps["s"].output == "ok"
    assert waits == [7.0, 7.0]


async def test_retry_after_shorter_than_backoff_keeps_backoff(waits):
    def too_many():
        return UpstreamError("429", retry_kind="http_429", retry_after=0.1)

    await run(
        one_step(retry={"attempts": 2, "initial": "3s"}),
        caller=FakeCaller({"demo.op": flaky(1, error=too_many)}),
    )
    assert waits == [3.0]


async def test_a_huge_retry_after_gives_up_at_once(waits):
    def too_many():
        return UpstreamError("429", retry_kind="http_429", retry_after=3600)

    caller = FakeCaller({"demo.op": flaky(1, "ok", error=too_many)})
    result = await run(one_step(retry={"attempts": 3}), caller=caller)
    step = result.steps["s"]
    assert step.status == StepStatus.FAILED
    assert waits == []
    assert "asks to wait 60m, more than 5m: giving up" in step.logs[-1]


async def test_timeout_per_attempt_and_timeouts_are_retried(waits):
    async def hang(call):
        await asyncio.Event().wait()

    caller = FakeCaller({"demo.op": hang})
    result = await run(one_step(timeout="20ms", retry={"attempts": 2, "initial": "1ms"}), caller=caller)
    step = result.steps["s"]
    assert step.status == StepStatus.FAILED
    assert step.error is not None
    assert step.error.code == "timeout"
    assert step.error.message == "timed out after 0.02s"
    assert step.attempts == 2
    assert [c.timeout for c in caller.calls] == [0.02, 0.02]


async def test_defaults_timeout_and_engine_default():
    spec = pipeline(
        [{"id": "a", "uses": "demo.a"}, {"id": "b", "uses": "demo.a", "timeout": 3}],
        defaults={"timeout": "10s"},
    )
    caller = FakeCaller({"demo.a": 1})
    await run(spec, caller=caller)
    assert [c.timeout for c in caller.calls] == [10.0, 3.0]
    caller = FakeCaller({"demo.a": 1})
    await run(pipeline([{"id": "a", "uses": "demo.a"}]), caller=caller)
    assert caller.calls[0].timeout == 300.0


async def test_core_steps_obey_their_timeout():
    items = [{"n": i} for i in range(400_000)]
    spec = pipeline(
        [
            {"id": "src", "uses": "demo.src"},
            {
                "id": "slow",
                "uses": "core.filter",
                "timeout": "10ms",
                "with": {"items": "${{ steps.src.output }}", "where": "item.n % 7 == 0 && item.n > 3"},
            },
        ]
    )
    result = await run(spec, caller=FakeCaller({"demo.src": items}))
    step = result.steps["slow"]
    assert step.status == StepStatus.FAILED
    assert step.error is not None
    assert step.error.code == "timeout"
