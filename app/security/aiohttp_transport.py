"""An ``httpx`` transport sending through ``aiohttp``, pinned to egress-checked addresses.

Why: under concurrency, httpx's own connection pool (httpcore) scans every pooled connection for every
request (encode/httpx#3215); aiohttp's connector does not, and costs ~4x less CPU per request.
Everything above the transport stays httpx: ``httpx.Request`` in, ``httpx.Response`` out (streamed),
redirects followed by the ``httpx`` client (so the egress guard sees every hop), decompression by httpx
(aiohttp's is off), no cookies kept (``DummyCookieJar``), no proxies or ``.netrc`` from the environment.

Host names are resolved by :func:`app.security.egress.aiohttp_resolver`, which checks every address
with the egress policy and hands aiohttp only the checked ones: the connection goes to what was
checked (no DNS rebinding between check and connect). Literal IP hosts are checked by the
:class:`~app.security.egress.EgressGuardTransport` wrapped around this transport.

aiohttp's errors become the ``httpx`` exceptions httpx's own transport raises for the same failure
(``ConnectError`` for a refused connection, ``ReadTimeout``, ``RemoteProtocolError`` for a server
closing early...), so step errors read the same whichever transport is configured.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Any, Self

import aiohttp
import httpx
import yarl
from aiohttp.abc import AbstractResolver

from app.security.secret_scope import secrets_active

# Headers aiohttp would add on its own: the httpx request already says what to send (and a bytes body
# without Content-Type must not gain "application/octet-stream").
SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
READ_CHUNK = 64 * 1024

# (aiohttp exception, httpx exception): the first match wins, so subclasses come before their bases.
ERROR_MAP: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),  # refused, unreachable, TLS failures
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),  # body cut short, bad chunking
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # malformed status line or headers
    (aiohttp.NonHttpUrlClientError, httpx.UnsupportedProtocol),
    (aiohttp.InvalidUrlClientError, httpx.UnsupportedProtocol),
    (aiohttp.ClientOSError, httpx.ReadError),  # reset by peer and other socket errors after connect
    (aiohttp.ClientConnectionError, httpx.ConnectError),
    (aiohttp.ClientError, httpx.TransportError),
)


@functools.lru_cache(maxsize=1024)
def _yarl_url(text: str) -> yarl.URL:
    """``yarl.URL(text, encoded=True)``, remembered (``yarl.URL`` is immutable)."""
    return yarl.URL(text, encoded=True)


def to_httpx_error(exc: aiohttp.ClientError) -> httpx.TransportError:
    """The ``httpx`` exception for an ``aiohttp`` one (see :data:`ERROR_MAP`)."""
    for source, target in ERROR_MAP:
        if isinstance(exc, source):
            return target(str(exc) or type(exc).__name__)
    return httpx.TransportError(str(exc) or type(exc).__name__)  # pragma: no cover (ClientError is last)


def response_extensions(response: aiohttp.ClientResponse) -> dict[str, Any]:
    """The ``httpx`` response extensions of an aiohttp response: its HTTP version and reason phrase."""
    version = response.version
    http_version = f"HTTP/{version.major}.{version.minor}" if version is not None else "HTTP/1.1"
    reason = response.reason
    extensions: dict[str, Any] = {"http_version": http_version.encode("ascii")}
    if reason:
        extensions["reason_phrase"] = reason.encode("latin-1", "replace")
    return extensions


class AiohttpResponseStream(httpx.AsyncByteStream):
    """The body of an aiohttp response, as the chunks arrive; closing it releases the connection."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            while True:
                chunk = await content.read(READ_CHUNK)
                if not chunk:
                    return
                yield chunk
        except aiohttp.ClientError as exc:
            raise to_httpx_error(exc) from exc

    async def aclose(self) -> None:
        try:
            await self._response.__aexit__(None, None, None)
        except aiohttp.ClientError as exc:
            raise to_httpx_error(exc) from exc


