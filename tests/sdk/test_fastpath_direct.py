"""Task R2: the direct path of connector requests (``app.sdk.direct``) against real servers on 127.0.0.1.

Every scenario runs twice over the same aiohttp transport: through the direct path (the default
when the client was built over aiohttp) and through httpx's client (the general path, forced), and
the outcomes are compared: the same result, the same typed error with the same message, the same
limits. A spy on ``client.send`` proves which path was taken.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from aiohttp import web

from app.errors import MashpipeError
from app.sdk.auth import HeaderAuth, PathPrefixAuth, QueryParamAuth
from app.sdk.cache import HttpCache
from app.sdk.context import Context
from app.sdk.direct import DirectSender, DirectStream
from app.sdk.http import ConnectorHTTP, OutboundClient, build_http_client
from app.sdk.ratelimit import RateLimit, RateLimiter
from app.sdk.retries import RetryPolicy
from app.sdk.testing import settings_for_tests

LIMIT = 4096
SECRET = "s3cr3t-token-value"
Server = Callable[[dict[str, Any]], Awaitable[str]]


class Spy:
    """Counts the calls of the client's own ``send`` (the general path)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.calls = 0
        original = client.send

        async def send(*args: Any, **kwargs: Any) -> httpx.Response:
            self.calls += 1
            return await original(*args, **kwargs)

        client.send = send  # type: ignore[method-assign]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for_tests(
        http_transport="aiohttp", egress_allow="127.0.0.1/32", response_max_bytes=LIMIT, http_timeout=0.5
    )
    async with build_http_client(settings) as built:
        yield built


def pair(client: httpx.AsyncClient, **options: Any) -> tuple[ConnectorHTTP, ConnectorHTTP, Spy]:
    """The same connector view twice: direct, and forced through the general path."""
    options.setdefault("max_response_bytes", LIMIT)
    direct = ConnectorHTTP(client, **options)
    general = ConnectorHTTP(client, **options)
    general._direct = None
    assert direct._direct is not None
    return direct, general, Spy(client)


def outcome_of(result: Any) -> Any:
    """What must be equal between the two paths: a response's visible parts, or an error's."""
    if isinstance(result, BaseException):
        described: dict[str, Any] = {"type": type(result).__name__, "message": str(result)}
        if isinstance(result, MashpipeError):
            described.update(
                code=result.code, details=result.details, retry_kind=getattr(result, "retry_kind", None)
            )
        return described
    if isinstance(result, httpx.Response):
        headers = [(k, v) for k, v in result.headers.multi_items() if k != "date"]
        return {
            "status": result.status_code,
            "reason": result.reason_phrase,
            "version": result.http_version,
            "url": str(result.url),
            "method": result.request.method,
            "request_headers": result.request.headers.multi_items(),
            "headers": headers,
            "content": result.content,
            "history": [(r.status_code, str(r.url)) for r in result.history],
            "next": str(result.next_request.url) if result.next_request is not None else None,
            "closed": (result.is_closed, result.is_stream_consumed),
        }
    return result


async def both(
    direct: ConnectorHTTP,
    general: ConnectorHTTP,
    spy: Spy,
    call: Callable[[ConnectorHTTP], Awaitable[Any]],
    *,
    sends: bool = True,
) -> Any:
    """Run ``call`` on both paths; check the spy (``sends``: the call reaches the client); the outcome."""
    results = []
    for http, expected_sends in ((direct, 0), (general, int(sends))):
        before = spy.calls
        try:
            result: Any = await call(http)
        except Exception as exc:
            result = exc
        results.append(outcome_of(result))
        sent = spy.calls - before
        assert (sent == 0) if expected_sends == 0 else (sent >= 1), (http is direct, sent)
    assert results[0] == results[1]
    return results[0]


def ctx_of(http: ConnectorHTTP) -> Context:
    return Context(connector="t", operation="t", http=http)


