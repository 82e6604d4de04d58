"""The egress (SSRF) guard: outbound HTTP reaches public addresses only, unless allow-listed.

Refused: schemes other than http/https, URLs carrying userinfo, and destinations that are (or
resolve to) loopback, private (RFC 1918), link-local, carrier-grade NAT (100.64/10), unspecified,
multicast, broadcast, reserved/documentation ranges, IPv6 unique-local / link-local / site-local,
and IPv6 forms embedding such an IPv4 address (IPv4-mapped, IPv4-compatible, 6to4, NAT64).
``MASHPIPE_EGRESS_ALLOW`` (``settings.egress_allow_list``) lists CIDRs and ``host:port`` pairs that
may be reached anyway.

Three pieces, all driven by one :class:`EgressPolicy`:

* :class:`EgressGuardTransport` wraps any ``httpx`` transport and checks every request it sends, so
  each redirect hop is checked (httpx follows redirects above the transport). It also caps the size
  of response bodies while they stream.
* :class:`GuardedNetworkBackend` is an httpcore network backend that resolves a host name once,
  checks every address and connects to a checked address: the connection is pinned to what was
  checked (no DNS rebinding between check and connect), while TLS still verifies the host name.
  :class:`PinnedHTTPTransport` is httpx's transport using it.
* :class:`GuardedResolver` does the same for aiohttp (:mod:`app.security.aiohttp_transport`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Self

import httpcore
import httpx

from app.errors import EgressDenied, MashpipeError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

ALLOWED_SCHEMES = frozenset({"http", "https"})
ALLOW_HINT = "allow it with MASHPIPE_EGRESS_ALLOW"
URL_VERDICTS_KEPT = 4096  # (host, port) pairs an EgressPolicy remembers as passing its URL check

_V4_BLOCKS: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "carrier-grade NAT"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"),
    ("192.0.2.0/24", "reserved (documentation)"),
    ("192.88.99.0/24", "reserved (6to4 relay)"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved (benchmarking)"),
    ("198.51.100.0/24", "reserved (documentation)"),
    ("203.0.113.0/24", "reserved (documentation)"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
)
V4_BLOCKS = tuple((ipaddress.IPv4Network(net), label) for net, label in _V4_BLOCKS)

_V6_BLOCKS: tuple[tuple[str, str], ...] = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "private (local NAT64)"),
    ("100::/64", "reserved (discard)"),
    ("2001:db8::/32", "reserved (documentation)"),
    ("2001::/23", "reserved (IETF protocol assignments)"),
    ("3fff::/20", "reserved (documentation)"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)
V6_BLOCKS = tuple((ipaddress.IPv6Network(net), label) for net, label in _V6_BLOCKS)
V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
V6_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
V6_COMPAT = ipaddress.IPv6Network("::/96")
V6_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
V6_6TO4 = ipaddress.IPv6Network("2002::/16")


class EgressConfigError(MashpipeError):
    """``MASHPIPE_EGRESS_ALLOW`` holds an entry that is neither a CIDR nor ``host:port``."""

    code = "invalid_egress_allow"


def _embedded_v4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 form carries (mapped, compatible, NAT64, 6to4), with the form's name."""
    if address in V6_MAPPED:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "IPv4-mapped"
    if address in V6_COMPAT and int(address) > 1:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "IPv4-compatible"
    if address in V6_NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "NAT64"
    if address in V6_6TO4:
        return ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF), "6to4"
    return None


def classify(address: IPAddress) -> str | None:
    """Why ``address`` is not a public destination (``"loopback"``, ``"private"``...), or None if it is."""
    if isinstance(address, ipaddress.IPv4Address):
        for network, label in V4_BLOCKS:
            if address in network:
                return label
        return None
    embedded = _embedded_v4(address)
    if embedded is not None:
        inner, form = embedded
        inner_reason = classify(inner)
        if form == "IPv4-compatible":
            return f"{form} IPv6, deprecated" if inner_reason is None else f"{form} {inner_reason}"
        return None if inner_reason is None else f"{form} {inner_reason}"
    for network6, label in V6_BLOCKS:
        if address in network6:
            return label
    if address not in V6_GLOBAL_UNICAST:
        return "reserved"
    return None


