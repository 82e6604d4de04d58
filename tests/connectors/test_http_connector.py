"""The ``http`` connector: respx tests, and end-to-end against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from aiohttp import web

from app.engine.types import OperationCall
from app.errors import EgressDenied, StepError
from app.registry import Registry
from app.runtime.caller import ConnectorCaller
from app.sdk import InvalidResponse, NotFound, RateLimited, UpstreamError
from app.sdk.http import build_http_client
from app.sdk.testing import check_connector, run_action, settings_for_tests
from connectors.http import connector as http_connector

TRANSPORTS = ["httpx", "aiohttp"]  # both outbound transports keep the egress guard: tested on each


def test_standard_checks() -> None:
    assert check_connector(http_connector) == []
    assert http_connector.base_url is None
    assert http_connector.auth_kinds() == ["none"]
    assert [op.name for op in http_connector.actions()] == ["request", "get_json"]


@respx.mock
async def test_request_returns_status_headers_and_json_body() -> None:
    route = respx.post("https://api.example.test/things").respond(
        201, json={"id": 1}, headers={"X-Trace": "abc", "Set-Cookie": "a=1"}
    )
    out = await run_action(
        http_connector,
        "request",
        {
            "method": "POST",
            "url": "https://api.example.test/things",
            "headers": {"X-Key": "v"},
            "query": {"tags": ["a", "b"], "n": 2, "flag": True},
            "json": {"name": "thing"},
        },
    )
    assert out["status"] == 201
    assert out["body"] == {"id": 1}
    assert out["headers"]["x-trace"] == "abc"
    assert out["headers"]["content-type"] == "application/json"
    assert out["url"] == "https://api.example.test/things?tags=a&tags=b&n=2&flag=true"
    sent = route.calls.last.request
    assert sent.headers["X-Key"] == "v"
    assert json.loads(sent.content) == {"name": "thing"}


@respx.mock
async def test_request_non_2xx_is_a_result() -> None:
    respx.get("https://api.example.test/missing").respond(404, text="not here")
    out = await run_action(http_connector, "request", {"url": "https://api.example.test/missing"})
    assert out == {
        "status": 404,
        "headers": {"content-length": "8", "content-type": "text/plain; charset=utf-8"},
        "url": "https://api.example.test/missing",
        "body": "not here",
    }
    with pytest.raises(NotFound):
        await run_action(
            http_connector, "request", {"url": "https://api.example.test/missing", "raise_for_status": True}
        )


@respx.mock
async def test_request_text_body_and_empty_body() -> None:
    route = respx.put("https://api.example.test/raw").respond(204)
    out = await run_action(
        http_connector,
        "request",
        {
            "method": "PUT",
            "url": "https://api.example.test/raw",
            "body": "plain text",
            "headers": {"Content-Type": "text/plain"},
        },
    )
    assert out["status"] == 204
    assert out["body"] is None
    assert route.calls.last.request.content == b"plain text"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"url": "ftp://x.test/"}, "url: Value error, an absolute http:// or https:// URL is required"),
        ({"url": "/relative"}, "an absolute http:// or https:// URL is required"),
        ({"url": "https://x.test", "method": "BREW"}, "method: Input should be"),
        ({"url": "https://x.test", "json": {"a": 1}, "body": "x"}, "give either json or body, not both"),
        ({"url": "https://x.test", "headers": {"Host": "evil"}}, "cannot be given: Host"),
        ({"url": "https://x.test", "unknown": 1}, "unknown: Extra inputs are not permitted"),
        ({}, "url: Field required"),
    ],
)
async def test_request_params_are_validated(params: dict[str, Any], message: str) -> None:
    with pytest.raises(StepError) as caught:
        await run_action(http_connector, "request", params)
    assert caught.value.code == "invalid_params"
    assert message in caught.value.message


@respx.mock
async def test_get_json() -> None:
    route = respx.get("https://api.example.test/data").respond(json={"items": [1, 2, 3]})
    out = await run_action(
        http_connector, "get_json", {"url": "https://api.example.test/data?x=1", "query": {"y": 2}}
    )
    assert out == {"items": [1, 2, 3]}
    sent = route.calls.last.request
    assert sent.url.params["x"] == "1"
    assert sent.url.params["y"] == "2"
    assert sent.headers["Accept"] == "application/json"


@pytest.mark.parametrize(
    ("status", "error", "retry_kind"),
    [
        (404, NotFound, None),
        (429, RateLimited, "http_429"),
        (503, UpstreamError, "http_5xx"),
        (400, UpstreamError, None),
    ],
)
@respx.mock
async def test_get_json_errors_are_typed(status: int, error: type[StepError], retry_kind: str | None) -> None:
    respx.get("https://api.example.test/e").respond(status, json={"message": "boom"})
    with pytest.raises(error) as caught:
        await run_action(http_connector, "get_json", {"url": "https://api.example.test/e"})
    assert caught.value.retry_kind == retry_kind
    assert "boom" in caught.value.message


@respx.mock
async def test_get_json_malformed_body() -> None:
    respx.get("https://api.example.test/bad").respond(text="<html>oops</html>")
    with pytest.raises(InvalidResponse, match="the response is not valid JSON") as caught:
        await run_action(http_connector, "get_json", {"url": "https://api.example.test/bad"})
    assert "<html>oops" in caught.value.message


async def test_private_destinations_are_refused_without_allowlist() -> None:
    for url in ("http://127.0.0.1:9/", "http://[::1]/", "http://169.254.169.254/latest", "http://10.0.0.1/"):
        with pytest.raises(EgressDenied, match="allow it with MASHPIPE_EGRESS_ALLOW"):
            await run_action(http_connector, "get_json", {"url": url})


# -- end to end, real server on 127.0.0.1 ----------------------------------------------------------


@pytest.fixture
async def upstream(local_server: Any) -> AsyncIterator[str]:
    release = asyncio.Event()

    async def items(request: web.Request) -> web.Response:
        limit = int(request.query.get("limit", "3"))
        return web.json_response([{"id": i, "name": f"item {i}"} for i in range(limit)])

    async def echo(request: web.Request) -> web.Response:
        body = await request.text()
        return web.json_response(
            {
                "method": request.method,
                "query": dict(request.query),
                "body": body,
                "ua": request.headers.get("User-Agent"),
            },
            status=202,
        )

    async def flaky(request: web.Request) -> web.Response:
        return web.json_response({"error": "overloaded"}, status=503, headers={"Retry-After": "2"})

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/items?limit=1")

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<h1>hello</h1>", content_type="text/html")

    async def slow(request: web.Request) -> web.Response:
        await release.wait()  # until the test is done: the client must give up first
        return web.json_response({})

    base: str = await local_server(
        {
            "GET /items": items,
            "POST /echo": echo,
            "GET /flaky": flaky,
            "GET /redirect": redirect,
            "GET /html": html,
            "GET /slow": slow,
        }
    )
    yield base
    release.set()


def call(uses: str, params: dict[str, Any]) -> OperationCall:
    return OperationCall(
        uses=uses, params=params, connection=None, run_id="r", step_id="s", attempt=1, log=[]
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_end_to_end_against_local_server(upstream: str, transport: str) -> None:
    settings = settings_for_tests(http_transport=transport, egress_allow="127.0.0.1/32")
    async with build_http_client(settings) as client:
        caller = ConnectorCaller(Registry.load(settings_for_tests(connectors="http")), client, settings)
        assert await caller(call("http.get_json", {"url": f"{upstream}/items", "query": {"limit": 2}})) == [
            {"id": 0, "name": "item 0"},
            {"id": 1, "name": "item 1"},
        ]
        echoed = await caller(
            call("http.request", {"method": "POST", "url": f"{upstream}/echo?a=1", "json": {"x": [1, 2]}})
        )
        assert echoed["status"] == 202
        assert echoed["body"]["method"] == "POST"
        assert echoed["body"]["query"] == {"a": "1"}
        assert json.loads(echoed["body"]["body"]) == {"x": [1, 2]}
        assert echoed["body"]["ua"].startswith("mashpipe/")
        redirected = await caller(call("http.get_json", {"url": f"{upstream}/redirect"}))
        assert redirected == [{"id": 0, "name": "item 0"}]
        page = await caller(call("http.request", {"url": f"{upstream}/html"}))
        assert page["body"] == "<h1>hello</h1>"
        with pytest.raises(UpstreamError) as caught:
            await caller(call("http.get_json", {"url": f"{upstream}/flaky"}))
        assert caught.value.retry_kind == "http_5xx"
        assert caught.value.retry_after == 2.0
        assert "overloaded" in caught.value.message


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_end_to_end_timeout_is_typed(upstream: str, transport: str) -> None:
    settings = settings_for_tests(http_transport=transport, egress_allow="127.0.0.1/32", http_timeout=0.2)
    async with build_http_client(settings) as client:
        caller = ConnectorCaller(Registry.from_connectors([http_connector]), client, settings)
        with pytest.raises(StepError) as caught:
            await caller(call("http.get_json", {"url": f"{upstream}/slow"}))
    assert caught.value.code == "timeout"
    assert caught.value.retry_kind == "timeout"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_end_to_end_refused_without_allowlist(upstream: str, transport: str) -> None:
    settings = settings_for_tests(http_transport=transport)
    async with build_http_client(settings) as client:
        caller = ConnectorCaller(Registry.from_connectors([http_connector]), client, settings)
        with pytest.raises(EgressDenied, match=r"refusing to connect to 127\.0\.0\.1 \(loopback\)"):
            await caller(call("http.get_json", {"url": f"{upstream}/items"}))


async def test_end_to_end_through_aiohttp_transport(upstream: str) -> None:
    settings = settings_for_tests(egress_allow="127.0.0.1/32", http_transport="aiohttp")
    async with build_http_client(settings) as client:
        assert type(client._transport.inner).__name__ == "PinnedAiohttpTransport"  # type: ignore[attr-defined]
        caller = ConnectorCaller(Registry.from_connectors([http_connector]), client, settings)
        out = await caller(call("http.get_json", {"url": f"{upstream}/items", "query": {"limit": 1}}))
    assert out == [{"id": 0, "name": "item 0"}]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_response_size_cap_end_to_end(local_server: Any, transport: str) -> None:
    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        try:
            for _ in range(1000):
                await response.write(b"x" * 65536)
        except (ConnectionResetError, RuntimeError):
            pass  # the client hung up, as expected
        return response

    base = await local_server({"GET /huge": huge})
    settings = settings_for_tests(
        http_transport=transport, egress_allow="127.0.0.1/32", response_max_bytes=100_000
    )
    async with build_http_client(settings) as client:
        caller = ConnectorCaller(Registry.from_connectors([http_connector]), client, settings)
        with pytest.raises(InvalidResponse, match="response body exceeds 100000 bytes"):
            await caller(call("http.request", {"url": f"{base}/huge"}))


def test_http_connector_is_registered_in_pyproject() -> None:
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["mashpipe.connectors"]["http"] == "connectors.http:connector"
    assert isinstance(httpx.URL("https://x"), httpx.URL)
