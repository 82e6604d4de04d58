"""Mapping HTTP statuses and transport failures onto typed step errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from app.errors import StepError, StepTimeout
from app.sdk import (
    AuthFailed,
    ConnectionFailed,
    InvalidResponse,
    NotFound,
    RateLimited,
    UpstreamError,
    parse_retry_after,
    raise_for_response,
)
from app.sdk.http import map_transport_error


def response(
    status: int, *, headers: dict[str, str] | None = None, json: object = None, text: str = ""
) -> httpx.Response:
    request = httpx.Request("GET", "https://api.example.test/items?api_key=SECRET")
    if json is not None:
        return httpx.Response(status, headers=headers, json=json, request=request)
    return httpx.Response(status, headers=headers, text=text, request=request)


def test_success_passes() -> None:
    raise_for_response(response(200))
    raise_for_response(response(204))


@pytest.mark.parametrize(
    ("status", "error", "code", "retry_kind"),
    [
        (400, UpstreamError, "upstream_error", None),
        (401, AuthFailed, "auth_failed", None),
        (403, AuthFailed, "auth_failed", None),
        (404, NotFound, "not_found", None),
        (409, UpstreamError, "upstream_error", None),
        (422, UpstreamError, "upstream_error", None),
        (429, RateLimited, "rate_limited", "http_429"),
        (500, UpstreamError, "upstream_error", "http_5xx"),
        (502, UpstreamError, "upstream_error", "http_5xx"),
        (503, UpstreamError, "upstream_error", "http_5xx"),
        (304, UpstreamError, "upstream_error", None),
    ],
)
def test_status_mapping(status: int, error: type[StepError], code: str, retry_kind: str | None) -> None:
    with pytest.raises(error) as caught:
        raise_for_response(response(status, json={"message": "nope"}))
    exc = caught.value
    assert type(exc) is error
    assert exc.code == code
    assert exc.retry_kind == retry_kind
    assert exc.retryable is (retry_kind is not None)
    assert isinstance(exc, StepError)
    assert exc.status_code == status  # type: ignore[attr-defined]
    assert exc.message.startswith(f"GET https://api.example.test/items answered {status}")
    assert exc.message.endswith(": nope")
    assert "SECRET" not in exc.message
    assert "SECRET" not in str(exc.details)


def test_retry_after_seconds_and_date() -> None:
    with pytest.raises(RateLimited) as caught:
        raise_for_response(response(429, headers={"Retry-After": "120"}))
    assert caught.value.retry_after == 120.0
    assert caught.value.details["retry_after"] == 120.0

    when = datetime.now(UTC) + timedelta(seconds=90)
    with pytest.raises(RateLimited) as caught:
        raise_for_response(response(429, headers={"Retry-After": format_datetime(when, usegmt=True)}))
    assert caught.value.retry_after is not None
    assert 80 <= caught.value.retry_after <= 91

    with pytest.raises(RateLimited) as caught:
        raise_for_response(response(429))
    assert caught.value.retry_after is None


def test_retry_after_parsing_edge_cases() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("nan") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 - 30) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


def test_quota_exhausted_403_is_rate_limited() -> None:
    with pytest.raises(RateLimited) as caught:
        raise_for_response(
            response(
                403, headers={"X-RateLimit-Remaining": "0", "Retry-After": "7"}, json={"message": "quota"}
            )
        )
    assert caught.value.retry_kind == "http_429"
    assert caught.value.retry_after == 7.0


def test_5xx_keeps_retry_after() -> None:
    with pytest.raises(UpstreamError) as caught:
        raise_for_response(response(503, headers={"Retry-After": "3"}, text="<html>down</html>"))
    assert caught.value.retry_after == 3.0
    assert caught.value.details["body"] == "<html>down</html>"


def test_plain_text_error_body_is_summarised() -> None:
    with pytest.raises(UpstreamError, match="answered 400 Bad Request: bad input here"):
        raise_for_response(response(400, text="bad   input\nhere"))


def test_response_without_request() -> None:
    with pytest.raises(NotFound, match=r"^upstream answered 404"):
        raise_for_response(httpx.Response(404))


@pytest.mark.parametrize(
    ("exc", "expected", "retry_kind"),
    [
        (httpx.ConnectTimeout("t"), StepTimeout, "timeout"),
        (httpx.ReadTimeout("t"), StepTimeout, "timeout"),
        (httpx.ConnectError("refused"), ConnectionFailed, "connection"),
        (httpx.ReadError("reset"), ConnectionFailed, "connection"),
        (httpx.RemoteProtocolError("bad"), ConnectionFailed, "connection"),
        (httpx.DecodingError("gzip"), InvalidResponse, None),
    ],
)
def test_transport_error_mapping(exc: Exception, expected: type[StepError], retry_kind: str | None) -> None:
    mapped = map_transport_error(exc, method="GET", url="https://x.test/a?token=SECRET")
    assert isinstance(mapped, expected)
    assert mapped.retry_kind == retry_kind
    assert mapped.message.startswith("GET https://x.test/a: ")
    assert "SECRET" not in mapped.message


def test_non_httpx_exception_is_returned_unchanged() -> None:
    error = ValueError("x")
    assert map_transport_error(error) is error
