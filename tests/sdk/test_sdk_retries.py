"""SDK retries: idempotent requests retried on 429/5xx/connection failures, Retry-After honoured, bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from pydantic import BaseModel, Field

from app.engine.types import OperationCall, StepStatus
from app.registry import Registry
from app.runtime.caller import ConnectorCaller
from app.sdk import Connector, Context, RateLimited, UpstreamError
from app.sdk.errors import ConnectionFailed
from app.sdk.http import build_http_client
from app.sdk.retries import RetryPolicy, replayable
from app.sdk.testing import run_action, settings_for_tests
from app.settings import Settings
from tests.engine.fakes import load, run

API = "https://api.flaky.test"

flaky = Connector(
    key="flaky",
    version="1.0.0",
    title="Flaky",
    description="An API that fails now and then.",
    base_url=API,
)


class Target(BaseModel):
    path: str = Field(default="/thing", description="Path to read")


class Post(BaseModel):
    key: str | None = Field(default=None, description="Idempotency-Key to send")


@flaky.action(title="Get a thing")
async def get_thing(ctx: Context, p: Target) -> Any:
    """GET a path and return its JSON."""
    return await ctx.request_json("GET", p.path)


@flaky.action(title="Create a thing")
async def create_thing(ctx: Context, p: Post) -> Any:
    """POST a thing (with an Idempotency-Key when given)."""
    headers = {"Idempotency-Key": p.key} if p.key else None
    return await ctx.request_json("POST", "/things", json={"name": "x"}, headers=headers)


@flaky.action(title="Get two things")
async def get_two(ctx: Context, p: Target) -> list[int]:
    """GET /a and /b; return both statuses."""
    first = await ctx.http.get("/a")
    second = await ctx.http.get("/b")
    return [first.status_code, second.status_code]


class Sleeps:
    """A fake ``sleep`` recording the waits (the test never waits for real)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def policy(sleeps: Sleeps, retries: int = 2, max_wait: float = 10.0) -> RetryPolicy:
    return RetryPolicy(retries=retries, max_wait=max_wait, initial_wait=0.5, sleep=sleeps)


def test_policy_from_settings_and_validation() -> None:
    settings = Settings.model_validate({"http_retries": 4, "http_retry_max_wait": 2.5})
    assert RetryPolicy.from_settings(settings) == RetryPolicy(retries=4, max_wait=2.5)
    assert RetryPolicy.from_settings(Settings.model_validate({})).retries == 2
    assert RetryPolicy.none().retries == 0
    with pytest.raises(ValueError, match="must not be negative"):
        RetryPolicy(retries=-1)
    with pytest.raises(ValueError, match="http_retries"):
        Settings.model_validate({"http_retries": -1})
    backoffs = [RetryPolicy(initial_wait=1.0, max_wait=3.0).backoff(n) for n in (1, 2, 3, 4)]
    assert 1.0 <= backoffs[0] <= 2.0
    assert 2.0 <= backoffs[1] <= 3.0
    assert backoffs[2:] == [3.0, 3.0]  # capped


def test_only_idempotent_replayable_requests_are_retried() -> None:
    client = httpx.AsyncClient()
    assert replayable(client.build_request("GET", "https://x.test/"))
    assert replayable(client.build_request("PUT", "https://x.test/", json={"a": 1}))
    assert replayable(client.build_request("DELETE", "https://x.test/"))
    assert not replayable(client.build_request("POST", "https://x.test/", json={"a": 1}))
    assert replayable(
        client.build_request("POST", "https://x.test/", json={}, headers={"Idempotency-Key": "k"})
    )
    assert not replayable(client.build_request("POST", "https://x.test/", files={"f": b"data"}))


@respx.mock
async def test_harness_defaults_to_no_retries() -> None:
    route = respx.get(f"{API}/thing").mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json={"ok": True})]
    )
    with pytest.raises(UpstreamError, match="answered 503"):
        await run_action(flaky, "get_thing", {})
    assert route.call_count == 1


@respx.mock
async def test_5xx_is_retried_with_backoff_then_succeeds(sleeps: Sleeps) -> None:
    route = respx.get(f"{API}/thing").mock(
        side_effect=[httpx.Response(503), httpx.Response(502), httpx.Response(200, json={"ok": True})]
    )
    log: list[str] = []
    out = await run_action(flaky, "get_thing", {}, retry=policy(sleeps), log=log)
    assert out == {"ok": True}
    assert route.call_count == 3
    assert len(sleeps.waits) == 2
    assert 0.5 <= sleeps.waits[0] <= 1.0  # initial_wait plus jitter
    assert 1.0 <= sleeps.waits[1] <= 1.5
    assert log[0].startswith(f"WARNING GET {API}/thing answered 503; retry 1 in ")
    assert log[1].startswith(f"WARNING GET {API}/thing answered 502; retry 2 in ")


@respx.mock
async def test_retry_after_is_honoured(sleeps: Sleeps) -> None:
    route = respx.get(f"{API}/thing").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "3"}),
            httpx.Response(200, json={"ok": 1}),
        ]
    )
    assert await run_action(flaky, "get_thing", {}, retry=policy(sleeps)) == {"ok": 1}
    assert route.call_count == 2
    assert sleeps.waits == [3.0]


