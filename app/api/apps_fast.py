"""The fast path of published endpoints: cache hits answered before routing.

A published mashup with ``cache: DURATION`` is mostly served from its cache, and then the work is a
dictionary lookup: FastAPI's routing and request parsing would cost more than the answer itself.
:class:`CachedAppsMiddleware` (pure ASGI, inside the access log, the public rate limit and the body
limit) answers ``GET /v1/apps/{account}/{name}`` itself when the endpoint is public, caches, serves JSON
or CSV, the query string is valid and a fresh answer is cached: the same bytes and headers (``ETag``,
``Cache-Control``, ``X-Cache: hit``, ``304`` on ``If-None-Match``) as the route. Anything else (a miss,
a private or uncached endpoint, RSS, an unknown pipeline, bad inputs) goes on to the route, which
answers it (and reports errors) as documented.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.apps import answer_headers
from app.errors import MashpipeError
from app.runtime.endpoints import etag_matches
from app.runtime.state import State

PREFIX = "/v1/apps/"
MAX_NAME = 100


class CachedAppsMiddleware:
    """Answers the cache hits of public published endpoints without routing (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"].startswith(PREFIX):
            if await self._answer_hit(scope, send):
                return
        await self.app(scope, receive, send)

    async def _answer_hit(self, scope: Scope, send: Send) -> bool:
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
            if not endpoint.public or endpoint.cache is None or endpoint.format == "rss":
                return False
            query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
            served = endpoints.cached(published, endpoints.inputs(published, query))
        except MashpipeError:
            return False  # the route answers it, with the documented error
        if served is None:
            return False
        headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in answer_headers(published, served).items()
        ]
        rendered = served.rendered
        if etag_matches(_header(scope, b"if-none-match"), rendered.etag):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return True
        headers.append((b"content-type", rendered.media_type.encode("latin-1")))
        headers.append((b"content-length", str(len(rendered.body)).encode("latin-1")))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": rendered.body})
        return True


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None
