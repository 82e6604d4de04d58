"""Both outbound transports against real servers on 127.0.0.1: the same request on the wire, the same
response, the same typed errors; the aiohttp one is the default. Also the cheap per-request paths:
URLs parsed once, cookies never read, egress URL verdicts remembered."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from app.errors import EgressDenied
from app.sdk.errors import ConnectionFailed
from app.sdk.http import (
    ConnectorHTTP,
    OutboundClient,
    RefusedCookies,
    build_http_client,
    merge_headers,
    parse_url,
)
from app.sdk.testing import settings_for_tests
from app.security.aiohttp_transport import PinnedAiohttpTransport, to_httpx_error
from app.security.egress import EgressPolicy, legacy_ipv4
from app.settings import Settings

TRANSPORTS = ["httpx", "aiohttp"]


def settings(transport: str, **overrides: Any) -> Any:
    return settings_for_tests(http_transport=transport, egress_allow="127.0.0.1/32", **overrides)


@pytest.fixture
async def echo_server(local_server: Any) -> str:
    """A server echoing what it received: method, path, query, headers (in order, lowercased), body."""

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query_string,
                "headers": [[k.decode().lower(), v.decode()] for k, v in request.raw_headers],
                "body": body.decode("latin-1"),
            },
            headers={"X-Multi": "a"},
            reason="Fine Thanks",
        )

    async def gz(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(b'{"zipped": true}'),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    async def cookie(request: web.Request) -> web.Response:
        response = web.json_response({"cookie": request.headers.get("Cookie")})
        response.set_cookie("session", "abc")
        return response

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(1)  # longer than the client's 0.3 s timeout
        return web.Response(text="late")

    async def drop(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(0.05)
        return web.Response(text="never")

    base: str = await local_server(
        {
            "GET /echo": echo,
            "POST /echo": echo,
            "PUT /echo": echo,
            "HEAD /echo": echo,
            "GET /gz": gz,
            "GET /cookie": cookie,
            "GET /hang": hang,
            "GET /drop": drop,
        }
    )
    return base


def test_aiohttp_is_the_default_and_test_settings_use_httpx() -> None:
    assert Settings.model_fields["http_transport"].default == "aiohttp"
    assert settings_for_tests().http_transport == "httpx"  # what respx intercepts
    assert settings_for_tests(http_transport="aiohttp").http_transport == "aiohttp"


async def test_the_default_client_sends_through_the_pinned_aiohttp_transport() -> None:
    client = build_http_client(Settings.model_validate({}))
    try:
        assert isinstance(client, OutboundClient)
        assert isinstance(client._transport.inner, PinnedAiohttpTransport)  # type: ignore[attr-defined]
    finally:
        await client.aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_requests_reach_the_server_as_written(echo_server: str, transport: str) -> None:
    async with build_http_client(settings(transport)) as client:
        http = ConnectorHTTP(client, base_url=echo_server, headers={"X-Connector": "yes"})
        got = (await http.get("/echo?a=1", params={"b": "two"})).json()
        assert got["method"] == "GET"
        assert got["query"] == "a=1&b=two"
        assert ["x-connector", "yes"] in got["headers"]
        assert ["user-agent", client.headers["User-Agent"]] in got["headers"]
        names = [name for name, _ in got["headers"]]
        assert names.count("accept") == 1  # aiohttp adds none of its own
        assert names.count("user-agent") == 1
        assert "content-type" not in names  # nothing added to a request without body
        dup = (await client.get(f"{echo_server}/echo", headers=[("X-Dup", "1"), ("X-Dup", "2")])).json()
        assert [pair for pair in dup["headers"] if pair[0] == "x-dup"] == [["x-dup", "1"], ["x-dup", "2"]]

        raw = (await http.put("/echo", content=b"\x00bytes\xff")).json()
        assert raw["body"] == "\x00bytes\xff"
        assert "content-type" not in [name for name, _ in raw["headers"]]  # no octet-stream added

        posted = (await http.post("/echo", json={"x": [1, 2]})).json()
        assert posted["body"] == '{"x":[1,2]}'
        assert ["content-type", "application/json"] in posted["headers"]

        async def chunks() -> AsyncIterator[bytes]:
            for part in (b"one,", b"two,", b"three"):
                yield part

        streamed = (await http.post("/echo", content=chunks())).json()
        assert streamed["body"] == "one,two,three"

        head = await http.head("/echo")
        assert head.status_code == 200
        assert head.content == b""


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_responses_read_the_same(echo_server: str, transport: str) -> None:
    async with build_http_client(settings(transport)) as client:
        response = await client.get(f"{echo_server}/echo")
        assert response.status_code == 200
        assert response.reason_phrase == "Fine Thanks"
        assert response.http_version == "HTTP/1.1"
        assert response.headers["x-multi"] == "a"
        zipped = await client.get(f"{echo_server}/gz")
        assert zipped.json() == {"zipped": True}  # decoded by httpx, not by aiohttp


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_cookies_are_neither_kept_nor_sent(echo_server: str, transport: str) -> None:
    async with build_http_client(settings(transport)) as client:
        first = await client.get(f"{echo_server}/cookie")
        assert "session=abc" in first.headers["set-cookie"]
        second = await client.get(f"{echo_server}/cookie")
        assert second.json() == {"cookie": None}
        assert isinstance(client.cookies, RefusedCookies)
        assert len(client.cookies.jar) == 0
        client.cookies = {"a": "1"}  # assigning keeps the refusing store
        assert isinstance(client.cookies, RefusedCookies)
        assert len(client.cookies.jar) == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_failures_raise_the_same_httpx_errors(echo_server: str, transport: str) -> None:
    async with build_http_client(settings(transport, http_timeout=0.3)) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://127.0.0.1:1/closed")  # nothing listens on port 1
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{echo_server}/hang")
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(f"{echo_server}/drop")
        http = ConnectorHTTP(client)
        with pytest.raises(ConnectionFailed, match="ConnectError"):
            await http.get("http://127.0.0.1:1/closed")


def test_aiohttp_errors_map_to_the_most_precise_httpx_error() -> None:
    import aiohttp

    key = aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None)
    refused = aiohttp.ClientConnectorError(key, OSError(111, "Connection refused"))
    assert type(to_httpx_error(refused)) is httpx.ConnectError
    assert type(to_httpx_error(aiohttp.ConnectionTimeoutError("slow"))) is httpx.ConnectTimeout
    assert type(to_httpx_error(aiohttp.SocketTimeoutError("slow"))) is httpx.ReadTimeout
    assert type(to_httpx_error(aiohttp.ServerDisconnectedError())) is httpx.RemoteProtocolError
    assert type(to_httpx_error(aiohttp.ClientPayloadError("cut"))) is httpx.RemoteProtocolError
    assert type(to_httpx_error(aiohttp.ClientOSError(104, "reset"))) is httpx.ReadError
    assert type(to_httpx_error(aiohttp.ClientError("other"))) is httpx.TransportError


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("example.com", None),
        ("abc.de", None),
        ("cafe", None),
        ("", None),
    ],
)
def test_legacy_ipv4_spellings(host: str, address: str | None) -> None:
    expected = ipaddress.IPv4Address(address) if address else None
    assert legacy_ipv4(host) == expected


def test_legacy_spellings_are_refused_by_the_url_check_whatever_the_transport() -> None:
    policy = EgressPolicy()
    with pytest.raises(EgressDenied, match=r"2130706433 \(127.0.0.1, loopback\)"):
        policy.check_url(httpx.URL("http://2130706433:8080/"))
    allowed = EgressPolicy(["127.0.0.0/8"])
    allowed.check_url(httpx.URL("http://2130706433:8080/"))


def test_url_verdicts_are_remembered_only_when_they_pass() -> None:
    policy = EgressPolicy(["127.0.0.1:9000"])
    for _ in range(3):  # a refusal is never remembered as a pass
        with pytest.raises(EgressDenied, match="loopback"):
            policy.check_url(httpx.URL("http://127.0.0.1:9001/x"))
    policy.check_url(httpx.URL("http://127.0.0.1:9000/x"))
    policy.check_url(httpx.URL("http://127.0.0.1:9000/y"))
    policy.check_url(httpx.URL("https://api.example.com/z"))
    assert policy._url_passes == {("127.0.0.1", 9000), ("api.example.com", 443)}
    with pytest.raises(EgressDenied, match="only http and https"):  # scheme checks come first, always
        policy.check_url(httpx.URL("ftp://api.example.com/z"))
    with pytest.raises(EgressDenied, match="credentials inside URLs"):
        policy.check_url(httpx.URL("https://user:pw@api.example.com/z"))


def test_parse_url_is_remembered_and_invalid_urls_still_raise() -> None:
    first = parse_url("https://api.example.com/items/1?x=1")
    assert parse_url("https://api.example.com/items/1?x=1") is first
    assert first == httpx.URL("https://api.example.com/items/1?x=1")
    with pytest.raises(httpx.InvalidURL):
        parse_url("https://host:abc/")


@pytest.mark.parametrize(
    ("method", "url", "options"),
    [
        ("get", "items?a=1", {"params": {"b": 2}, "headers": {"accept": "application/json"}}),
        ("POST", "https://api.x.test/v1/x", {"json": {"a": [1, 2]}, "timeout": 3}),
        ("put", "/y", {"content": b"abc", "headers": [("X-B", "1"), ("X-B", "2")]}),
        ("post", "/z", {"data": {"k": "v"}}),
        ("delete", "/w", {"timeout": httpx.Timeout(2, read=9)}),
    ],
)
async def test_connector_requests_are_built_as_the_client_builds_them(
    method: str, url: str, options: dict[str, Any]
) -> None:
    async with build_http_client(settings_for_tests()) as client:
        defaults = {"X-A": "1", "Accept": "text/plain"}
        http = ConnectorHTTP(client, base_url="https://api.x.test/v1", headers=defaults)
        built = http.build_request(method, url, **options)
        options = dict(options)
        target = http.resolve_url(url)
        params = options.pop("params", None)
        if params:
            target = target.copy_merge_params(params)
        # (names merged case-insensitively: the request's "accept" replaces the connector's "Accept")
        headers = merge_headers(http.headers, options.pop("headers", None) or {})
        expected = client.build_request(method.upper(), target, headers=headers or None, **options)
    assert (built.method, built.url) == (expected.method, expected.url)
    assert built.headers.multi_items() == expected.headers.multi_items()
    assert built.extensions == expected.extensions
    assert built.content == expected.content
