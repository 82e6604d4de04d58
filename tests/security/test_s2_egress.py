"""The egress guard on real servers on 127.0.0.1 (and 127.0.0.2, also loopback): a host name is resolved
once and the connection goes to the address that was checked (DNS rebinding cannot swap it), every
redirect hop is checked (schemes, credentials in URLs, refused addresses), IPv6-mapped forms of a
refused address are refused, and a connector request through ``ctx.http`` maps the refusal to a step
error. Nothing is sent anywhere but 127.0.0.1/127.0.0.2."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from aiohttp import web

from app.errors import EgressDenied
from app.sdk.http import ConnectorHTTP, build_http_client
from app.sdk.testing import settings_for_tests
from app.security.egress import EgressPolicy, aiohttp_transport

TRANSPORTS = ["httpx", "aiohttp"]  # both outbound transports keep the egress guard: tested on each


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[str, dict[str, Handler], int], Awaitable[int]]]:
    """``port = await serve(host, {"GET /path": handler}, port)`` (port 0: any free one)."""
    runners: list[web.AppRunner] = []

    async def start(host: str, routes: dict[str, Handler], port: int = 0) -> int:
        app = web.Application()
        for route, handler in routes.items():
            method, _, path = route.partition(" ")
            app.router.add_route(method, path, handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        runners.append(runner)
        return int(runner.addresses[0][1])

    yield start
    for runner in runners:
        await runner.cleanup()


class FlippingResolver:
    """Answers ``first`` for the first lookup of a name, then ``later``: a rebinding DNS server."""

    def __init__(self, first: str, later: str) -> None:
        self.first, self.later = first, later
        self.calls = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls += 1
        return [self.first if self.calls == 1 else self.later]


def hits_recorder(name: str, hits: list[str]) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        hits.append(name)
        return web.json_response({"server": name})

    return handler


@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
async def test_dns_rebinding_connects_only_to_the_checked_address(serve, transport: str) -> None:
    hits: list[str] = []
    port = await serve("127.0.0.1", {"GET /data": hits_recorder("allowed", hits)})
    await serve("127.0.0.2", {"GET /data": hits_recorder("internal", hits)}, port)
    resolver = FlippingResolver("127.0.0.1", "127.0.0.2")
    settings = settings_for_tests(egress_allow="127.0.0.1/32", http_transport=transport)
    inner = None
    if transport == "aiohttp":
        inner = aiohttp_transport(EgressPolicy(settings.egress_allow_list, resolver=resolver))
    async with build_http_client(settings, resolver=resolver, transport=inner) as client:
        response = await client.get(f"http://rebind.test:{port}/data")
        assert response.json() == {"server": "allowed"}
    # a new connection resolves again: the name now points at a refused address, which is never reached
    inner = None
    if transport == "aiohttp":
        inner = aiohttp_transport(EgressPolicy(settings.egress_allow_list, resolver=resolver))
    async with build_http_client(settings, resolver=resolver, transport=inner) as client:
        with pytest.raises(EgressDenied, match=r"rebind.test \(127.0.0.2, loopback\)"):
            await client.get(f"http://rebind.test:{port}/data")
    assert hits == ["allowed"]


@pytest.mark.parametrize(
    ("location", "refusal"),
    [
        ("ftp://127.0.0.1/file", "ftp"),
        ("file:///etc/passwd", "file"),
        ("http://user:pass@127.0.0.1:{port}/target", "credentials inside URLs are not allowed"),
        ("http://[::ffff:127.0.0.1]:{port}/target", r"::ffff:7f00:1 \(IPv4-mapped loopback\)"),
        ("http://127.0.0.2:{port}/target", r"127.0.0.2 \(loopback\)"),
    ],
)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_every_redirect_hop_is_checked(serve, location: str, refusal: str, transport: str) -> None:
    hits: list[str] = []
    target_port = await serve("127.0.0.1", {"GET /target": hits_recorder("target", hits)})

    async def start(request: web.Request) -> web.Response:
        raise web.HTTPFound(location.format(port=target_port))

    start_port = await serve("127.0.0.1", {"GET /start": start})
    settings = settings_for_tests(http_transport=transport, egress_allow=f"127.0.0.1:{start_port}")
    async with build_http_client(settings) as client:
        http = ConnectorHTTP(client, base_url=f"http://127.0.0.1:{start_port}")
        with pytest.raises(EgressDenied, match=refusal):
            await http.get("/start")
    assert hits == []


@pytest.mark.parametrize(
    "url",
    [
        "http://[::ffff:127.0.0.1]:{port}/target",
        "http://[::ffff:7f00:1]:{port}/target",
        "http://[::127.0.0.1]:{port}/target",
        "http://2130706433:{port}/target",
        "http://0x7f.1:{port}/target",
    ],
)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_other_spellings_of_a_refused_address_are_refused(serve, url: str, transport: str) -> None:
    hits: list[str] = []
    port = await serve("127.0.0.1", {"GET /target": hits_recorder("target", hits)})
    async with build_http_client(settings_for_tests(http_transport=transport, egress_allow="")) as client:
        with pytest.raises(EgressDenied, match="loopback"):
            await client.get(url.format(port=port))
    assert hits == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_allow_list_opens_exactly_what_it_names(serve, transport: str) -> None:
    hits: list[str] = []
    port = await serve("127.0.0.1", {"GET /target": hits_recorder("target", hits)})
    other = await serve("127.0.0.1", {"GET /target": hits_recorder("other", hits)})
    async with build_http_client(
        settings_for_tests(http_transport=transport, egress_allow=f"127.0.0.1:{port}")
    ) as client:
        assert (await client.get(f"http://127.0.0.1:{port}/target")).status_code == 200
        with pytest.raises(EgressDenied, match=r"127.0.0.1 \(loopback\)"):
            await client.get(f"http://127.0.0.1:{other}/target")
    async with build_http_client(
        settings_for_tests(http_transport=transport, egress_allow="127.0.0.0/8")
    ) as client:
        assert (await client.get(f"http://127.0.0.1:{other}/target")).status_code == 200
    assert hits == ["target", "other"]


async def test_connection_test_of_a_refused_destination_reports_the_refusal(
    make_settings, app_runner, api_key
):
    """A stored connection to a connector whose API is on a refused address: the test says why."""
    from tests.api.helpers import client_for

    async with app_runner(make_settings(egress_allow="")) as (app, _state), client_for(app, api_key) as api:
        body = {
            "name": "local-llm",
            "connector": "openai",
            "kind": "bearer",
            "credentials": {"token": "sk-test-0123456789", "base_url": "http://127.0.0.1:9/v1"},
        }
        assert (await api.post("/v1/connections", json=body)).status_code == 201, body
        result = (await api.post("/v1/connections/local-llm/test")).json()
        assert result["ok"] is False
        assert result["status"] is None
        assert "refusing to connect to 127.0.0.1 (loopback)" in result["message"]
        assert "sk-test-0123456789" not in str(result)


def test_urls_are_checked_before_any_connection() -> None:
    policy = EgressPolicy()
    for url in ("gopher://127.0.0.1/", "http://a:b@example.com/", "http:///nohost"):
        with pytest.raises(EgressDenied):
            policy.check_url(httpx.URL(url))
