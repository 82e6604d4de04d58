"""The rate limit of public endpoints (no API key): per client IP and route.

Public endpoints take no API key, so the per-key limit (``api_rate_limit``, in ``app.api.deps``)
cannot hold them: :class:`PublicRateLimitMiddleware` counts each request to a path under
:data:`PUBLIC_PREFIXES` against ``public_rate_limit``, keyed by the client's IP and the path (a hook
id or an app's ``{account}/{name}``): one caller flooding one hook neither blocks other callers nor
other hooks. Over the limit, the answer is 429 with ``Retry-After``, before the endpoint runs.

The client IP is the connection's peer; behind a reverse proxy, set ``MASHPIPE_FORWARDED_ALLOW_IPS`` to
the proxy's address (``mashpipe serve`` then reads ``X-Forwarded-For`` from it) so that it is the real client.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.middleware import send_error
from app.errors import RateLimited

PUBLIC_PREFIXES = ("/v1/hooks/", "/v1/apps/", "/v1/oauth/")
MAX_ROUTE_KEY = 256


class PublicRateLimitMiddleware:
    """Applies the state's ``rate_limits.hit_public`` to requests under ``prefixes``."""

    def __init__(self, app: ASGIApp, prefixes: tuple[str, ...] = PUBLIC_PREFIXES) -> None:
        self.app = app
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith(self.prefixes):
            state = getattr(getattr(scope.get("app"), "state", None), "mashpipe", None)
            limits = getattr(state, "rate_limits", None)
            if limits is not None and limits.public:
                client = scope.get("client")
                address = str(client[0]) if client else "-"
                try:
                    await limits.hit_public(address, str(scope["path"])[:MAX_ROUTE_KEY])
                except RateLimited as exc:
                    await _send_429(send, exc)
                    return
        await self.app(scope, receive, send)


async def _send_429(send: Send, exc: RateLimited) -> None:
    headers = []
    if exc.retry_after is not None:
        headers.append((b"retry-after", str(max(1, round(exc.retry_after))).encode()))
    await send_error(send, 429, exc.to_dict(), headers)