def parse_ip(text: str) -> IPAddress | None:
    """An IP address written in standard notation (brackets and zone id tolerated), else None."""
    text = text.strip().strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


_LEGACY_IPV4_CHARS = frozenset("0123456789abcdefxABCDEFX.")


def legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address a legacy IPv4 spelling denotes (``2130706433``, ``0x7f.1``, ``127.1``), else None.

    Resolvers map such hosts onto an address (``inet_aton``), some HTTP stacks refuse them outright
    (aiohttp): checked as the address they denote, they are refused the same way whatever the transport.
    """
    if not host or not _LEGACY_IPV4_CHARS.issuperset(host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _normalize_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (asyncio getaddrinfo), in the resolver's order, deduplicated."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]
        if address not in seen:
            seen.append(address)
    return seen


class EgressPolicy:
    """Decides which destinations outbound requests may reach.

    ``allow`` entries are CIDRs (``10.0.0.0/8``, ``127.0.0.1``, ``::1/128``) or ``host:port`` pairs
    (``localhost:8080``, ``[::1]:9000``). ``resolver`` turns a host name into addresses (default: the
    system resolver through asyncio).
    """

    def __init__(self, allow: Iterable[str] = (), *, resolver: Resolver | None = None) -> None:
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.host_ports: set[tuple[str, int]] = set()
        for entry in allow:
            self._add(entry)
        self._resolver = resolver or system_resolver
        # (host, port) pairs whose URL-level check passed: the verdict depends only on them and on this
        # (unchanging) policy, so it is remembered; bounded, cleared when full.
        self._url_passes: set[tuple[str, int]] = set()
        self._text_passes: set[str] = set()  # whole URLs (as sent) whose check passed: see check_url_text

    @classmethod
    def from_settings(cls, settings: Any, *, resolver: Resolver | None = None) -> EgressPolicy:
        """The policy of ``settings.egress_allow_list``."""
        return cls(settings.egress_allow_list, resolver=resolver)

    def _add(self, entry: str) -> None:
        text = entry.strip()
        if not text:
            return
        try:
            self.networks.append(ipaddress.ip_network(text.strip("[]"), strict=False))
            return
        except ValueError:
            pass
        host, sep, port = text.rpartition(":")
        host = _normalize_host(host)
        if sep and host and port.isdigit() and 0 < int(port) < 65536 and (":" not in host or parse_ip(host)):
            self.host_ports.add((host, int(port)))
            return
        raise EgressConfigError(
            f"MASHPIPE_EGRESS_ALLOW entry {entry!r} is neither a CIDR (such as 10.0.0.0/8 or 127.0.0.1) "
            "nor a host:port pair (such as localhost:8080)"
        )

    def allows_host_port(self, host: str, port: int) -> bool:
        """Whether ``host:port`` is allow-listed as such."""
        return (_normalize_host(host), port) in self.host_ports

    def allows_address(self, address: IPAddress) -> bool:
        """Whether ``address`` is in an allow-listed CIDR (an IPv4-mapped address also by its IPv4 form)."""
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address):
            embedded = _embedded_v4(address)
            if embedded is not None:
                candidates.append(embedded[0])
        return any(candidate in network for candidate in candidates for network in self.networks)

    def check_address(self, address: IPAddress, *, host: str, port: int) -> None:
        """Raise :class:`EgressDenied` when ``address`` (reached for ``host:port``) may not be contacted."""
        reason = classify(address)
        if reason is None or self.allows_address(address) or self.allows_host_port(host, port):
            return
        shown = str(address)
        written = _normalize_host(host)
        if parse_ip(written) == address:
            target = f"{shown} ({reason})"
        else:
            target = f"{written} ({shown}, {reason})"
        raise EgressDenied(
            f"refusing to connect to {target}; {ALLOW_HINT}",
            details={"host": written, "address": shown, "port": port, "reason": reason},
        )

    def check_url(self, url: httpx.URL) -> None:
        """Check what a URL says without resolving it: scheme, userinfo, a host, and a literal IP host."""
        if url.scheme not in ALLOWED_SCHEMES:
            raise EgressDenied(
                f"refusing to connect to {url.scheme or 'a URL without scheme'}:// URLs: only http and https "
                "are allowed",
                details={"scheme": url.scheme},
            )
        if url.userinfo:
            raise EgressDenied(
                f"refusing {url.scheme}://***@{url.host}/: credentials inside URLs are not allowed; "
                "give them through a connection or headers",
                details={"host": url.host},
            )
        host = url.host
        if not host:
            raise EgressDenied("refusing a URL without host", details={"url": str(url)})
        port = url.port or default_port(url.scheme)
        key = (host, port)
        if key in self._url_passes:
            return
        literal = parse_ip(host) or legacy_ipv4(host)
        if literal is not None:
            self.check_address(literal, host=host, port=port)
        if len(self._url_passes) >= URL_VERDICTS_KEPT:
            self._url_passes.clear()
        self._url_passes.add(key)

    def check_url_text(self, url: httpx.URL, text: str, *, remember: bool = True) -> None:
        """:meth:`check_url` of ``url``, ``text`` being ``str(url)``: a URL that passed is remembered whole
        (unless ``remember`` is false: a URL that may hold a secret).

        (The verdict depends only on the URL and this unchanging policy; remembering the text spares
        the URL's parsed parts being read again for every request to it.)
        """
        if text in self._text_passes:
            return
        self.check_url(url)
        if not remember:
            return
        if len(self._text_passes) >= URL_VERDICTS_KEPT:
            self._text_passes.clear()
        self._text_passes.add(text)

    async def resolve(self, host: str, port: int) -> list[str]:
        """Resolve ``host`` once and check every address; return them (all allowed) for pinning.

        A literal IP is not looked up. Any refused address refuses the whole host: a name that
        resolves to a public and a private address is not reached at all.
        """
        literal = parse_ip(host)
        if literal is not None:
            self.check_address(literal, host=host, port=port)
            return [str(literal)]
        name = _normalize_host(host)
        try:
            addresses = await self._resolver(name, port)
        except OSError as exc:
            raise _unresolvable(name, str(exc.strerror or exc)) from None
        if not addresses:
            raise _unresolvable(name, "no address")
        checked: list[str] = []
        for text in addresses:
            address = parse_ip(text)
            if address is None:
                raise EgressDenied(f"refusing to connect to {name}: the resolver returned {text!r}")
            self.check_address(address, host=name, port=port)
            checked.append(str(address))
        return checked

    async def check_request_url(self, url: httpx.URL, *, resolve: bool) -> None:
        """Every check for one request; with ``resolve``, the host name is resolved and checked too."""
        self.check_url(url)
        if resolve and parse_ip(url.host) is None:
            await self.resolve(url.host, url.port or default_port(url.scheme))


class _CappedStream(httpx.AsyncByteStream):
    """A response stream that fails with ``InvalidResponse`` once more than ``limit`` bytes came through."""

    def __init__(self, stream: httpx.AsyncByteStream, limit: int, url: httpx.URL) -> None:
        self._stream = stream
        self._limit = limit
        self._url = url

    async def __aiter__(self) -> AsyncIterator[bytes]:
        total = 0
        async for chunk in self._stream:
            total += len(chunk)
            if total > self._limit:
                raise _too_large(self._url, self._limit)
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


def _unresolvable(host: str, why: str) -> Exception:
    from app.sdk.errors import ConnectionFailed  # app.sdk imports this module: import late

    return ConnectionFailed(f"cannot resolve host {host}: {why}", details={"host": host})


def response_too_large(url: httpx.URL, limit: int) -> Exception:
    """The ``InvalidResponse`` of a response body from ``url`` passing ``limit`` bytes."""
    return _too_large(url, limit)


def _too_large(url: httpx.URL, limit: int) -> Exception:
    from app.sdk.errors import InvalidResponse, describe_url  # app.sdk imports this module: import late

    return InvalidResponse(
        f"response body exceeds {limit} bytes ({describe_url(url)})",
        details={"limit": limit, "url": describe_url(url)},
    )


class EgressGuardTransport(httpx.AsyncBaseTransport):
    """Checks every request against the policy before handing it to ``inner``; caps response sizes.

    When ``inner`` pins connections itself (``inner.pins_egress``, as :class:`PinnedHTTPTransport`
    does), host names are resolved and checked at connect time by the inner transport; otherwise
    this wrapper resolves and checks them here (without pinning).
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        policy: EgressPolicy,
        *,
        max_response_bytes: int | None = None,
        resolve_hostnames: bool | None = None,
    ) -> None:
        self.inner = inner
        self.policy = policy
        self.max_response_bytes = max_response_bytes
        if resolve_hostnames is None:
            resolve_hostnames = not getattr(inner, "pins_egress", False)
        self.resolve_hostnames = resolve_hostnames

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self.policy.check_request_url(request.url, resolve=self.resolve_hostnames)
        response = await self.inner.handle_async_request(request)
        limit = self.max_response_bytes
        if limit is not None:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                await response.aclose()
                raise _too_large(request.url, limit)
            assert isinstance(response.stream, httpx.AsyncByteStream)
            response.stream = _CappedStream(response.stream, limit, request.url)
        return response

    async def __aenter__(self) -> Self:
        await self.inner.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.inner.__aexit__(exc_type, exc_value, traceback)

    async def aclose(self) -> None:
        await self.inner.aclose()


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """An httpcore backend that connects only to checked addresses of a host (resolved once)."""

    def __init__(self, policy: EgressPolicy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.policy = policy
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await self.policy.resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} took longer than {timeout}s") from None
        last: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressDenied("refusing to connect to a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class PinnedHTTPTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, connecting through :class:`GuardedNetworkBackend` (pinned, checked)."""

    pins_egress = True

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
        http2: bool = False,
        retries: int = 0,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=50)
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
        super().__init__(verify=ssl_context, limits=limits, http2=http2, trust_env=False, retries=retries)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=http2,
            retries=retries,
            network_backend=GuardedNetworkBackend(policy),
        )


