"""``http``: call any public HTTP API by URL, without a dedicated connector.

* ``http.request``: any method; returns ``{status, headers, url, body}``. A non-2xx status is a result,
  not an error (set ``raise_for_status: true`` to fail the step instead).
* ``http.get_json``: GET a JSON document and return it decoded; a non-2xx status fails the step with
  a typed error (retryable for 429 and 5xx).

URLs are absolute; the platform's egress guard refuses private and loopback destinations unless
``MASHPIPE_EGRESS_ALLOW`` allows them.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.sdk import Connector, Context, HttpResponse, RequestOptions, raise_for_response, response_output
from app.sdk.http import parse_url
from app.sdk.redaction import secrets_active

connector = Connector(
    key="http",
    version="1.0.0",
    title="HTTP",
    description="Call any HTTP API by URL: raw requests, or GET a JSON document.",
)


def _absolute_http_url(value: str) -> str:
    if value in _ABSOLUTE:
        return value
    try:
        url = parse_url(value)  # remembered: the request sending it does not parse it again
    except httpx.InvalidURL as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("an absolute http:// or https:// URL is required")
    if secrets_active():  # the URL may hold a secret of the run: not remembered
        return value
    if len(_ABSOLUTE) >= 1024:
        _ABSOLUTE.clear()
    _ABSOLUTE.add(value)
    return value


_ABSOLUTE: set[str] = set()  # URLs found absolute http(s) ones (the verdict depends only on the text)


class RequestParams(RequestOptions):
    """A request to any URL."""

    url: str = Field(description="Absolute http(s) URL")
    raise_for_status: bool = Field(
        default=False, description="Fail the step on a non-2xx status instead of returning it"
    )

    _check_url = field_validator("url")(_absolute_http_url)


class GetJsonParams(BaseModel):
    """A GET of a JSON document."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Absolute http(s) URL")
    query: dict[str, str | int | float | bool | list[str | int | float | bool]] = Field(
        default_factory=dict, description="Query parameters (merged with those already in the URL)"
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers")

    _check_url = field_validator("url")(_absolute_http_url)


@connector.action(title="HTTP request")
async def request(ctx: Context, params: RequestParams) -> HttpResponse:
    """Send an HTTP request to any URL and return its status, headers, final URL and body.

    The body is decoded JSON when the response is JSON, text otherwise. A non-2xx status is returned
    as is unless ``raise_for_status`` is true.
    """
    response = await params.send(ctx, params.url)
    if params.raise_for_status:
        raise_for_response(response)
    return response_output(response)


@connector.action(title="Get JSON")
async def get_json(ctx: Context, params: GetJsonParams) -> Any:
    """GET a URL and return its decoded JSON body. A non-2xx status fails the step (retryable: 429, 5xx)."""
    headers = {"Accept": "application/json", **params.headers}
    return await ctx.request_json("GET", params.url, params=params.query or None, headers=headers)
