"""Raw HTTP requests as operations: the ``request`` operation every connector gets, and its models.

``HttpResponse`` is the output of ``CONNECTOR.request`` and ``http.request``: the status, the
headers (lower-case names; repeated headers joined with ``", "``), the final URL and the body, decoded
as JSON when the response says it is JSON, as text otherwise.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.errors import StepError
from app.sdk.context import Context, decode_json
from app.sdk.errors import raise_for_response
from app.sdk.redaction import mask

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
Scalar = str | int | float | bool
QueryValue = Scalar | list[Scalar]
FORBIDDEN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "upgrade", "te"})


class HttpResponse(BaseModel):
    """An HTTP response as step output."""

    status: int = Field(description="HTTP status code")
    headers: dict[str, str] = Field(description="Response headers, lower-case names")
    url: str = Field(description="The final URL, after redirects")
    body: Any = Field(description="Decoded JSON when the response is JSON, else the text (null when empty)")


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json") or media == "text/json"


def response_output(response: httpx.Response) -> HttpResponse:
    """The :class:`HttpResponse` of a read ``httpx.Response``."""
    headers: dict[str, str] = {}
    for name, value in response.headers.multi_items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    body: Any
    if not response.content:
        body = None
    elif _is_json(response.headers.get("content-type", "")):
        body = decode_json(response)
    else:
        body = response.text
    return HttpResponse(status=response.status_code, headers=headers, url=str(response.url), body=body)


class RequestOptions(BaseModel):
    """What a raw request sends besides its URL (shared by ``CONNECTOR.request`` and ``http.request``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    method: Method = Field(default="GET", description="HTTP method")
    query: dict[str, QueryValue] = Field(default_factory=dict, description="Query parameters")
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers")
    json_body: Any = Field(default=None, alias="json", description="A JSON body (sets Content-Type)")
    body: str | None = Field(default=None, description="A text body, sent as is")

    @field_validator("headers")
    @classmethod
    def _no_framing_headers(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(name for name in value if name.strip().lower() in FORBIDDEN_HEADERS)
        if bad:
            raise ValueError(f"these headers are set by the client and cannot be given: {', '.join(bad)}")
        return value

    @model_validator(mode="after")
    def _one_body(self) -> RequestOptions:
        if self.json_body is not None and self.body is not None:
            raise ValueError("give either json or body, not both")
        return self

    async def send(self, ctx: Context, url: httpx.URL | str) -> httpx.Response:
        """Send this request to ``url`` through ``ctx.http``."""
        return await ctx.http.request(
            self.method,
            url,
            params=self.query or None,
            headers=self.headers or None,
            json=self.json_body,
            content=self.body.encode() if self.body is not None else None,
        )


class RawRequest(RequestOptions):
    """A request to the connector's API, with the connection's auth."""

    path: str = Field(
        description="A path under the connector's base URL (/user), or an absolute URL on the same host"
    )
    raise_for_status: bool = Field(
        default=True, description="Fail the step on a non-2xx status (retryable for 429 and 5xx)"
    )


async def raw_request(ctx: Context, params: RawRequest) -> HttpResponse:
    """Send a request to the connector's API with the connection's auth; returns status, headers and body."""
    url = ctx.http.resolve_url(params.path)
    if ctx.http.base_url is not None and not ctx.http.same_origin(url):
        raise StepError(
            f"{ctx.connector}.request: {url.scheme}://{url.host} is outside the connector's base URL "
            f"{ctx.http.base_url}; use http.request for other hosts",
            code="invalid_params",
        )
    response = await params.send(ctx, url)
    if params.raise_for_status:
        raise_for_response(response)
    output = response_output(response)
    output.url = mask(output.url, ctx.http.secrets)  # a token in the path must not land in the run
    return output