def aiohttp_resolver(policy: EgressPolicy) -> Any:
    """An ``aiohttp`` resolver returning only checked addresses (so aiohttp connects to what was checked)."""
    from aiohttp.abc import AbstractResolver, ResolveResult

    class GuardedResolver(AbstractResolver):
        async def resolve(
            self, host: str, port: int = 0, family: int = socket.AF_INET
        ) -> list[ResolveResult]:
            addresses = await policy.resolve(host, port)
            return [
                ResolveResult(
                    hostname=host,
                    host=address,
                    port=port,
                    family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                    proto=0,
                    flags=socket.AI_NUMERICHOST,
                )
                for address in addresses
            ]

        async def close(self) -> None:
            return None

    return GuardedResolver()


def aiohttp_transport(
    policy: EgressPolicy, *, limits: httpx.Limits | None = None, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncBaseTransport:
    """An aiohttp-based transport whose connections go only to addresses ``policy`` checked (no cookies).

    See :mod:`app.security.aiohttp_transport`.
    """
    from app.security.aiohttp_transport import pinned_aiohttp_transport  # imports aiohttp: only when used

    return pinned_aiohttp_transport(aiohttp_resolver(policy), limits=limits, verify=verify)


__all__: Sequence[str] = (
    "EgressConfigError",
    "EgressGuardTransport",
    "EgressPolicy",
    "GuardedNetworkBackend",
    "PinnedHTTPTransport",
    "aiohttp_resolver",
    "aiohttp_transport",
    "classify",
    "parse_ip",
    "response_too_large",
    "system_resolver",
)
