"""Pure ASGI middleware: the request body limit and the access log.

Both are plain ASGI so that they also see streamed bodies and never buffer a response.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_logger = logging.getLogger("mashpipe.access")


class BodySizeLimitMiddleware:
    """Refuses request bodies larger than ``max_bytes`` (or the limit of the first ``path_limits`` prefix
    the path starts with) with 413.

    A declared ``Content-Length`` over the limit is refused before the app runs; a body that grows over
    the limit while it streams in (chunked, or a lying length) makes the next ``receive()`` raise a 413
    ``HTTPException``, which the error handlers turn into the usual error shape.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, path_limits: Sequence[tuple[str, int]] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = tuple(path_limits)  # (path prefix, limit) replacing max_bytes there

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.max_bytes
        path = scope.get("path", "")
        for prefix, limit in self.path_limits:
            if path.startswith(prefix):
                max_bytes = limit
                break
        too_large = f"request body exceeds {max_bytes} bytes"
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_error(send, 400, "bad_request", "invalid Content-Length header")
                    return
                if declared > max_bytes:
                    await _send_error(send, 413, "payload_too_large", too_large)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise HTTPException(413, detail=too_large)
            return message

        await self.app(scope, limited_receive, send)


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    await send_error(send, status, {"error": {"code": code, "message": message, "details": None}})


async def send_error(
    send: Send, status: int, body: dict[str, Any], headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer with the API's error shape (``body``: ``{"error": {...}}``) from a pure ASGI middleware."""
    encoded = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(encoded)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": encoded})


class AccessLogMiddleware:
    """One log line per request: method, path (no query string), status, duration.

    Headers are never logged, so neither is ``Authorization``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            if access_logger.isEnabledFor(logging.INFO):
                client = scope.get("client")
                access_logger.info(
                    '%s - "%s %s" %d %.1fms',
                    f"{client[0]}:{client[1]}" if client else "-",
                    scope.get("method", "-"),
                    scope.get("path", "-"),
                    status,
                    (time.perf_counter() - started) * 1000,
                )
