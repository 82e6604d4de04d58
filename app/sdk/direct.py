"""The direct path of a connector request: straight to the pinned aiohttp session, every check kept.

``ConnectorHTTP`` (``ctx.http``, ``ctx.request_json``) sends through ``httpx.AsyncClient.send`` in
general: auth flow, redirect loop, then the transport chain (opt-in cache, egress guard, aiohttp
adapter), each layer wrapping the response stream in one more object. When the outbound client was
built by :func:`app.sdk.http.build_http_client` over the aiohttp transport (the default settings),
a :class:`DirectSender` sends the same ``httpx.Request`` with the same steps written out flat:

* the egress guard's check of the URL (every hop, redirects included) — host names are resolved
  and their addresses checked at connect time by the session's guarded resolver (pinned: no DNS
  rebinding between check and connect), exactly as through the transport;
* the declared ``Content-Length`` refused above ``max_response_bytes`` before reading, and the body
  capped while it streams (:class:`DirectStream`); a ``Content-Encoding`` is decoded by httpx's own
  decoders with the decoded size capped by the caller, so a decompression bomb stops at the limit;
* redirects followed as ``httpx`` follows them (its own ``_build_redirect_request``: method, URL,
  headers — ``Authorization`` dropped on another origin — and body), at most ``max_redirects`` hops;
* aiohttp errors turned into the ``httpx`` exceptions the transport raises, so
  :func:`app.sdk.http.map_transport_error` gives the same typed step errors;
* httpx's ``HTTP Request: ...`` log line, when its logger is enabled (secrets masked by the caller's
  :func:`~app.sdk.redaction.secrets_in_scope`).

What it leaves to the general path (``ConnectorHTTP._send`` decides): an ``httpx.Auth`` flow other
than one header, one query parameter or basic auth (``app.sdk.http.DIRECT_AUTHS``: an OAuth refresh or
a path prefix goes through httpx), a URL with userinfo, a request marked for the cache, a client with
event hooks, a closed client, and any client over another transport (the httpx one, respx mocks,
tests' transports).
The response is an ``httpx.Response`` like the general path's (status, headers, request, history,
extensions, ``elapsed``), its body read by ``ConnectorHTTP`` through :meth:`DirectStream.read_plain`
when it has no ``Content-Encoding``.

``ctx.request_json`` goes one step further (``app.sdk.direct_json``): a request without body is sent
as plain values (:meth:`DirectSender.open_plain`), and its answer is wrapped (:meth:`DirectSender.wrap`,
then :meth:`DirectSender.send` from that ``first`` answer on) only when it is not a plain 2xx one.
"""

from __future__ import annotations

import datetime
import logging
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import Any, NoReturn

import aiohttp
import httpx

from app.security.aiohttp_transport import (
    READ_CHUNK,
    PinnedAiohttpTransport,
    response_extensions,
    to_httpx_error,
)
from app.security.egress import EgressGuardTransport, response_too_large

_HTTPX_LOGGER = logging.getLogger("httpx")


class DirectStream(httpx.AsyncByteStream):
    """The body of an aiohttp response as an httpx stream, capped at ``limit`` bytes as it arrives.

    Iterating it is what the egress guard's capped stream over the aiohttp adapter gives;
    :meth:`read_plain` reads it all at once (a body without ``Content-Encoding``). Closing it releases
    the connection and sets the response's ``elapsed`` (as httpx does when a response is closed).
    """

    def __init__(self, raw: aiohttp.ClientResponse, limit: int | None, url: httpx.URL, start: float) -> None:
        self._raw = raw
        self._limit = limit
        self._url = url
        self._start = start
        self._response: weakref.ReferenceType[httpx.Response] | None = None
        self.plain = "Content-Encoding" not in raw.headers  # read as is: no decoder would change it

    def bind(self, response: httpx.Response) -> None:
        """The response this stream belongs to (its ``elapsed`` is set on close)."""
        self._response = weakref.ref(response)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._raw.content
        limit = self._limit
        total = 0
        try:
            while True:
                chunk = await content.read(READ_CHUNK)
                if not chunk:
                    return
                total += len(chunk)
                if limit is not None and total > limit:
                    raise response_too_large(self._url, limit)
                yield chunk
        except aiohttp.ClientError as exc:
            raise to_httpx_error(exc) from exc

    async def read_plain(self, limit: int | None) -> bytes:
        """The whole body, undecoded (for a response without ``Content-Encoding``), at most ``limit`` bytes.

        Past this stream's cap (the guard's) or past ``limit`` (the caller's), ``InvalidResponse``;
        the checks come in the general path's order: the guard's cap first.
        """
        return await read_capped(self._raw, self._limit, limit, self._url)

    async def aclose(self) -> None:
        response = self._response() if self._response is not None else None
        if response is not None:
            response.elapsed = datetime.timedelta(seconds=time.perf_counter() - self._start)
        try:
            await self._raw.__aexit__(None, None, None)
        except aiohttp.ClientError as exc:
            raise to_httpx_error(exc) from exc


