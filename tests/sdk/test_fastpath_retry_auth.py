"""A retried request is sent as built: an auth flow changing its URL (a path prefix) is applied once."""

from __future__ import annotations

import httpx
import pytest

from app.sdk.auth import HeaderAuth, PathPrefixAuth, QueryParamAuth
from app.sdk.http import ConnectorHTTP, build_http_client
from app.sdk.retries import RetryPolicy
from app.sdk.testing import settings_for_tests


async def _public(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (PathPrefixAuth("/botTOKEN"), "https://api.test/botTOKEN/getMe"),
        (QueryParamAuth("key", "v"), "https://api.test/getMe?key=v"),
        (HeaderAuth("X-Key", "v"), "https://api.test/getMe"),
    ],
    ids=["path", "query", "header"],
)
async def test_every_attempt_goes_to_the_same_url(auth: httpx.Auth, expected: str) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(503 if len(seen) < 3 else 200, json={"n": len(seen)})

    async def no_wait(seconds: float) -> None:
        return None

    transport = httpx.MockTransport(handler)
    async with build_http_client(settings_for_tests(), transport=transport, resolver=_public) as client:
        budget = RetryPolicy(retries=2, sleep=no_wait).budget()
        http = ConnectorHTTP(client, base_url="https://api.test/", auth=auth, retry=budget)
        response = await http.get("getMe")
    assert response.json() == {"n": 3}
    assert seen == [expected] * 3
