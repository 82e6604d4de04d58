"""The application factory: ``create_app(settings) -> FastAPI``.

Building the app does no I/O (``mashpipe openapi`` builds one just to read its OpenAPI document). The
lifespan builds the typed :class:`~app.runtime.state.State` (migrates the database, bootstraps the
``default`` account, loads the examples, starts the run queue) and keeps it as ``app.state.mashpipe``
for the request dependencies (``app.api.deps``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from app.api import api_router
from app.api.apps_fast import PublishedAppsMiddleware
from app.api.errors import install_error_handlers
from app.api.middleware import AccessLogMiddleware, BodySizeLimitMiddleware
from app.api.public_limits import PublicRateLimitMiddleware
from app.runtime.state import State, open_state
from app.settings import Settings

API_VERSION = "1.0.0"
DESCRIPTION = """\
Mashpipe runs pipelines written in YAML that compose public APIs with built-in mashup operators.

Authenticate with an API key: `Authorization: Bearer mp_...`. Every error answer has one shape:
`{"error": {"code": "...", "message": "...", "details": ...}}`.
"""
TAGS = [
    {"name": "pipelines", "description": "Save, read, update, validate and delete pipelines"},
    {"name": "runs", "description": "Start runs and follow them step by step"},
    {"name": "connectors", "description": "Installed connectors and their operations' JSON Schemas"},
    {"name": "hooks", "description": "Webhook calls that start runs (the hook id is the credential)"},
    {"name": "apps", "description": "Published pipelines: their outputs as JSON, RSS or CSV"},
    {"name": "keys", "description": "The account's API keys: create (shown once), list, revoke"},
    {"name": "secrets", "description": "Write-only secrets that pipelines read as `${{ secrets.NAME }}`"},
    {"name": "connections", "description": "Stored connector credentials (API keys, tokens, OAuth2)"},
    {"name": "meta", "description": "Health and the pipeline JSON Schema (no API key needed)"},
]


def create_app(
    settings: Settings | None = None,
    *,
    http_transport: httpx.AsyncBaseTransport | None = None,
    on_ready: Callable[[State], None] | None = None,
) -> FastAPI:
    """A new Mashpipe application.

    ``http_transport`` replaces the outbound HTTP transport (tests); ``on_ready`` is called once the
    state is built (the CLI prints its banner there).
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_state(settings, http_transport=http_transport) as state:
            app.state.mashpipe = state
            try:
                if on_ready is not None:
                    on_ready(state)
                yield
            finally:
                del app.state.mashpipe

    app = FastAPI(
        title="Mashpipe",
        version=API_VERSION,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        # Without an OpenTelemetry SDK to report to, FastAPI would still look one up on every request.
        telemetry=None
        if settings.telemetry
        else {"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    install_error_handlers(app)
    app.add_middleware(PublishedAppsMiddleware)  # innermost: public JSON/CSV published endpoints skip routing
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        path_limits=[("/v1/hooks/", settings.webhook_max_body_bytes)],
    )
    app.add_middleware(PublicRateLimitMiddleware)  # per client IP and route on /v1/hooks, /v1/apps
    app.add_middleware(AccessLogMiddleware)
    app.include_router(api_router)
    return app
