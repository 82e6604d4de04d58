"""The fast path of published endpoints: public JSON and CSV endpoints answered before routing.

A published mashup is called far more often than anything else in the API, and for a small pipeline
FastAPI's routing, request object and response classes cost as much as the run itself.
:class:`PublishedAppsMiddleware` (pure ASGI, inside the access log, the public rate limit and the body
limit) answers ``GET /v1/apps/{account}/{name}`` itself when the endpoint is **public** and serves
**JSON or CSV**: a cache hit (a dictionary lookup) as well as a miss (the run, exactly as the route runs
it: :meth:`EndpointService.serve`), with the same bytes and headers as the route (``ETag``,
``Cache-Control``, ``X-Cache``, ``X-Mashpipe-Run``, ``304`` on ``If-None-Match``) and the API's one error
shape when the run fails (502) or times out (504).

Everything else goes on to the route (``app.api.apps``), which answers it as documented: a private
endpoint (it needs an API key), RSS (its channel names its own URL), an unknown pipeline, a query string
that does not fit the inputs (422 with every problem). Nothing has started when the middleware hands a
request on, so nothing runs twice.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.apps import answer_headers
from app.api.errors import answer_status
from app.api.middleware import send_error
from app.errors import MashpipeError
from app.runtime.endpoints import Published, Served, etag_matches
from app.runtime.state import State

PREFIX = "/v1/apps/"
MAX_NAME = 100
FAST_FORMATS = frozenset({"json", "csv"})


class PublishedAppsMiddleware:
    """Answers public JSON/CSV published endpoints without routing (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"].startswith(PREFIX):
            if await self._answer(scope, send):
                return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, send: Send) -> bool:
        """Answer the request and return True, or return False (nothing started) for the route."""
        parts = scope["path"][len(PREFIX) :].split("/")
        if len(parts) != 2 or not all(0 < len(part) <= MAX_NAME for part in parts):
            return False
        state = getattr(getattr(scope.get("app"), "state", None), "mashpipe", None)
        if not isinstance(state, State):
            return False
        endpoints = state.endpoints
        try:
            published = await endpoints.find(parts[0], parts[1])
            endpoint = published.endpoint
            if not endpoint.public or endpoint.format not in FAST_FORMATS:
                return False
            query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
            inputs = endpoints.inputs(published, query)
        except MashpipeError:
            return False  # the route answers it, with the documented error
        served = endpoints.cached(published, inputs)
        if served is None:
            try:
                served = await endpoints.serve(published, inputs, query=dict(query), link="")
            except MashpipeError as exc:  # the run failed or timed out: the API's error answer
                await _send_error(scope, send, exc)
                return True
        await _send_served(scope, send, published, served)
        return True


async def _send_served(scope: Scope, send: Send, published: Published, served: Served) -> None:
    headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in answer_headers(published, served).items()
    ]
    rendered = served.rendered
    if etag_matches(_header(scope, b"if-none-match"), rendered.etag):
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    headers.append((b"content-type", rendered.media_type.encode("latin-1")))
    headers.append((b"content-length", str(len(rendered.body)).encode("latin-1")))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": rendered.body})


async def _send_error(scope: Scope, send: Send, exc: MashpipeError) -> None:
    """The error answer of ``app.api.errors`` for a Mashpipe error (logged when it is a 5xx)."""
    await send_error(send, answer_status(exc, scope["method"], scope["path"]), exc.to_dict())


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None
