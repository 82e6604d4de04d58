"""The declared rate limit is kept in memory per connector, account and connection (``ConnectorCaller``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
import respx
from pydantic import BaseModel

from app.engine.types import OperationCall
from app.registry import Registry
from app.runtime.caller import ConnectorCaller
from app.sdk import BearerToken, Connector, Context, RateLimit, RateLimited
from app.sdk.http import build_http_client
from app.sdk.testing import settings_for_tests

limited = Connector(
    key="limited",
    version="1.0.0",
    title="Limited",
    description="Two requests a day per connection.",
    base_url="https://limited.test",
    auth=[BearerToken()],
    test_request=("GET", "/me"),
    rate_limit=RateLimit(2, per="day"),
)


class Nothing(BaseModel):
    pass


@limited.action(title="Ping")
async def ping(ctx: Context, p: Nothing) -> Any:
    """Ping the API."""
    return await ctx.request_json("GET", "/ping")


async def connections(account_id: str | None, name: str) -> Mapping[str, Any] | None:
    return {"kind": "bearer", "token": f"{account_id}-{name}-token"}


@pytest.fixture
async def caller() -> AsyncIterator[ConnectorCaller]:
    settings = settings_for_tests()
    async with build_http_client(settings) as client:
        yield ConnectorCaller(Registry.from_connectors([limited]), client, settings, connections)


def ping_with(connection: str) -> OperationCall:
    return OperationCall(
        uses="limited.ping", params={}, connection=connection, run_id="r", step_id="s", attempt=1
    )


@respx.mock
async def test_each_connection_has_its_own_budget(caller: ConnectorCaller) -> None:
    route = respx.get("https://limited.test/ping").respond(json={"pong": True})
    alice = caller.for_account("alice")
    for _ in range(2):
        await alice(ping_with("work"))
    with pytest.raises(
        RateLimited, match="2 requests per day for limited connection work is used up"
    ) as caught:
        await alice(ping_with("work"))
    assert caught.value.retry_kind == "http_429"
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 3600  # the next slot is hours away: not waited for
    assert route.call_count == 2  # the refused request never left

    await alice(ping_with("home"))  # another connection of the same account
    await caller.for_account("bob")(ping_with("work"))  # the same name in another account
    assert route.call_count == 4

    again = caller.for_account("alice")  # callers of one process share the buckets
    with pytest.raises(RateLimited):
        await again(ping_with("work"))