@pytest.fixture
async def server(local_server: Server) -> dict[str, Any]:
    """One server with every route the scenarios use; ``hits`` counts the requests per path."""
    hits: dict[str, int] = {}

    def counted(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            hits[request.path] = hits.get(request.path, 0) + 1
            return await handler(request)

        return wrapped

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "method": request.method,
                "query": request.query_string,
                "headers": [[k.decode().lower(), v.decode()] for k, v in request.raw_headers],
                "body": (await request.read()).decode("latin-1"),
            },
            reason="Fine Thanks",
        )

    async def items(request: web.Request) -> web.Response:
        return web.json_response([{"id": i, "big": 2**70 + i} for i in range(20)])

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="<html>not json</html>", content_type="text/html")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/echo?from=redirect")

    async def see_other(request: web.Request) -> web.Response:
        raise web.HTTPSeeOther("/echo")

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def declared(request: web.Request) -> web.Response:
        return web.Response(body=b"y" * (LIMIT + 1))

    async def streamed(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(50):
            await response.write(b"z" * 1024)
        await response.write_eof()
        return response

    async def bomb(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(b"0" * (LIMIT * 50)),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    async def zipped(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(b'{"zipped": true}'),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    throttled: dict[str, int] = {}

    async def flaky(request: web.Request) -> web.Response:
        key = request.query.get("run", "")
        throttled[key] = throttled.get(key, 0) + 1
        if throttled[key] == 1:
            return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "1"})
        return web.json_response({"ok": True, "attempt": throttled[key]})

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="late")

    async def cookie(request: web.Request) -> web.Response:
        response = web.json_response({"cookie": request.headers.get("Cookie")})
        response.set_cookie("session", "abc")
        return response

    async def missing(request: web.Request) -> web.Response:
        return web.json_response({"message": f"no such thing: {request.path}"}, status=404)

    routes = {
        "GET /echo": echo,
        "POST /echo": echo,
        "GET /items": items,
        "GET /text": text,
        "GET /redirect": redirect,
        "POST /see-other": see_other,
        "GET /loop": loop,
        "GET /declared": declared,
        "GET /streamed": streamed,
        "GET /bomb": bomb,
        "GET /zipped": zipped,
        "GET /flaky": flaky,
        "GET /hang": hang,
        "GET /cookie": cookie,
        "GET /missing/{rest:.*}": missing,
    }
    base = await local_server({route: counted(handler) for route, handler in routes.items()})
    return {"base": base, "hits": hits}


async def test_the_default_client_has_a_direct_sender_and_others_do_not() -> None:
    async with build_http_client(settings_for_tests(http_transport="aiohttp")) as client:
        assert isinstance(client, OutboundClient)
        assert isinstance(client.direct, DirectSender)
    async with build_http_client(settings_for_tests(http_transport="httpx")) as client:
        assert getattr(client, "direct", "absent") is None
    async with build_http_client(
        settings_for_tests(), transport=httpx.MockTransport(lambda r: httpx.Response(200))
    ) as c:
        assert ConnectorHTTP(c)._direct is None


async def test_request_json_is_the_same_value(client: httpx.AsyncClient, server: dict[str, Any]) -> None:
    direct, general, spy = pair(client, base_url=server["base"])
    outcome = await both(direct, general, spy, lambda http: ctx_of(http).request_json("GET", "items"))
    assert outcome[0] == {"id": 0, "big": 2**70}


async def test_a_response_is_the_same(client: httpx.AsyncClient, server: dict[str, Any]) -> None:
    direct, general, spy = pair(client, base_url=server["base"], headers={"X-Conn": "1"})
    outcome = await both(direct, general, spy, lambda http: http.get("echo", params={"a": "1"}))
    assert outcome["status"] == 200
    assert outcome["reason"] == "Fine Thanks"
    outcome = await both(direct, general, spy, lambda http: http.post("echo", json={"k": ["v", 1]}))
    assert b'"body": "{\\"k\\":[\\"v\\",1]}"' in outcome["content"]
    async with direct.stream("GET", "echo") as streamed:
        assert isinstance(streamed.stream, DirectStream)
        body = b"".join([chunk async for chunk in streamed.aiter_bytes()])
    assert b'"method": "GET"' in body
    assert streamed.elapsed.total_seconds() >= 0


async def test_headers_are_merged_case_insensitively_on_the_wire(
    client: httpx.AsyncClient, server: dict[str, Any]
) -> None:
    direct, general, spy = pair(client, base_url=server["base"], headers={"accept": "text/csv", "x-key": "a"})

    async def call(http: ConnectorHTTP) -> Any:
        return await ctx_of(http).request_json(
            "GET", "echo", headers={"Accept": "application/json", "X-KEY": "b"}
        )

    outcome = await both(direct, general, spy, call)
    sent = [name for name, _ in outcome["headers"]]
    assert sent.count("accept") == 1
    assert sent.count("x-key") == 1
    assert ["accept", "application/json"] in outcome["headers"]
    assert ["x-key", "b"] in outcome["headers"]


