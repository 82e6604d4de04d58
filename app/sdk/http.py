"""The outbound HTTP client: one per process (:func:`build_http_client`), and the per-connector view of it.

``build_http_client(settings)`` returns the ``httpx.AsyncClient`` every connector request goes
through: egress guard on every hop (redirects included), connections pinned to checked addresses,
response bodies capped at ``settings.response_max_bytes`` while streaming, default timeout
``settings.http_timeout``, no proxies from the environment and no cookie persistence (the client
is shared by every account, so cookies set by one upstream answer must never reach another request).

:class:`ConnectorHTTP` is what a connector sees as ``ctx.http``: relative URLs are joined to the
connector's base URL, the connection's auth is applied (only to the base URL's origin, so a
credential never leaks to another host), the declared rate limit is honoured, the decoded body is
capped too (a gzip bomb stops at the same limit) and transport failures become typed step errors.
The connection's secret values (``secrets``) are masked in ``httpx``'s log lines and in those errors
(see :mod:`app.sdk.redaction`).

A connector speaking another protocol (SMTP...) checks its destination with the same policy:
``await ctx.http.egress_addresses(host, port)`` resolves the host once, refuses it like an HTTP
destination would be refused, and returns the checked addresses to connect to (pinned).
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, NoReturn

import httpx

from app.errors import EgressDenied, StepError, StepTimeout
from app.sdk.auth import HeaderAuth, QueryParamAuth
from app.sdk.cache import CACHE_EXTENSION, CACHEABLE_METHODS, HttpCache, guard_transport
from app.sdk.direct import DirectSender, DirectStream, direct_sender
from app.sdk.errors import ConnectionFailed, InvalidResponse, UpstreamError, describe_url, raise_for_response
from app.sdk.ratelimit import RateLimiter
from app.sdk.redaction import install_log_redaction, mask_error, secrets_active, secrets_in_scope
from app.sdk.retries import RetryBudget
from app.security.egress import (
    EgressPolicy,
    PinnedHTTPTransport,
    Resolver,
    aiohttp_transport,
)

USER_AGENT = "mashpipe/0.1 (+https://github.com/mashpipe)"
DEFAULT_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=100, keepalive_expiry=30.0)
MAX_REDIRECTS = 10
# Auth flows that change the request once, the same way whatever the answer, and may be applied again
# (a retry): the direct path runs them itself. Others (OAuth refresh flows, PathPrefixAuth...) go
# through httpx's client.
DIRECT_AUTHS: frozenset[type[httpx.Auth]] = frozenset({HeaderAuth, QueryParamAuth, httpx.BasicAuth})

# The egress policy of each client built by build_http_client, for non-HTTP destinations.
_POLICIES: weakref.WeakKeyDictionary[httpx.AsyncClient, EgressPolicy] = weakref.WeakKeyDictionary()


def _no_cookies() -> CookieJar:
    """A cookie jar that refuses to store anything (given as a jar: ``httpx.Cookies`` would copy it)."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


class RefusedCookies(httpx.Cookies):
    """The outbound client's cookies: a jar refusing everything, and ``Set-Cookie`` answers not even read.

    (httpx would run every response through ``urllib``'s cookie machinery only for the jar to refuse
    each cookie: a sizeable share of a request's CPU time.)
    """

    def __init__(self) -> None:
        super().__init__(_no_cookies())

    def extract_cookies(self, response: httpx.Response) -> None:
        """Keep nothing (see the class docstring)."""
        return None


class OutboundClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` whose cookie store is always a :class:`RefusedCookies` (even when assigned)."""

    # Set by build_http_client when its transport allows the direct path (app.sdk.direct).
    direct: DirectSender | None = None

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("cookies", None)
        super().__init__(**kwargs)
        self._cookies = RefusedCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        self._cookies = RefusedCookies()


def parse_url(text: str) -> httpx.URL:
    """``httpx.URL(text)``, remembered: a connector validating a URL and the request sending it parse it once.

    (``httpx.URL`` is immutable; an invalid URL raises ``httpx.InvalidURL`` and is not remembered; nothing
    is remembered while secrets are in scope: the URL may hold one.)
    """
    return httpx.URL(text) if secrets_active() else _parse_url(text)


@functools.lru_cache(maxsize=1024)
def _parse_url(text: str) -> httpx.URL:
    return httpx.URL(text)


@functools.lru_cache(maxsize=256)
def _base_url(text: str) -> httpx.URL:
    """A connector's base URL parsed, its path ending with ``/``; remembered (``httpx.URL`` is immutable)."""
    url = httpx.URL(text)
    if not url.raw_path.endswith(b"/"):
        url = url.copy_with(raw_path=url.raw_path + b"/")
    return url


# Methods whose requests httpx gives a "Content-Length: 0" when they have no body.
_SIZED = frozenset({"POST", "PUT", "PATCH"})


def _header_key(name: str | bytes) -> str:
    return (name.decode("latin-1") if isinstance(name, bytes) else name).lower()


def merge_headers(base: Mapping[Any, Any], extra: Any) -> dict[Any, Any]:
    """``base`` updated with ``extra`` (a mapping or pairs), names compared case-insensitively.

    A name given in ``extra`` replaces the same header of ``base`` whatever its case (``accept``
    replaces ``Accept``: one of them is sent, not both); the name is written as ``extra`` writes it.
    """
    merged = dict(base)
    pairs = extra.items() if hasattr(extra, "items") else extra
    keys = {_header_key(name): name for name in merged}
    for name, value in pairs:
        folded = _header_key(name)
        previous = keys.get(folded)
        if previous is not None and previous != name:
            del merged[previous]
        keys[folded] = name
        merged[name] = value
    return merged


def build_http_client(
    settings: Any,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    resolver: Resolver | None = None,
) -> httpx.AsyncClient:
    """The process-wide outbound client (see the module docstring).

    The inner transport is ``transport`` when given, else the one ``settings.http_transport`` names:
    ``httpx`` (:class:`PinnedHTTPTransport`) or ``aiohttp`` (``aiohttp_transport``, faster under
    concurrency); both pin connections to checked addresses, and the egress guard wraps either.
    ``resolver`` replaces the system DNS resolver (tests).
    """
    install_log_redaction()  # secrets in request URLs never reach httpx's log lines
    policy = EgressPolicy.from_settings(settings, resolver=resolver)
    inner = transport
    if inner is None and getattr(settings, "http_transport", "httpx") == "aiohttp":
        inner = aiohttp_transport(policy, limits=DEFAULT_LIMITS)
    if inner is None:
        inner = PinnedHTTPTransport(policy, limits=DEFAULT_LIMITS)
    guard = guard_transport(  # with the opt-in cache of app.sdk.cache; unmarked requests bypass it
        inner,
        policy,
        max_response_bytes=settings.response_max_bytes,
        cache_bytes=getattr(settings, "http_cache_max_bytes", 0),
    )
    client = OutboundClient(
        transport=guard,
        timeout=httpx.Timeout(settings.http_timeout),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )
    client.direct = direct_sender(client, guard)
    _POLICIES[client] = policy
    return client


def egress_policy_of(client: httpx.AsyncClient) -> EgressPolicy:
    """The egress policy ``client`` was built with; the strictest one (nothing allow-listed) otherwise."""
    return _POLICIES.get(client) or EgressPolicy()


def map_transport_error(
    exc: Exception, *, method: str | None = None, url: httpx.URL | str | None = None
) -> Exception:
    """The typed step error for an ``httpx`` exception (or the exception itself when not an httpx one)."""
    where = ""
    if method is not None and url is not None:
        where = f"{method} {describe_url(url)}: "
    elif url is not None:
        where = f"{describe_url(url)}: "
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return StepTimeout(f"{where}timed out ({type(exc).__name__})", retry_kind="timeout")
    if isinstance(exc, httpx.TooManyRedirects):
        return UpstreamError(f"{where}too many redirects")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return EgressDenied(f"{where}{detail}")
    if isinstance(exc, httpx.DecodingError):
        return InvalidResponse(f"{where}cannot decode the response body: {detail}")
    if isinstance(exc, httpx.TransportError):
        return ConnectionFailed(f"{where}{type(exc).__name__}: {detail}")
    if isinstance(exc, httpx.HTTPStatusError):
        try:
            raise_for_response(exc.response)
        except StepError as mapped:
            return mapped
    if isinstance(exc, httpx.InvalidURL):
        return StepError(f"{where}invalid URL: {detail}", code="invalid_url")
    return exc


class ConnectorHTTP:
    """``ctx.http``: an ``httpx.AsyncClient``-like client scoped to one connector and one connection.

    Methods mirror ``httpx.AsyncClient``: :meth:`request`, :meth:`get`, :meth:`post`, :meth:`put`,
    :meth:`patch`, :meth:`delete`, :meth:`head`, :meth:`options` return a read ``httpx.Response``
    (non-2xx statuses are returned, not raised: call :func:`app.sdk.raise_for_response`);
    :meth:`stream` yields an unread response to iterate.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str | None = None,
        auth: httpx.Auth | None = None,
        max_response_bytes: int | None = None,
        limiter: RateLimiter | None = None,
        limiter_name: str = "this connection",
        headers: dict[str, str] | None = None,
        secrets: Iterable[str] = (),
        retry: RetryBudget | None = None,
        cache: HttpCache | None = None,
    ) -> None:
        self.client = client
        self.retry = retry  # retries of idempotent requests (app.sdk.retries); None: none
        self.cache = cache  # opt-in caching of GET/HEAD answers (app.sdk.cache); None: none
        self.secrets = tuple(secrets)
        self.base_url = _base_url(base_url) if base_url else None
        self.auth = auth
        self.max_response_bytes = max_response_bytes
        self.limiter = limiter
        self._limiter_name = limiter_name
        self.headers = dict(headers or {})
        # The direct path (app.sdk.direct) when the client has one and the auth is one it can apply.
        direct = getattr(client, "direct", None)
        plain_auth = auth is None or type(auth) in DIRECT_AUTHS
        self._direct: DirectSender | None = (
            direct if isinstance(direct, DirectSender) and plain_auth else None
        )

    def resolve_url(self, url: httpx.URL | str) -> httpx.URL:
        """``url`` made absolute: relative paths are appended to the base URL (like ``httpx.AsyncClient``)."""
        parsed = url if isinstance(url, httpx.URL) else parse_url(url)
        if parsed.is_absolute_url:
            return parsed
        if parsed.host:
            raise StepError(
                f"scheme-relative URL {str(url)!r} is not allowed; write https://...", code="invalid_url"
            )
        if self.base_url is None:
            raise StepError(
                f"relative URL {str(url)!r} given, but the connector has no base URL: use an absolute URL",
                code="invalid_url",
            )
        return self.base_url.copy_with(raw_path=self.base_url.raw_path + parsed.raw_path.lstrip(b"/"))

    async def egress_addresses(self, host: str, port: int) -> list[str]:
        """Resolve ``host`` once and check each address with the egress guard; the addresses to connect to.

        For protocols other than HTTP (SMTP...): connect to one of the returned addresses (not to
        ``host`` again, which could resolve elsewhere) and keep ``host`` for TLS verification.
        Raises :class:`app.errors.EgressDenied` for a refused destination, :class:`ConnectionFailed`
        when the name does not resolve.
        """
        return await egress_policy_of(self.client).resolve(host, port)

    def same_origin(self, url: httpx.URL) -> bool:
        """Whether ``url`` is on the base URL's origin (scheme, host, port); True without a base URL."""
        base = self.base_url
        if base is None:
            return True
        return (url.scheme, url.host, url.port or _port(url)) == (
            base.scheme,
            base.host,
            base.port or _port(base),
        )

    def build_request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        params: Any = None,
        headers: Any = None,
        json: Any = None,
        content: Any = None,
        data: Any = None,
        files: Any = None,
        timeout: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Request:
        """An ``httpx.Request`` for this connector (base URL and default headers applied, no auth yet)."""
        merged = merge_headers(self.headers, headers) if headers else self.headers
        target = self.resolve_url(url)
        if params:  # merged with the URL's own query (httpx would replace it)
            target = target.copy_merge_params(params)
        client = self.client
        if isinstance(client, OutboundClient) and not client.params:
            # What client.build_request does for an absolute URL, a client without cookies or
            # default params, and no per-request cookies: default headers merged, timeout set.
            # (The client's headers, less those named again, then ours: what Headers.update does.)
            pairs: list[tuple[Any, Any]] = client.headers.raw
            if merged:
                named = {_header_key(name) for name in merged}
                pairs = [pair for pair in pairs if pair[0].decode("latin-1").lower() not in named]
                pairs.extend(merged.items())
            chosen = client.timeout if timeout is httpx.USE_CLIENT_DEFAULT else httpx.Timeout(timeout)
            verb = method.upper()
            if json is None and content is None and data is None and files is None and verb not in _SIZED:
                # No body: httpx would add only a Host header (first), encode nothing and read b"".
                # Built from the stream directly, the headers are normalized once instead of twice.
                if target.host and not any(_header_key(pair[0]) == "host" for pair in pairs):
                    pairs = [(b"Host", target.netloc), *pairs]
                request = httpx.Request(
                    verb,
                    target,
                    headers=pairs,
                    stream=httpx.ByteStream(b""),
                    extensions={"timeout": chosen.as_dict()},
                )
                request._content = b""
                return request
            return httpx.Request(
                method.upper(),
                target,
                headers=pairs,
                json=json,
                content=content,
                data=data,
                files=files,
                extensions={"timeout": chosen.as_dict()},
            )
        return self.client.build_request(
            method.upper(),
            target,
            headers=merged or None,
            json=json,
            content=content,
            data=data,
            files=files,
            timeout=timeout,
        )

    async def _send(self, request: httpx.Request, *, follow_redirects: Any) -> httpx.Response:
        if self.limiter is not None:
            await self.limiter.acquire(what=self._limiter_name)
        return await self._send_now(request, follow_redirects=follow_redirects)

    async def _send_now(self, request: httpx.Request, *, follow_redirects: Any) -> httpx.Response:
        """:meth:`_send` once the rate limiter let the request go."""
        auth = self.auth if self.auth is not None and self.same_origin(request.url) else None
        cached = self.cache is not None and request.method in CACHEABLE_METHODS
        direct = self._direct
        if direct is not None and not cached and not request.url.userinfo and direct.usable():
            return await self._send_direct(direct, request, auth, follow_redirects)
        if cached:
            request.extensions = {**request.extensions, CACHE_EXTENSION: self.cache}
        try:
            with secrets_in_scope(self.secrets):
                return await self.client.send(
                    request, auth=auth, stream=True, follow_redirects=follow_redirects
                )
        except httpx.HTTPError as exc:
            self._raise_mapped(exc, request)

    async def _send_direct(
        self, direct: DirectSender, request: httpx.Request, auth: httpx.Auth | None, follow_redirects: Any
    ) -> httpx.Response:
        """:meth:`_send` through the direct path: what ``client.send`` would do, without its layers."""
        if auth is not None:  # one of DIRECT_AUTHS: its flow sets a header or a query parameter, once
            next(auth.auth_flow(request))
        try:
            if not self.secrets:
                return await direct.send(request, follow_redirects=follow_redirects)
            with secrets_in_scope(self.secrets):
                return await direct.send(request, follow_redirects=follow_redirects)
        except httpx.HTTPError as exc:
            self._raise_mapped(exc, request)

    async def _send_retrying(self, request: httpx.Request, *, follow_redirects: Any) -> httpx.Response:
        """:meth:`_send`, retried on 429/5xx/connection failures when the call has a retry budget."""
        if self.retry is None:
            return await self._send(request, follow_redirects=follow_redirects)
        return await self.retry.send(request, self.attempt(request, follow_redirects=follow_redirects))

    def attempt(
        self, request: httpx.Request, *, follow_redirects: Any
    ) -> Callable[[], Awaitable[httpx.Response]]:
        """One sending of ``request`` as built (what a retry sends again)."""
        url = request.url

        def attempt() -> Awaitable[httpx.Response]:
            request.url = url  # as built: an auth flow's change (a path prefix) is not applied twice
            return self._send(request, follow_redirects=follow_redirects)

        return attempt

    def _raise_mapped(self, exc: Exception, request: httpx.Request) -> NoReturn:
        """Raise the typed error of ``exc`` with the connection's secrets masked (without ``exc`` as its
        cause when that still names a secret)."""
        self.raise_mapped(exc, request.method, request.url)

    def raise_mapped(self, exc: Exception, method: str, url: httpx.URL) -> NoReturn:
        """:meth:`_raise_mapped` of a request given by its method and URL."""
        mapped = map_transport_error(exc, method=method, url=url)
        masked = isinstance(mapped, StepError) and mask_error(mapped, self.secrets)
        if masked or any(secret in str(exc) for secret in self.secrets):
            raise mapped from None  # the httpx exception still names the secret
        raise mapped from exc

    async def _read(self, response: httpx.Response) -> None:
        """Read the decoded body, failing once it passes ``max_response_bytes``."""
        limit = self.max_response_bytes
        stream = response.stream
        if isinstance(stream, DirectStream) and stream.plain and not response.is_stream_consumed:
            await self._read_plain(response, stream, limit)
            return
        chunks: list[bytes] = []
        total = 0
        try:
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if limit is not None and total > limit:
                    raise InvalidResponse(
                        f"response body exceeds {limit} bytes ({describe_url(response.request.url)})",
                        details={"limit": limit, "url": describe_url(response.request.url)},
                    )
                chunks.append(chunk)
        except httpx.HTTPError as exc:
            self._raise_mapped(exc, response.request)
        finally:
            await response.aclose()
        response._content = b"".join(chunks)

    async def _read_plain(self, response: httpx.Response, stream: DirectStream, limit: int | None) -> None:
        """:meth:`_read` of a direct response without ``Content-Encoding``: the bytes as they came, capped."""
        try:
            content = await stream.read_plain(limit)
            response.is_stream_consumed = True
        except httpx.HTTPError as exc:
            self._raise_mapped(exc, response.request)
        finally:
            await response.aclose()
        response._content = content

    async def request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        params: Any = None,
        headers: Any = None,
        json: Any = None,
        content: Any = None,
        data: Any = None,
        files: Any = None,
        timeout: Any = httpx.USE_CLIENT_DEFAULT,  # noqa: ASYNC109 (the httpx signature)
        follow_redirects: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        """Send a request and read its body; the response is returned whatever its status."""
        request = self.build_request(
            method,
            url,
            params=params,
            headers=headers,
            json=json,
            content=content,
            data=data,
            files=files,
            timeout=timeout,
        )
        response = await self._send_retrying(request, follow_redirects=follow_redirects)
        await self._read(response)
        return response

    @contextlib.asynccontextmanager
    async def stream(self, method: str, url: httpx.URL | str, **kwargs: Any) -> AsyncIterator[httpx.Response]:
        """Send a request and yield the response unread (iterate ``aiter_bytes()``); closed on exit."""
        follow_redirects = kwargs.pop("follow_redirects", httpx.USE_CLIENT_DEFAULT)
        request = self.build_request(method, url, **kwargs)
        response = await self._send_retrying(request, follow_redirects=follow_redirects)
        try:
            yield response
        finally:
            await response.aclose()

    async def get(self, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def head(self, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        return await self.request("HEAD", url, **kwargs)

    async def options(self, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        return await self.request("OPTIONS", url, **kwargs)

    async def post(self, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def put(self, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", url, **kwargs)


def _port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80
