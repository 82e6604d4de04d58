"""``ctx.http`` and the shared client: auth kinds applied, base URL, origin scoping, caps, cookies, limits."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx

from app.errors import StepError
from app.sdk import (
    ApiKey,
    BasicAuth,
    BearerToken,
    InvalidResponse,
    NoAuth,
    OAuth2,
    RateLimit,
    RateLimited,
    StepTimeout,
)
from app.sdk.auth import select_auth
from app.sdk.http import ConnectorHTTP, build_http_client
from app.sdk.ratelimit import RateLimiter
from app.sdk.testing import settings_for_tests

OAUTH = OAuth2(
    authorize_url="https://auth.test/authorize", token_url="https://auth.test/token", scopes=["read"]
)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with build_http_client(settings_for_tests(response_max_bytes=10_000)) as shared:
        yield shared


def scoped(
    client: httpx.AsyncClient, declared: list[Any], credentials: dict[str, Any] | None, **kw: Any
) -> ConnectorHTTP:
    _, auth = select_auth(declared, credentials, connector="demo")
    return ConnectorHTTP(client, base_url=kw.pop("base_url", "https://api.demo.test/v2"), auth=auth, **kw)


@pytest.mark.parametrize(
    ("declared", "credentials", "check"),
    [
        ([BearerToken()], {"token": "tok"}, lambda r: r.headers["Authorization"] == "Bearer tok"),
        ([OAUTH], {"access_token": "acc"}, lambda r: r.headers["Authorization"] == "Bearer acc"),
        ([ApiKey(header="X-Api-Key")], {"api_key": "k1"}, lambda r: r.headers["X-Api-Key"] == "k1"),
        (
            [ApiKey(header="Authorization", prefix="Token ")],
            {"api_key": "k2"},
            lambda r: r.headers["Authorization"] == "Token k2",
        ),
        ([ApiKey(query="api_key")], {"api_key": "k3"}, lambda r: r.url.params["api_key"] == "k3"),
        (
            [BasicAuth()],
            {"username": "ann", "password": "pw"},
            lambda r: r.headers["Authorization"] == "Basic " + base64.b64encode(b"ann:pw").decode(),
        ),
        ([NoAuth()], None, lambda r: "Authorization" not in r.headers),
        (
            [OAUTH, BearerToken()],
            {"kind": "bearer", "token": "pat"},
            lambda r: r.headers["Authorization"] == "Bearer pat",
        ),
    ],
)
@respx.mock
async def test_auth_kinds_are_applied(
    client: httpx.AsyncClient, declared: list[Any], credentials: Any, check: Any
) -> None:
    route = respx.get("https://api.demo.test/v2/items").respond(json=[])
    http = scoped(client, declared, credentials)
    response = await http.get("/items", params={"page": 1})
    assert response.status_code == 200
    sent = route.calls.last.request
    assert check(sent)
    assert sent.url.params["page"] == "1"
    assert sent.headers["User-Agent"].startswith("mashpipe/")


@respx.mock
async def test_auth_is_not_sent_to_another_origin(client: httpx.AsyncClient) -> None:
    own = respx.get("https://api.demo.test/v2/me").respond(json={})
    cdn = respx.get("https://cdn.other.test/file").respond(text="x")
    plain = respx.get("http://api.demo.test/v2/me").respond(json={})
    http = scoped(client, [BearerToken()], {"token": "tok"})
    await http.get("me")
    await http.get("https://cdn.other.test/file")
    await http.get("http://api.demo.test/v2/me")  # another scheme: another origin
    assert own.calls[0].request.headers["Authorization"] == "Bearer tok"
    assert "Authorization" not in cdn.calls.last.request.headers
    assert "Authorization" not in plain.calls.last.request.headers


@respx.mock
async def test_query_api_key_is_not_sent_elsewhere(client: httpx.AsyncClient) -> None:
    other = respx.get("https://elsewhere.test/x").respond(json={})
    http = scoped(client, [ApiKey(query="key")], {"api_key": "k"})
    await http.get("https://elsewhere.test/x")
    assert "key" not in other.calls.last.request.url.params


def test_select_auth_errors() -> None:
    with pytest.raises(
        StepError, match="demo needs a connection \\(accepted auth: oauth2, bearer\\)"
    ) as caught:
        select_auth([OAUTH, BearerToken()], None, connector="demo")
    assert caught.value.code == "connection_required"
    with pytest.raises(StepError, match="does not accept 'basic' connections"):
        select_auth([BearerToken()], {"kind": "basic", "username": "u", "password": "p"}, connector="demo")
    with pytest.raises(StepError, match="the bearer connection for demo lacks token"):
        select_auth([BearerToken()], {"kind": "bearer"}, connector="demo")
    with pytest.raises(StepError, match="expected the fields of one of \\(bearer: token\\)"):
        select_auth([BearerToken()], {"password": "x"}, connector="demo")
    kind, auth = select_auth([NoAuth(), BearerToken()], {"token": "t"}, connector="demo")
    assert kind.kind == "bearer"
    assert auth is not None


def test_url_joining(client: httpx.AsyncClient) -> None:
    http = ConnectorHTTP(client, base_url="https://api.demo.test/v2")
    assert str(http.resolve_url("/items")) == "https://api.demo.test/v2/items"
    assert str(http.resolve_url("items?x=1")) == "https://api.demo.test/v2/items?x=1"
    assert str(http.resolve_url("https://other.test/a")) == "https://other.test/a"
    with pytest.raises(StepError, match="scheme-relative URL"):
        http.resolve_url("//evil.test/a")
    bare = ConnectorHTTP(client)
    with pytest.raises(StepError, match="the connector has no base URL"):
        bare.resolve_url("/items")


async def test_decoded_body_is_capped_too() -> None:
    """A small gzip body that inflates past the limit is refused (a "zip bomb")."""
    import gzip

    payload = gzip.compress(b"0" * 200_000)
    assert len(payload) < 10_000

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=payload)

    settings = settings_for_tests(response_max_bytes=10_000)
    async with build_http_client(
        settings, transport=httpx.MockTransport(handler), resolver=_public
    ) as shared:
        http = ConnectorHTTP(shared, max_response_bytes=10_000)
        with pytest.raises(InvalidResponse, match="response body exceeds 10000 bytes"):
            await http.get("https://bomb.test/")


async def _public(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]


@respx.mock
async def test_raw_cap_through_the_real_stack(client: httpx.AsyncClient) -> None:
    respx.get("https://api.demo.test/v2/big").respond(content=b"z" * 20_000)
    http = scoped(client, [NoAuth()], None, max_response_bytes=10_000)
    with pytest.raises(InvalidResponse, match="response body exceeds 10000 bytes"):
        await http.get("big")


@respx.mock
async def test_cookies_are_never_kept(client: httpx.AsyncClient) -> None:
    respx.get("https://api.demo.test/v2/login").respond(headers={"Set-Cookie": "session=abc; Path=/"})
    after = respx.get("https://api.demo.test/v2/private").respond(json={})
    http = scoped(client, [NoAuth()], None)
    await http.get("login")
    await http.get("private")
    assert "cookie" not in after.calls.last.request.headers
    assert len(client.cookies.jar) == 0


@respx.mock
async def test_timeouts_and_network_errors_become_typed(client: httpx.AsyncClient) -> None:
    respx.get("https://api.demo.test/v2/slow").mock(side_effect=httpx.ReadTimeout("slow"))
    respx.get("https://api.demo.test/v2/down").mock(side_effect=httpx.ConnectError("refused"))
    http = scoped(client, [NoAuth()], None)
    with pytest.raises(StepTimeout, match=r"GET https://api\.demo\.test/v2/slow: timed out"):
        await http.get("slow")
    with pytest.raises(StepError, match="ConnectError: refused") as caught:
        await http.get("down")
    assert caught.value.retry_kind == "connection"


@respx.mock
async def test_stream_yields_unread_response(client: httpx.AsyncClient) -> None:
    respx.get("https://api.demo.test/v2/file").respond(content=b"abc" * 100)
    http = scoped(client, [NoAuth()], None)
    async with http.stream("GET", "file") as response:
        chunks = [chunk async for chunk in response.aiter_bytes()]
    assert b"".join(chunks) == b"abc" * 100


async def test_rate_limiter_waits_then_refuses() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # callers queue concurrently: the clock does not move
        slept.append(seconds)

    limiter = RateLimiter(RateLimit(2, per="minute"), max_wait=40.0, clock=lambda: now[0], sleep=sleep)
    await limiter.acquire()
    await limiter.acquire()
    assert slept == []
    await limiter.acquire()  # third in the same minute: waits for the next slot (30 s)
    assert slept == [30.0]
    with pytest.raises(RateLimited, match="2 requests per minute for demo is used up") as caught:
        await limiter.acquire(what="demo")  # the slot after that is 60 s away: beyond max_wait
    assert caught.value.retry_after == 60.0
    assert caught.value.retry_kind == "http_429"
    now[0] += 120  # two minutes later the bucket is full again
    await limiter.acquire()
    await limiter.acquire()
    assert slept == [30.0]


@respx.mock
async def test_rate_limit_applies_to_requests(client: httpx.AsyncClient) -> None:
    respx.get("https://api.demo.test/v2/x").respond(json={})
    limiter = RateLimiter(RateLimit(1, per="hour"), max_wait=1.0)
    http = scoped(client, [NoAuth()], None, limiter=limiter, limiter_name="demo")
    await http.get("x")
    with pytest.raises(RateLimited, match="for demo is used up"):
        await http.get("x")
