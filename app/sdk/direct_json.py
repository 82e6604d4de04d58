"""``ctx.request_json`` without ``httpx`` objects when the answer needs none: the lean direct path.

``Context.request_json`` is ``ctx.http.request`` + ``raise_for_response`` + ``decode_json``. On the
direct path (``app.sdk.direct``) that still builds an ``httpx.Request`` (URL, headers), an
``httpx.Response`` and its stream for every call, to read a body and drop them. :func:`fetch_json`
sends a request without body the same way with plain values instead:

* the same request on the wire: the headers are merged exactly as ``ConnectorHTTP.build_request``
  and the ``httpx.Request`` merge them, then the auth header (``HeaderAuth``, basic auth) set as their
  flows set it, and written as the aiohttp transport writes them (:func:`wire_headers`);
* the same checks, in the same order: rate limiter, egress guard on the URL (host names are checked
  at connect time by the pinned resolver), the guard's cap on a declared ``Content-Length``, both
  caps while the body streams, aiohttp errors mapped to the same typed step errors (secrets masked);
* a 2xx answer without ``Content-Encoding`` is read and decoded here (the JSON value, and whether
  orjson decoded it: ``app.sdk.invoke`` then needs no round trip to make it JSON);
* any other answer (a redirect, an error status to retry or raise, a compressed body), a failed
  connection with a retry budget, httpx's log line enabled, or a body that is not JSON: the
  ``httpx.Request`` that was sent is built then (the same one), the answer wrapped as the direct
  path wraps it, and everything goes on exactly as there (redirect loop, retries, read, typed error).

What does not fit (a body, ``timeout``/``follow_redirects`` arguments, another auth flow, a cached
request, a URL with userinfo, a header that is not ASCII text, a client with default params or event
hooks...) takes ``ConnectorHTTP.request`` as before, which also raises any error of building the
request.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx

from app.sdk.auth import HeaderAuth
from app.sdk.cache import CACHEABLE_METHODS
from app.sdk.direct import DirectSender, read_capped, release_raw
from app.sdk.errors import ConnectionFailed, raise_for_response
from app.sdk.http import _SIZED, ConnectorHTTP, OutboundClient, merge_headers
from app.sdk.json_body import decode_response, parse_json_body
from app.sdk.redaction import secrets_active, secrets_in_scope

_HTTPX_LOGGER = logging.getLogger("httpx")
_LEAN_ARGUMENTS = frozenset({"params", "headers"})


@dataclass(slots=True)
class _Plan:
    """A request the lean path sends: method, URL and headers as they go on the wire."""

    direct: DirectSender
    method: str
    url: httpx.URL
    text: str  # str(url), as sent
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class _Target:
    """A request URL made absolute, with what the lean path reads of it (``httpx.URL`` parts are computed)."""

    url: httpx.URL
    text: str
    netloc: bytes
    userinfo: bool


# (id(base URL), URL text) -> (base URL, target): a connector's URLs resolved once (both are immutable;
# the base URL object is kept and compared, so a reused id never matches another one).
_TARGETS: dict[tuple[int, str], tuple[httpx.URL | None, _Target]] = {}
_TARGETS_KEPT = 1024


def _target(http: ConnectorHTTP, url: str | httpx.URL, params: Any) -> _Target:
    """``url`` resolved against the base URL and ``params`` merged, as ``build_request`` does.

    Remembered only for a call without secrets (a URL may hold one): nothing of a connection's
    secrets outlives its call in these caches.
    """
    if params or not isinstance(url, str) or http.secrets or secrets_active():
        resolved = http.resolve_url(url)
        if params:
            resolved = resolved.copy_merge_params(params)
        return _Target(resolved, str(resolved), resolved.netloc, bool(resolved.userinfo))
    base = http.base_url
    key = (id(base), url)
    known = _TARGETS.get(key)
    if known is not None and known[0] is base:
        return known[1]
    resolved = http.resolve_url(url)
    target = _Target(resolved, str(resolved), resolved.netloc, bool(resolved.userinfo))
    if len(_TARGETS) >= _TARGETS_KEPT:
        _TARGETS.clear()
    _TARGETS[key] = (base, target)
    return target


def _ascii_text(value: Any) -> bool:
    return isinstance(value, str) and value.isascii()


def _auth_header(auth: httpx.Auth) -> tuple[str, str] | None:
    """The one header a plain auth flow sets (``HeaderAuth``, basic auth); None for others."""
    kind = type(auth)
    if kind is HeaderAuth:
        assert isinstance(auth, HeaderAuth)
        return auth.name, auth.value
    if kind is httpx.BasicAuth:
        value = getattr(auth, "_auth_header", None)
        return ("Authorization", value) if isinstance(value, str) else None
    return None


# (client headers, connector headers, request headers, netloc, auth header) -> wire_headers' answer
_WIRE: dict[tuple[Any, ...], tuple[tuple[str, str], ...] | None] = {}
_WIRE_KEPT = 512


def wire_headers(
    http: ConnectorHTTP,
    target: httpx.URL,
    headers: Any,
    auth: httpx.Auth | None,
    *,
    netloc: bytes | None = None,
) -> tuple[tuple[str, str], ...] | None:
    """The headers the transport writes for a request without body that ``http`` builds (``headers``
    given to it) to ``target``, ``auth`` (a header-setting flow) applied; None when some are not ASCII
    text (httpx decides then: it may refuse them, or write them in another encoding).

    Remembered for calls without secrets nor auth: the answer depends only on the client's, the
    connector's and the request's headers (names and values) and the URL's host and port, the key.
    """
    auth_header = _auth_header(auth) if auth is not None else None
    if auth is not None and auth_header is None:
        return None
    if (
        http.secrets
        or secrets_active()
        or auth_header is not None
        or (headers and not isinstance(headers, dict))
    ):
        # Secrets (not kept past their call), pairs, httpx.Headers...: computed, never remembered.
        return _wire_headers(http, target, headers, auth_header)
    try:
        key = (
            tuple(http.client.headers.raw),
            tuple(http.headers.items()),
            tuple(headers.items()) if headers else (),
            target.netloc if netloc is None else netloc,
            auth_header,
        )
        if key in _WIRE:
            return _WIRE[key]
    except TypeError:  # a value that cannot be hashed (not text): computed, never remembered
        return _wire_headers(http, target, headers, auth_header)
    known = _wire_headers(http, target, headers, auth_header)
    if len(_WIRE) >= _WIRE_KEPT:
        _WIRE.clear()
    _WIRE[key] = known
    return known


def _wire_headers(
    http: ConnectorHTTP, target: httpx.URL, headers: Any, auth_header: tuple[str, str] | None
) -> tuple[tuple[str, str], ...] | None:
    client = http.client
    merged = merge_headers(http.headers, headers) if headers else http.headers
    pairs: list[tuple[str, str]] = []
    named = {name.lower() for name in merged if isinstance(name, str)}
    for key, value in client.headers.raw:  # what build_request keeps of the client's headers
        if not (key.isascii() and value.isascii()):
            return None
        text = key.decode("ascii")
        if text.lower() not in named:
            pairs.append((text, value.decode("ascii")))
    for given, written in merged.items():
        if not (_ascii_text(given) and _ascii_text(written)):
            return None
        pairs.append((given, written))
    if target.host and not any(name.lower() == "host" for name, _ in pairs):
        netloc = target.netloc
        if not netloc.isascii():
            return None
        pairs.insert(0, ("Host", netloc.decode("ascii")))
    if auth_header is not None:  # request.headers[name] = value: the first one replaced, later ones dropped
        if not (_ascii_text(auth_header[0]) and _ascii_text(auth_header[1])):
            return None
        folded = auth_header[0].lower()
        found = [index for index, (name, _) in enumerate(pairs) if name.lower() == folded]
        for index in reversed(found[1:]):
            del pairs[index]
        if found:
            pairs[found[0]] = auth_header
        else:
            pairs.append(auth_header)
    return tuple(pairs)


def _plan(http: ConnectorHTTP, method: str, url: str | httpx.URL, kwargs: Mapping[str, Any]) -> _Plan | None:
    """The lean request for these arguments, or None when the general path must send it (see module)."""
    if not isinstance(http, ConnectorHTTP):  # a stand-in for ctx.http (tests): its own request()
        return None
    direct = http._direct
    client = http.client
    if (
        direct is None
        or not isinstance(method, str)
        or not _LEAN_ARGUMENTS.issuperset(kwargs)
        or not isinstance(client, OutboundClient)
        or client.params
    ):
        return None
    verb = method.upper()
    if verb in _SIZED or (http.cache is not None and verb in CACHEABLE_METHODS):
        return None
    try:
        target = _target(http, url, kwargs.get("params"))
    except Exception:
        return None  # the general path raises it (building the request)
    if target.userinfo or not direct.usable():
        return None
    auth = http.auth if http.auth is not None and http.same_origin(target.url) else None
    headers = wire_headers(http, target.url, kwargs.get("headers"), auth, netloc=target.netloc)
    if headers is None:
        return None
    return _Plan(direct, verb, target.url, target.text, headers)


@contextlib.contextmanager
def _masked(http: ConnectorHTTP) -> Iterator[None]:
    if not http.secrets:
        yield
        return
    with secrets_in_scope(http.secrets):
        yield


async def fetch_json(
    http: ConnectorHTTP, method: str, url: str | httpx.URL, kwargs: Mapping[str, Any]
) -> tuple[Any, bool]:
    """What ``ctx.request_json(method, url, **kwargs)`` returns, and whether orjson decoded it as it is."""
    plan = _plan(http, method, url, kwargs)
    if plan is None:
        response = await http.request(method, url, **kwargs)
        raise_for_response(response)
        return decode_response(response)
    if http.limiter is not None:
        await http.limiter.acquire(what=http._limiter_name)
        if not plan.direct.usable():  # closed while waiting: as the general path's send would go on
            request = _request_of(http, plan, kwargs)
            first = await _first_outcome(http, request, http._send_now(request, follow_redirects=_DEFAULT))
            return await _finish(http, request, first)
    direct = plan.direct
    start = time.perf_counter()
    client = http.client
    try:
        opening = direct.open_plain(
            plan.method,
            plan.url,
            plan.headers,
            direct.timeout_of(client.timeout),
            text=plan.text,
            remember=not (http.secrets or secrets_active()),
        )
        if http.secrets:
            with secrets_in_scope(http.secrets):
                raw = await opening
        else:
            raw = await opening
    except httpx.HTTPError as exc:
        try:
            http.raise_mapped(exc, plan.method, plan.url)
        except ConnectionFailed as failed:
            if http.retry is None:
                raise
            request = _request_of(http, plan, kwargs)
            return await _finish(http, request, failed)
    if 200 <= raw.status < 300 and "Content-Encoding" not in raw.headers and not _logged():
        try:
            content = await read_capped(
                raw, direct.guard.max_response_bytes, http.max_response_bytes, plan.url
            )
        except httpx.HTTPError as exc:
            http.raise_mapped(exc, plan.method, plan.url)
        finally:
            await release_raw(raw)
        try:
            return parse_json_body(content)
        except ValueError:
            request = _request_of(http, plan, kwargs)
            return decode_response(
                httpx.Response(raw.status, headers=raw.raw_headers, content=content, request=request)
            )
    try:
        request = _request_of(http, plan, kwargs)
    except BaseException:
        await release_raw(raw)
        raise
    first = await _first_outcome(http, request, _go_on(http, direct, raw, request, start))
    return await _finish(http, request, first)


_DEFAULT: Any = httpx.USE_CLIENT_DEFAULT


def _logged() -> bool:
    return _HTTPX_LOGGER.isEnabledFor(logging.INFO)


def _request_of(http: ConnectorHTTP, plan: _Plan, kwargs: Mapping[str, Any]) -> httpx.Request:
    """The ``httpx.Request`` the general path sends for these arguments, its auth applied as its flow does."""
    request = http.build_request(plan.method, plan.url, headers=kwargs.get("headers"))
    auth = http.auth if http.auth is not None and http.same_origin(request.url) else None
    if auth is not None:
        next(auth.auth_flow(request))
    return request


async def _go_on(
    http: ConnectorHTTP,
    direct: DirectSender,
    raw: aiohttp.ClientResponse,
    request: httpx.Request,
    start: float,
) -> httpx.Response:
    """The direct path's send of ``request`` from its first answer ``raw`` on: wrapped, redirects followed."""
    try:
        with _masked(http):
            first = await direct.wrap(raw, request, start)
            return await direct.send(request, follow_redirects=_DEFAULT, first=first)
    except httpx.HTTPError as exc:
        http._raise_mapped(exc, request)


async def _first_outcome(
    http: ConnectorHTTP, request: httpx.Request, sending: Awaitable[httpx.Response]
) -> httpx.Response | ConnectionFailed:
    """The answer of the first attempt, or its ``ConnectionFailed`` when a retry budget may retry it."""
    try:
        response = await sending
    except ConnectionFailed as failed:
        if http.retry is None:
            raise
        return failed
    return response


async def _finish(
    http: ConnectorHTTP, request: httpx.Request, first: httpx.Response | ConnectionFailed
) -> tuple[Any, bool]:
    """What the general path does after the first attempt: retries, then read, check and decode."""
    if http.retry is not None:
        response = await http.retry.resume(request, first, http.attempt(request, follow_redirects=_DEFAULT))
    else:
        assert isinstance(first, httpx.Response)
        response = first
    await http._read(response)
    raise_for_response(response)
    return decode_response(response)