@pytest.mark.parametrize(
    "auth",
    [
        HeaderAuth("Authorization", f"Bearer {SECRET}"),
        QueryParamAuth("key", SECRET),
        httpx.BasicAuth("u", SECRET),
    ],
    ids=["header", "query", "basic"],
)
async def test_plain_auths_are_applied_on_the_direct_path(
    client: httpx.AsyncClient, server: dict[str, Any], auth: httpx.Auth
) -> None:
    direct, general, spy = pair(client, base_url=server["base"], auth=auth)
    outcome = await both(direct, general, spy, lambda http: ctx_of(http).request_json("GET", "echo"))
    sent = str(outcome)  # the server echoes what it received
    assert SECRET in sent or "Basic dTpzM2NyM3QtdG9rZW4tdmFsdWU=" in sent


async def test_other_auth_flows_and_cached_requests_take_the_general_path(
    client: httpx.AsyncClient, server: dict[str, Any]
) -> None:
    spy = Spy(client)
    prefixed = ConnectorHTTP(client, base_url=server["base"], auth=PathPrefixAuth("/missing"))
    assert prefixed._direct is None
    with pytest.raises(MashpipeError, match="404"):
        await ctx_of(prefixed).request_json("GET", "x")
    cached = ConnectorHTTP(client, base_url=server["base"], cache=HttpCache(ttl=60))
    await cached.get("echo")
    assert spy.calls == 2
    await cached.post("echo")  # a POST is never cached: direct
    assert spy.calls == 2


async def test_redirects_are_followed_alike(client: httpx.AsyncClient, server: dict[str, Any]) -> None:
    direct, general, spy = pair(
        client, base_url=server["base"], auth=HeaderAuth("Authorization", "Bearer t0ken")
    )
    outcome = await both(direct, general, spy, lambda http: http.get("redirect"))
    assert outcome["history"] == [(302, f"{server['base']}/redirect")]
    assert ["authorization", "Bearer t0ken"] in [list(pair) for pair in outcome["request_headers"]]
    outcome = await both(direct, general, spy, lambda http: http.post("see-other", content=b"body"))
    assert outcome["method"] == "GET"
    assert b'"body": ""' in outcome["content"]
    outcome = await both(direct, general, spy, lambda http: http.get("redirect", follow_redirects=False))
    assert outcome["status"] == 302
    assert outcome["next"] == f"{server['base']}/echo?from=redirect"
    outcome = await both(direct, general, spy, lambda http: http.get("loop"))
    assert outcome["type"] == "UpstreamError"
    assert "too many redirects" in outcome["message"]