class PinnedAiohttpTransport(httpx.AsyncBaseTransport):
    """``httpx`` requests sent by an aiohttp session that ``session_factory`` builds on first use.

    The session is made lazily (aiohttp wants a running event loop) and closed by :meth:`aclose`.
    ``pins_egress`` tells :class:`~app.security.egress.EgressGuardTransport` that host names are
    resolved and checked here, at connect time (by the session's guarded resolver).
    """

    pins_egress = True

    def __init__(self, session_factory: Callable[[], aiohttp.ClientSession]) -> None:
        self._factory = session_factory
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[Any, Any, Any], aiohttp.ClientTimeout] = {}

    def _timeout(self, extension: Any) -> aiohttp.ClientTimeout:
        """The aiohttp timeouts of httpx's ``timeout`` extension (connect, read, pool); remembered."""
        values = extension if isinstance(extension, dict) else {}
        key = (values.get("connect"), values.get("read"), values.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            if len(self._timeouts) > 64:
                self._timeouts.clear()
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=key[0], sock_read=key[1], connect=key[2])
            self._timeouts[key] = timeout
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.open(request)
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=AiohttpResponseStream(response),
            request=request,
            extensions=response_extensions(response),
        )

    async def open(self, request: httpx.Request) -> aiohttp.ClientResponse:
        """Send ``request`` and return aiohttp's response, its body unread (``httpx`` errors on failure).

        What :meth:`handle_async_request` wraps; ``app.sdk.direct`` reads it without the wrapping.
        """
        headers = request.headers
        data: Any
        try:
            data = request.content or None
        except httpx.RequestNotRead:  # a streamed body: aiohttp sends it chunked itself
            data = request.stream
            headers = headers.copy()
            headers.pop("transfer-encoding", None)
        encoding = headers.encoding
        header_list = [(key.decode(encoding), value.decode(encoding)) for key, value in headers.raw]
        extensions = request.extensions
        sni_hostname = extensions.get("sni_hostname")
        return await self.send_raw(
            request.method,
            str(request.url),
            header_list,
            data=data,
            timeout=self._timeout(extensions.get("timeout")),
            server_hostname=sni_hostname if isinstance(sni_hostname, str) else None,
        )

    def timeout_of(self, timeout: httpx.Timeout) -> aiohttp.ClientTimeout:
        """The aiohttp timeouts of an ``httpx.Timeout`` (what a request with that timeout is sent with)."""
        return self._timeout(timeout.as_dict())

    async def send_raw(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        *,
        data: Any = None,
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 (aiohttp's, for its session)
        server_hostname: str | None = None,
    ) -> aiohttp.ClientResponse:
        """What :meth:`open` sends, as plain values: ``url`` encoded (sent as is), ``headers`` as written.

        ``app.sdk.direct`` sends requests it built without ``httpx`` objects through here.
        """
        session = self._session
        if session is None:
            session = self._session = self._factory()
        try:
            return await session.request(
                method,
                # already encoded by httpx: sent as is (a URL that may hold a secret is not remembered)
                yarl.URL(url, encoded=True) if secrets_active() else _yarl_url(url),
                headers=headers,  # as written (names keep their case), duplicates kept
                data=data,
                allow_redirects=False,  # httpx follows them, checking each hop
                auto_decompress=False,  # httpx decodes (and the caller caps the decoded size)
                compress=None,
                timeout=timeout,
                server_hostname=server_hostname,
            )
        except aiohttp.ClientError as exc:
            raise to_httpx_error(exc) from exc

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def pinned_aiohttp_transport(
    resolver: AbstractResolver,
    *,
    limits: httpx.Limits | None = None,
    verify: ssl.SSLContext | bool = True,
) -> PinnedAiohttpTransport:
    """A :class:`PinnedAiohttpTransport` whose sessions resolve names with ``resolver`` (the guarded one)."""
    limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=50)
    ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)

    def session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            resolver=resolver,
            ssl=ssl_context,
            limit=limits.max_connections or 0,
            keepalive_timeout=limits.keepalive_expiry,
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            skip_auto_headers=SKIP_AUTO_HEADERS,
        )

    return PinnedAiohttpTransport(session)
