"""The egress guard: address classification, allow-list, resolution, redirects and pinning."""

from __future__ import annotations

import ipaddress

import httpx
import pytest
from aiohttp import web

from app.errors import EgressDenied
from app.sdk.errors import ConnectionFailed, InvalidResponse
from app.sdk.http import build_http_client
from app.sdk.testing import settings_for_tests
from app.security.egress import (
    EgressConfigError,
    EgressGuardTransport,
    EgressPolicy,
    aiohttp_transport,
    classify,
)

TRANSPORTS = ["httpx", "aiohttp"]  # both outbound transports keep the egress guard: tested on each

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.255", "carrier-grade NAT"),
    ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("192.0.2.10", "reserved (documentation)"),
    ("198.18.0.1", "reserved (benchmarking)"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fc00::1", "unique local"),
    ("fd12:3456::1", "unique local"),
    ("fe80::1", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:10.0.0.1", "IPv4-mapped private"),
    ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
    ("::127.0.0.1", "IPv4-compatible loopback"),
    ("::8.8.8.8", "IPv4-compatible IPv6, deprecated"),
    ("64:ff9b::7f00:1", "NAT64 loopback"),
    ("2002:c0a8:0101::1", "6to4 private"),
    ("2001:db8::1", "reserved (documentation)"),
    ("100::1", "reserved (discard)"),
    ("3fff::1", "reserved (documentation)"),
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.128.0.1",
    "172.32.0.1",
    "2606:4700::1111",
    "2a00:1450:4001::1",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
]


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_classify_refused_forms(address: str, reason: str | None) -> None:
    assert classify(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", PUBLIC)
def test_classify_public(address: str) -> None:
    assert classify(ipaddress.ip_address(address)) is None


def test_policy_message_names_address_and_reason() -> None:
    policy = EgressPolicy()
    with pytest.raises(EgressDenied) as caught:
        policy.check_url(httpx.URL("http://127.0.0.1:8080/x"))
    assert caught.value.message == (
        "refusing to connect to 127.0.0.1 (loopback); allow it with MASHPIPE_EGRESS_ALLOW"
    )
    assert caught.value.code == "egress_denied"
    assert caught.value.retry_kind is None
    assert caught.value.details["reason"] == "loopback"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "file:///etc/passwd",
        "gopher://example.com/",
        "http://user:pass@example.com/",
        "https://token@example.com/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://169.254.169.254/latest/meta-data/",
    ],
)
def test_check_url_refuses(url: str) -> None:
    with pytest.raises(EgressDenied):
        EgressPolicy().check_url(httpx.URL(url))


def test_userinfo_message_does_not_echo_the_secret() -> None:
    with pytest.raises(EgressDenied) as caught:
        EgressPolicy().check_url(httpx.URL("https://alice:s3cret@example.com/"))
    assert "s3cret" not in caught.value.message
    assert "credentials inside URLs" in caught.value.message


def test_allow_list_cidr_and_host_port() -> None:
    policy = EgressPolicy(["127.0.0.1/32", "10.0.0.0/8", "localhost:8080", "[::1]:9000"])
    policy.check_address(ipaddress.ip_address("127.0.0.1"), host="127.0.0.1", port=1)
    policy.check_address(ipaddress.ip_address("10.9.9.9"), host="10.9.9.9", port=443)
    policy.check_address(
        ipaddress.ip_address("::ffff:10.0.0.1"), host="x", port=80
    )  # mapped form of an allowed v4
    policy.check_address(ipaddress.ip_address("127.0.0.2"), host="LOCALHOST.", port=8080)
    policy.check_address(ipaddress.ip_address("::1"), host="::1", port=9000)
    with pytest.raises(EgressDenied):
        policy.check_address(ipaddress.ip_address("127.0.0.2"), host="localhost", port=8081)
    with pytest.raises(EgressDenied):
        policy.check_address(ipaddress.ip_address("192.168.0.1"), host="192.168.0.1", port=80)
    with pytest.raises(EgressDenied):
        policy.check_address(ipaddress.ip_address("::1"), host="::1", port=9001)


@pytest.mark.parametrize("entry", ["localhost", "nonsense/99", "host:port", "host:99999", ":80"])
def test_bad_allow_entries_are_refused(entry: str) -> None:
    with pytest.raises(EgressConfigError, match="MASHPIPE_EGRESS_ALLOW entry"):
        EgressPolicy([entry])


def _resolver(table: dict[str, list[str]]):
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        if host not in table:
            raise OSError(-2, "Name or service not known")
        return table[host]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


async def test_resolve_checks_every_address() -> None:
    policy = EgressPolicy(resolver=_resolver({"mixed.test": ["93.184.216.34", "10.0.0.5"]}))
    with pytest.raises(EgressDenied) as caught:
        await policy.resolve("mixed.test", 443)
    assert caught.value.message == (
        "refusing to connect to mixed.test (10.0.0.5, private); allow it with MASHPIPE_EGRESS_ALLOW"
    )


async def test_resolve_returns_checked_addresses_and_reports_dns_failures() -> None:
    policy = EgressPolicy(resolver=_resolver({"ok.test": ["93.184.216.34", "2606:4700::1111"]}))
    assert await policy.resolve("ok.test", 443) == ["93.184.216.34", "2606:4700::1111"]
    with pytest.raises(ConnectionFailed, match=r"cannot resolve host nowhere\.test") as caught:
        await policy.resolve("nowhere.test", 443)
    assert caught.value.retry_kind == "connection"