async def test_a_redirect_to_a_refused_address_is_refused_alike(local_server: Server) -> None:
    hits: list[str] = []

    async def target(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"secret": True})

    target_port = httpx.URL(await local_server({"GET /secret": target})).port

    async def start(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{target_port}/secret")

    start_port = httpx.URL(await local_server({"GET /start": start})).port
    settings = settings_for_tests(http_transport="aiohttp", egress_allow=f"127.0.0.1:{start_port}")
    async with build_http_client(settings) as client:
        direct, general, spy = pair(client)
        call = lambda http: http.get(f"http://127.0.0.1:{start_port}/start")  # noqa: E731
        outcome = await both(direct, general, spy, call)
    assert outcome["type"] == "EgressDenied"
    assert "127.0.0.1 (loopback)" in outcome["message"]
    assert hits == []


@pytest.mark.parametrize("path", ["declared", "streamed", "bomb"])
async def test_bodies_past_the_limit_fail_alike(
    client: httpx.AsyncClient, server: dict[str, Any], path: str
) -> None:
    direct, general, spy = pair(client, base_url=server["base"])
    outcome = await both(direct, general, spy, lambda http: http.get(path))
    assert outcome["type"] == "InvalidResponse"
    assert f"response body exceeds {LIMIT} bytes" in outcome["message"]


async def test_a_smaller_connector_limit_applies_too(
    client: httpx.AsyncClient, server: dict[str, Any]
) -> None:
    direct, general, spy = pair(client, base_url=server["base"], max_response_bytes=100)
    outcome = await both(direct, general, spy, lambda http: http.get("items"))
    assert outcome["type"] == "InvalidResponse"
    assert "exceeds 100 bytes" in outcome["message"]


async def test_compressed_bodies_are_decoded_alike(client: httpx.AsyncClient, server: dict[str, Any]) -> None:
    direct, general, spy = pair(client, base_url=server["base"])
    outcome = await both(direct, general, spy, lambda http: ctx_of(http).request_json("GET", "zipped"))
    assert outcome == {"zipped": True}


async def test_429_with_retry_after_then_success(client: httpx.AsyncClient, server: dict[str, Any]) -> None:
    waits: dict[str, list[float]] = {"direct": [], "general": []}
    notes: dict[str, list[str]] = {"direct": [], "general": []}

    def view(name: str) -> ConnectorHTTP:
        async def sleep(seconds: float) -> None:
            waits[name].append(seconds)

        policy = RetryPolicy(retries=2, sleep=sleep)
        http = ConnectorHTTP(
            client,
            base_url=server["base"],
            retry=policy.budget(note=notes[name].append),
            max_response_bytes=LIMIT,
        )
        if name == "general":
            http._direct = None
        return http

    spy = Spy(client)
    direct_result = await ctx_of(view("direct")).request_json("GET", "flaky", params={"run": "1"})
    assert spy.calls == 0
    general_result = await ctx_of(view("general")).request_json("GET", "flaky", params={"run": "2"})
    assert spy.calls == 2
    assert direct_result == general_result == {"ok": True, "attempt": 2}
    assert waits["direct"] == waits["general"] == [1.0]
    assert [note.replace("run=2", "run=1") for note in notes["general"]] == notes["direct"]
    assert "answered 429; retry 1" in notes["direct"][0]


async def test_timeouts_fail_alike(client: httpx.AsyncClient, server: dict[str, Any]) -> None:
    direct, general, spy = pair(client, base_url=server["base"])
    outcome = await both(direct, general, spy, lambda http: http.get("hang"))
    assert outcome["type"] == "StepTimeout"
    assert outcome["retry_kind"] == "timeout"


async def test_a_refused_connection_fails_alike_with_secrets_masked(client: httpx.AsyncClient) -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    direct, general, spy = pair(client, secrets=[SECRET])
    url = f"http://127.0.0.1:{port}/bot{SECRET}/getMe"
    outcome = await both(direct, general, spy, lambda http: http.get(url))
    assert outcome["type"] == "ConnectionFailed"
    assert SECRET not in str(outcome)
    assert "***" in outcome["message"]
    with pytest.raises(MashpipeError) as caught:
        await direct.get(url)
    assert caught.value.__cause__ is None  # the transport error naming the secret is not chained


async def test_error_statuses_and_bodies_that_are_not_json(
    client: httpx.AsyncClient, server: dict[str, Any]
) -> None:
    direct, general, spy = pair(client, base_url=server["base"], secrets=[SECRET])
    outcome = await both(direct, general, spy, lambda http: ctx_of(http).request_json("GET", "text"))
    assert outcome["type"] == "InvalidResponse"
    assert "not valid JSON" in outcome["message"]
    outcome = await both(
        direct, general, spy, lambda http: ctx_of(http).request_json("GET", f"missing/{SECRET}")
    )
    assert outcome["type"] == "NotFound"


async def test_the_rate_limiter_is_shared_by_both_paths(
    client: httpx.AsyncClient, server: dict[str, Any]
) -> None:
    limiter = RateLimiter(RateLimit(requests=1, per="minute"), max_wait=0)
    direct, general, spy = pair(client, base_url=server["base"], limiter=limiter, limiter_name="conn")
    await direct.get("echo")
    outcome = await both(direct, general, spy, lambda http: http.get("echo"), sends=False)
    assert outcome["type"] == "RateLimited"
    assert server["hits"]["/echo"] == 1


async def test_cookies_are_never_kept(client: httpx.AsyncClient, server: dict[str, Any]) -> None:
    direct, general, spy = pair(client, base_url=server["base"])
    await direct.get("cookie")
    outcome = await both(direct, general, spy, lambda http: ctx_of(http).request_json("GET", "cookie"))
    assert outcome == {"cookie": None}


async def test_httpx_log_line_is_written_with_secrets_masked(
    client: httpx.AsyncClient, server: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    direct, general, _spy = pair(client, base_url=server["base"], secrets=[SECRET])
    lines: dict[str, list[str]] = {}
    for name, http in (("direct", direct), ("general", general)):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="httpx"):
            await http.get("echo", params={"token": SECRET})
        lines[name] = [record.getMessage() for record in caplog.records if record.name == "httpx"]
    assert lines["direct"] == lines["general"]
    assert len(lines["direct"]) == 1
    assert "HTTP Request: GET" in lines["direct"][0]
    assert SECRET not in lines["direct"][0]


async def test_a_closed_client_falls_back_to_the_general_path_and_is_refused(server: dict[str, Any]) -> None:
    settings = settings_for_tests(http_transport="aiohttp", egress_allow="127.0.0.1/32")
    client = build_http_client(settings)
    direct, general, spy = pair(client, base_url=server["base"])
    await client.aclose()
    for http in (direct, general):
        with pytest.raises(RuntimeError, match="client has been closed"):
            await http.get("echo")
    assert spy.calls == 2
