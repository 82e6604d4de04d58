"""Typed errors of the connector SDK, and :func:`raise_for_response` that maps HTTP statuses onto them.

All of them are :class:`app.errors.StepError` subclasses: raised inside an operation they fail the
step, and their ``retry_kind`` tells the engine whether a retry may help::

    StepError
    ├── UpstreamError (upstream_error)             5xx: retry_kind http_5xx; other 4xx: not retryable
    │   ├── AuthFailed (auth_failed)               401 / 403, not retryable
    │   ├── NotFound (not_found)                   404, not retryable
    │   └── RateLimited (rate_limited)             429, retry_kind http_429, retry_after in seconds
    ├── ConnectionFailed (connection_failed)       network errors, retry_kind connection
    ├── InvalidResponse (invalid_response)         malformed or oversized body, not retryable
    └── EgressDenied (egress_denied)               app.errors: destination refused by the SSRF guard

:class:`ConnectorDefinitionError` is not a step error: it is raised when a connector is declared
wrongly (at import time), with a message naming the connector and the operation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from app import errors as app_errors

BODY_EXCERPT_CHARS = 300


class UpstreamError(app_errors.UpstreamError):
    """The upstream API answered with an error status (or misbehaved in a way a retry will not fix)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        details: Any = None,
        code: str | None = None,
        retry_kind: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, details=details, code=code, retry_kind=retry_kind, retry_after=retry_after)
        self.status_code = status_code


class AuthFailed(UpstreamError):
    """401 or 403: the credentials were refused. Fix the connection; retrying will not help."""

    code = "auth_failed"


class NotFound(UpstreamError):
    """404: the upstream resource does not exist."""

    code = "not_found"


class RateLimited(UpstreamError):
    """429 (or a quota exhausted): retryable; ``retry_after`` holds the seconds to wait when known."""

    code = "rate_limited"
    retry_kind = "http_429"


class ConnectionFailed(app_errors.StepError):
    """The upstream could not be reached (DNS, refused connection, reset, TLS...). Retryable."""

    code = "connection_failed"
    retry_kind = "connection"


class InvalidResponse(app_errors.StepError):
    """The upstream answered something unusable: malformed JSON, unexpected shape, oversized body."""

    code = "invalid_response"


class ConnectorDefinitionError(app_errors.MashpipeError):
    """A connector or one of its operations is declared wrongly; raised when the module is imported."""

    code = "connector_invalid"


def describe_url(url: httpx.URL | str) -> str:
    """``url`` without query string and userinfo, safe in messages (API keys often ride in queries)."""
    parsed = httpx.URL(str(url))
    return str(parsed.copy_with(query=None, fragment=None, username=None, password=None))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date); None when absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = datetime.now(UTC).timestamp() if now is None else now
        return max(0.0, when.timestamp() - current)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN or infinite
        return None
    return max(0.0, seconds)


def _quota_reset(response: httpx.Response) -> float | None:
    """Seconds until an ``X-RateLimit-Reset`` epoch (GitHub style), if the header is there."""
    raw = response.headers.get("x-ratelimit-reset")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw) - time.time())
    except ValueError:
        return None


def _excerpt(response: httpx.Response) -> str | None:
    try:
        content = response.content
    except httpx.ResponseNotRead:
        return None
    if not content:
        return None
    text = content[: BODY_EXCERPT_CHARS * 4].decode(response.encoding or "utf-8", "replace")
    return text[:BODY_EXCERPT_CHARS]


def _upstream_message(text: str | None) -> str | None:
    """The human part of an error body: a JSON ``message``/``error``/``detail`` field, else the text."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:200] or None
    if isinstance(data, dict):
        for key in ("message", "error_description", "error", "detail", "title"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()[:200]
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return str(value["message"]).strip()[:200]
    return None


def _request_of(response: httpx.Response) -> httpx.Request | None:
    try:
        return response.request
    except RuntimeError:  # a Response built by hand has no request
        return None


def _explained(response: httpx.Response, explain: Callable[[Any], str | None]) -> str | None:
    """``explain`` applied to the decoded JSON body; None when the body is not JSON or it finds nothing."""
    try:
        data = json.loads(response.content)
    except (ValueError, httpx.ResponseNotRead):
        return None
    try:
        text = explain(data)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        return None
    if not isinstance(text, str) or not text.strip():
        return None
    return " ".join(text.split())[:BODY_EXCERPT_CHARS]


def raise_for_response(
    response: httpx.Response, *, explain: Callable[[Any], str | None] | None = None
) -> None:
    """Raise the typed error matching a non-2xx ``response``; return quietly on 2xx.

    401/403 → :class:`AuthFailed` (a 403 with ``X-RateLimit-Remaining: 0`` or a ``Retry-After`` header,
    GitHub's primary and secondary rate limits, is :class:`RateLimited`),
    404 → :class:`NotFound`, 429 → :class:`RateLimited` with ``retry_after`` from ``Retry-After``,
    5xx → :class:`UpstreamError` retryable as ``http_5xx``, anything else → :class:`UpstreamError`
    (not retryable). The message names the method, the URL without its query, the status and the
    upstream's own error message when the body has one.

    ``explain`` reads an API's own error format from the decoded JSON body and returns the text to
    show (``lambda body: body["error"]["message"]``, adding a code or type...); when it finds nothing
    (or the body is not JSON), the generic ``message``/``error``/``detail`` lookup is used.
    """
    if response.is_success:
        return
    status = response.status_code
    request = _request_of(response)
    where = f"{request.method} {describe_url(request.url)}" if request is not None else "upstream"
    excerpt = _excerpt(response)
    reason = response.reason_phrase or ""
    message = f"{where} answered {status}{(' ' + reason) if reason else ''}"
    upstream = _explained(response, explain) if explain is not None else None
    upstream = upstream or _upstream_message(excerpt)
    if upstream:
        message += f": {upstream}"
    details: dict[str, Any] = {"status": status, "body": excerpt}
    if request is not None:
        details["method"] = request.method
        details["url"] = describe_url(request.url)
    throttled_403 = status == 403 and (
        response.headers.get("x-ratelimit-remaining") == "0" or "retry-after" in response.headers
    )
    if status == 429 or throttled_403:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if retry_after is None:
            retry_after = _quota_reset(response)
        if retry_after is not None:
            details["retry_after"] = retry_after
        raise RateLimited(message, status_code=status, details=details, retry_after=retry_after)
    if status in (401, 403):
        raise AuthFailed(message, status_code=status, details=details)
    if status == 404:
        raise NotFound(message, status_code=status, details=details)
    if status >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise UpstreamError(
            message, status_code=status, details=details, retry_kind="http_5xx", retry_after=retry_after
        )
    raise UpstreamError(message, status_code=status, details=details)