async def test_odd_ipv4_spellings_are_resolved_then_refused() -> None:
    # "2130706433" and "0x7f.1" are not standard IP notation; the system resolver turns them into 127.0.0.1.
    policy = EgressPolicy()
    for host in ("2130706433", "0x7f.1", "127.1", "localhost"):
        with pytest.raises(EgressDenied, match="loopback"):
            await policy.resolve(host, 80)


async def test_guard_transport_checks_before_delegating() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"ok": True})

    policy = EgressPolicy(
        resolver=_resolver({"public.test": ["93.184.216.34"], "internal.test": ["10.0.0.7"]})
    )
    transport = EgressGuardTransport(httpx.MockTransport(handler), policy)
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await client.get("https://public.test/a")).status_code == 200
        with pytest.raises(EgressDenied, match=r"internal.test \(10.0.0.7, private\)"):
            await client.get("https://internal.test/b")
        with pytest.raises(EgressDenied, match="link-local"):
            await client.get("http://169.254.169.254/")
    assert seen == ["https://public.test/a"]


async def test_guard_checks_every_redirect_hop_with_mock() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "public.test":
            return httpx.Response(302, headers={"Location": "http://10.0.0.1/admin"})
        raise AssertionError("the private hop must never be sent")

    policy = EgressPolicy(resolver=_resolver({"public.test": ["93.184.216.34"]}))
    transport = EgressGuardTransport(httpx.MockTransport(handler), policy)
    async with httpx.AsyncClient(transport=transport, follow_redirects=True) as client:
        with pytest.raises(EgressDenied, match=r"10.0.0.1 \(private\)"):
            await client.get("https://public.test/start")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_redirect_to_private_address_refused_real_server(local_server, transport: str) -> None:
    """First hop allow-listed by host:port only; its redirect to another loopback port is refused."""
    target_hits: list[str] = []

    async def target(request: web.Request) -> web.Response:
        target_hits.append(request.path)
        return web.json_response({"secret": True})

    target_base = await local_server({"GET /secret": target})
    target_port = httpx.URL(target_base).port

    async def start(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{target_port}/secret")

    start_base = await local_server({"GET /start": start})
    start_port = httpx.URL(start_base).port
    settings = settings_for_tests(http_transport=transport, egress_allow=f"127.0.0.1:{start_port}")
    async with build_http_client(settings) as client:
        with pytest.raises(EgressDenied, match=r"refusing to connect to 127.0.0.1 \(loopback\)"):
            await client.get(f"http://127.0.0.1:{start_port}/start")
    assert target_hits == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_pinning_connects_to_the_checked_address_and_keeps_the_host_header(
    local_server, transport: str
) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"host": request.headers["Host"], "peer": request.remote})

    base = await local_server({"GET /echo": echo})
    port = httpx.URL(base).port
    resolver = _resolver({"service.test": ["127.0.0.1"]})
    settings = settings_for_tests(http_transport=transport, egress_allow="127.0.0.1/32")
    async with build_http_client(settings, resolver=resolver) as client:
        for _ in range(3):
            response = await client.get(f"http://service.test:{port}/echo")
            assert response.json() == {"host": f"service.test:{port}", "peer": "127.0.0.1"}
    # Resolved once, when the (kept-alive) connection was opened, and only there.
    assert resolver.calls == ["service.test"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_pinning_refuses_a_name_resolving_to_a_private_address_at_connect(transport: str) -> None:
    resolver = _resolver({"rebind.test": ["127.0.0.1"]})
    async with build_http_client(settings_for_tests(http_transport=transport), resolver=resolver) as client:
        with pytest.raises(EgressDenied, match=r"rebind.test \(127.0.0.1, loopback\)"):
            await client.get("http://rebind.test:1/")


async def test_aiohttp_transport_is_guarded_and_pinned(local_server) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"host": request.headers["Host"]})

    base = await local_server({"GET /echo": echo})
    port = httpx.URL(base).port
    resolver = _resolver({"service.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    policy = EgressPolicy([f"service.test:{port}"], resolver=resolver)
    settings = settings_for_tests()
    async with build_http_client(settings, transport=aiohttp_transport(policy)) as client:
        response = await client.get(f"http://service.test:{port}/echo")
        assert response.json() == {"host": f"service.test:{port}"}
        with pytest.raises(EgressDenied, match=r"other.test \(127.0.0.1, loopback\)"):
            await client.get(f"http://other.test:{port}/echo")
        with pytest.raises(EgressDenied, match="loopback"):
            await client.get(f"http://127.0.0.1:{port}/echo")


async def test_response_cap_declared_length_and_streamed() -> None:
    produced: list[int] = []

    async def endless():
        for i in range(10_000):
            produced.append(i)
            yield b"x" * 1024

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/declared":
            return httpx.Response(200, headers={"Content-Length": "5000"}, content=b"y" * 5000)
        return httpx.Response(200, content=endless())

    policy = EgressPolicy(resolver=_resolver({"big.test": ["93.184.216.34"]}))
    transport = EgressGuardTransport(httpx.MockTransport(handler), policy, max_response_bytes=4096)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(InvalidResponse, match="response body exceeds 4096 bytes"):
            await client.get("https://big.test/declared")
        with pytest.raises(InvalidResponse, match="response body exceeds 4096 bytes"):
            await client.get("https://big.test/stream")
    assert len(produced) <= 6  # stopped right after the limit, not after 10 MB


async def test_client_ignores_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://10.0.0.1:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://10.0.0.1:3128")
    client = build_http_client(settings_for_tests())
    try:
        assert client._mounts == {}
        assert isinstance(client._transport, EgressGuardTransport)
    finally:
        await client.aclose()