@respx.mock
async def test_retry_after_beyond_the_cap_goes_to_the_engine(sleeps: Sleeps) -> None:
    route = respx.get(f"{API}/thing").respond(429, headers={"Retry-After": "120"})
    with pytest.raises(RateLimited) as caught:
        await run_action(flaky, "get_thing", {}, retry=policy(sleeps, max_wait=10))
    assert route.call_count == 1  # not retried here: the step's retry decides
    assert caught.value.retry_after == 120.0
    assert caught.value.retry_kind == "http_429"
    assert sleeps.waits == []


@respx.mock
async def test_budget_spent_returns_the_last_answer(sleeps: Sleeps) -> None:
    route = respx.get(f"{API}/thing").respond(500, json={"message": "boom"})
    with pytest.raises(UpstreamError, match="answered 500 Internal Server Error: boom") as caught:
        await run_action(flaky, "get_thing", {}, retry=policy(sleeps, retries=2))
    assert route.call_count == 3
    assert caught.value.retry_kind == "http_5xx"


@respx.mock
async def test_not_retried_statuses_and_methods(sleeps: Sleeps) -> None:
    not_found = respx.get(f"{API}/missing").respond(404)
    with pytest.raises(UpstreamError, match="404"):
        await run_action(flaky, "get_thing", {"path": "/missing"}, retry=policy(sleeps))
    assert not_found.call_count == 1

    posts = respx.post(f"{API}/things").mock(
        side_effect=[httpx.Response(503), httpx.Response(201, json={"id": 1})]
    )
    with pytest.raises(UpstreamError, match="503"):
        await run_action(flaky, "create_thing", {}, retry=policy(sleeps))
    assert posts.call_count == 1  # a POST may have been applied: never replayed

    posts.mock(side_effect=[httpx.Response(503), httpx.Response(201, json={"id": 2})])
    out = await run_action(flaky, "create_thing", {"key": "k-1"}, retry=policy(sleeps))
    assert out == {"id": 2}
    assert posts.call_count == 3  # with an Idempotency-Key, the POST is sent again
    assert [c.request.headers.get("Idempotency-Key") for c in posts.calls] == [None, "k-1", "k-1"]


@respx.mock
async def test_connection_failures_are_retried(sleeps: Sleeps) -> None:
    route = respx.get(f"{API}/thing").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(200, json=[1])]
    )
    log: list[str] = []
    assert await run_action(flaky, "get_thing", {}, retry=policy(sleeps), log=log) == [1]
    assert route.call_count == 2
    assert "ConnectError: refused; retry 1 in" in log[0]

    respx.get(f"{API}/down").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ConnectionFailed, match="refused"):
        await run_action(flaky, "get_thing", {"path": "/down"}, retry=policy(sleeps, retries=1))


@respx.mock
async def test_budget_is_shared_by_the_requests_of_one_call(sleeps: Sleeps) -> None:
    a = respx.get(f"{API}/a").respond(503)
    b = respx.get(f"{API}/b").respond(503)
    out = await run_action(flaky, "get_two", {}, retry=policy(sleeps, retries=2))
    assert out == [503, 503]
    assert a.call_count + b.call_count == 4  # 2 requests + 2 retries in all, not 2 per request
    assert a.call_count == 3


# -- with the engine: step retries and SDK retries add up -------------------------------------------


@pytest.fixture
async def caller() -> AsyncIterator[ConnectorCaller]:
    settings = settings_for_tests(http_retries=2, http_retry_max_wait=0)
    async with build_http_client(settings) as client:
        yield ConnectorCaller(Registry.from_connectors([flaky]), client, settings)


def op_call(attempt: int) -> OperationCall:
    return OperationCall(
        uses="flaky.get_thing", params={}, connection=None, run_id="r", step_id="s", attempt=attempt
    )


@respx.mock
async def test_only_the_first_step_attempt_retries_inside_the_sdk(caller: ConnectorCaller) -> None:
    route = respx.get(f"{API}/thing").respond(503)
    with pytest.raises(UpstreamError):
        await caller(op_call(1))
    assert route.call_count == 3  # 1 + http_retries
    with pytest.raises(UpstreamError):
        await caller(op_call(2))
    assert route.call_count == 4  # the engine's retry sends once


@respx.mock
async def test_step_retry_and_sdk_retry_add_up(
    caller: ConnectorCaller, monkeypatch: pytest.MonkeyPatch, sleeps: Sleeps
) -> None:
    monkeypatch.setattr("app.engine.attempts.sleep", sleeps)
    route = respx.get(f"{API}/thing").respond(503)
    spec = load(
        """
        version: 1
        name: storm
        steps:
          - id: fetch
            uses: flaky.get_thing
            retry: {attempts: 3, initial: 1s}
        """
    )
    result = await run(spec, caller=caller)
    step = result.steps["fetch"]
    assert step.status == StepStatus.FAILED
    assert step.attempts == 3
    assert route.call_count == 5  # 3 step attempts + 2 SDK retries: added, not 3 x 3 = 9
    assert sum("retrying in" in line for line in step.logs) == 2
    assert sum("answered 503; retry" in line for line in step.logs) == 2