class DirectSender:
    """Sends ``httpx`` requests through a client's guard and pinned aiohttp transport, not the client."""

    def __init__(
        self, client: httpx.AsyncClient, guard: EgressGuardTransport, transport: PinnedAiohttpTransport
    ) -> None:
        self._client = weakref.ref(client)  # the client owns this sender: no cycle keeping it alive
        self.guard = guard
        self.transport = transport
        self.max_redirects = client.max_redirects
        self.follow_redirects = client.follow_redirects
        self._timeout_source: httpx.Timeout | None = None
        self._timeout: aiohttp.ClientTimeout | None = None

    def usable(self) -> bool:
        """Whether the client is open and adds nothing the direct path skips (event hooks)."""
        client = self._client()
        if client is None or client.is_closed:
            return False
        hooks = client.event_hooks
        return not hooks["request"] and not hooks["response"]

    async def send(
        self, request: httpx.Request, *, follow_redirects: Any, first: httpx.Response | None = None
    ) -> httpx.Response:
        """What ``client.send(request, stream=True, follow_redirects=...)`` does without auth (see module).

        ``first``: the answer to ``request`` when it was already sent (by :meth:`open_plain`, wrapped
        by :meth:`wrap`): the redirect loop goes on from there.
        """
        follow = (
            self.follow_redirects if follow_redirects is httpx.USE_CLIENT_DEFAULT else bool(follow_redirects)
        )
        history: list[httpx.Response] = []
        while True:
            if len(history) > self.max_redirects:
                raise httpx.TooManyRedirects("Exceeded maximum allowed redirects.", request=request)
            if first is not None:
                response, first = first, None
            else:
                response = await self._send_single(request)
            try:
                response.history = list(history)
                if not response.has_redirect_location:
                    return response
                client = self._client()
                if client is None:
                    raise RuntimeError("the outbound client is gone")
                request = client._build_redirect_request(request, response)
                history = [*history, response]
                if follow:
                    await response.aread()
                else:
                    response.next_request = request
                    return response
            except BaseException:
                await response.aclose()
                raise

    def timeout_of(self, timeout: httpx.Timeout) -> aiohttp.ClientTimeout:
        """The aiohttp timeouts a request with ``timeout`` is sent with (remembered for the last one seen)."""
        if timeout is not self._timeout_source:
            self._timeout = self.transport.timeout_of(timeout)
            self._timeout_source = timeout
        assert self._timeout is not None
        return self._timeout

    async def open_plain(
        self,
        method: str,
        url: httpx.URL,
        headers: Sequence[tuple[str, str]],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109
        *,
        text: str | None = None,
        remember: bool = True,
    ) -> aiohttp.ClientResponse:
        """One hop of a request without body, given as plain values (no ``httpx.Request``): checked, sent.

        What :meth:`_send_single` does before wrapping the answer: the egress check of ``url``, the
        send (``headers`` exactly as the transport would write them), a declared ``Content-Length``
        past the guard's cap refused. The caller reads the answer (:func:`read_capped`) or wraps it
        (:meth:`wrap`) to go on as the general path does. ``text``: ``str(url)`` when known;
        ``remember``: whether the policy may remember the whole URL as passing (not when it may hold
        a secret).
        """
        guard = self.guard
        if text is None:
            text = str(url)
        if guard.resolve_hostnames:
            await guard.policy.check_request_url(url, resolve=True)
        else:
            guard.policy.check_url_text(url, text, remember=remember)  # check_request_url, not resolving
        raw = await self.transport.send_raw(method, text, headers, timeout=timeout)
        if self._declared_too_large(raw):
            await self._refuse(raw, url)
        return raw

    def _declared_too_large(self, raw: aiohttp.ClientResponse) -> bool:
        limit = self.guard.max_response_bytes
        if limit is None:
            return False
        values = raw.headers.getall("Content-Length", ())
        declared = values[0] if len(values) == 1 else ", ".join(values)  # several: never digits only
        return declared.isdigit() and int(declared) > limit

    async def _refuse(self, raw: aiohttp.ClientResponse, url: httpx.URL) -> NoReturn:
        limit = self.guard.max_response_bytes
        assert limit is not None
        await release_raw(raw)
        raise response_too_large(url, limit)

    async def wrap(self, raw: aiohttp.ClientResponse, request: httpx.Request, start: float) -> httpx.Response:
        """The ``httpx.Response`` of ``raw`` (the answer to ``request``, sent at ``start``), its body streamed
        and capped; httpx's ``HTTP Request: ...`` log line written."""
        stream = DirectStream(raw, self.guard.max_response_bytes, request.url, start)
        try:
            response = httpx.Response(
                status_code=raw.status,
                headers=raw.raw_headers,
                stream=stream,
                request=request,
                extensions=response_extensions(raw),
            )
        except BaseException:
            await release_raw(raw)
            raise
        stream.bind(response)
        if _HTTPX_LOGGER.isEnabledFor(logging.INFO):
            _HTTPX_LOGGER.info(
                'HTTP Request: %s %s "%s %d %s"',
                request.method,
                request.url,
                response.http_version,
                response.status_code,
                response.reason_phrase,
            )
        return response

    async def _send_single(self, request: httpx.Request) -> httpx.Response:
        start = time.perf_counter()
        guard = self.guard
        await guard.policy.check_request_url(request.url, resolve=guard.resolve_hostnames)
        raw = await self.transport.open(request)
        if self._declared_too_large(raw):
            await self._refuse(raw, request.url)
        return await self.wrap(raw, request, start)


async def read_capped(
    raw: aiohttp.ClientResponse, cap: int | None, limit: int | None, url: httpx.URL
) -> bytes:
    """The whole body of ``raw`` as it came (no decoding), failing past ``cap`` (the guard's) or ``limit``.

    ``InvalidResponse`` past either (the guard's cap checked first); aiohttp errors as httpx ones.
    """
    content = raw.content
    chunks: list[bytes] = []
    total = 0
    try:
        while True:
            chunk = await content.read(READ_CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if cap is not None and total > cap:
                raise response_too_large(url, cap)
            if limit is not None and total > limit:
                raise response_too_large(url, limit)
            chunks.append(chunk)
    except aiohttp.ClientError as exc:
        raise to_httpx_error(exc) from exc
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def release_raw(raw: aiohttp.ClientResponse) -> None:
    """Release ``raw``'s connection (aiohttp errors as httpx ones)."""
    try:
        await raw.__aexit__(None, None, None)
    except aiohttp.ClientError as exc:
        raise to_httpx_error(exc) from exc


def direct_sender(client: httpx.AsyncClient, guard: httpx.AsyncBaseTransport) -> DirectSender | None:
    """A :class:`DirectSender` for ``client`` when its transport is the guard over the aiohttp one."""
    if not isinstance(guard, EgressGuardTransport):
        return None
    inner = guard.inner
    if type(inner) is not PinnedAiohttpTransport:
        return None
    return DirectSender(client, guard, inner)
