"""Fixtures of the connection tests: the local OAuth2 provider (HTTPS on 127.0.0.1) and an app that
has the ``demo`` connector pointing at it, with its outbound client trusting the provider's test CA.

* ``provider``: a running :class:`Provider` (``provider.base_url``, ``provider.client_tls``).
* ``demo_app``: ``(app, state)`` of a running Mashpipe app; ``make_demo_app(**settings)`` builds more.
* ``client``: an API client of the ``default`` account of ``demo_app``.
* ``browser``: an HTTP client trusting the test CA, for the user's side of the flow (``/authorize``).
* ``clock``: a settable clock installed in the app's connection store and service.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.registry import Registry
from app.security.egress import EgressPolicy, PinnedHTTPTransport
from tests.api.helpers import client_for
from tests.security.connections.oauth_provider import Provider, demo_connector, make_tls, start_provider


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    return make_tls(tmp_path)


@pytest.fixture
async def provider(tls) -> AsyncIterator[Provider]:
    provider = Provider()
    runner = await start_provider(provider, tls[0])
    yield provider
    await runner.cleanup()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_demo_app(make_settings, app_runner, provider, tls, clock, monkeypatch) -> Callable[..., Any]:
    """``async with make_demo_app(**settings_overrides) as (app, state)``."""
    registry = Registry.from_connectors([demo_connector(provider.base_url)])
    monkeypatch.setattr(Registry, "load", classmethod(lambda cls, settings, **kwargs: registry))

    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[tuple[Any, Any]]:
        settings = make_settings(**overrides)
        # the platform's own pinned transport, trusting the provider's test CA (the egress guard wraps it)
        transport = PinnedHTTPTransport(EgressPolicy(["127.0.0.1/32"]), verify=tls[1])
        async with app_runner(settings, http_transport=transport) as (app, state):
            state.connections.clock = clock
            state.connections.store.clock = clock
            state.connections.store.environ = {}
            yield app, state

    return make


@pytest.fixture
async def demo_app(make_demo_app) -> AsyncIterator[tuple[Any, Any]]:
    async with make_demo_app() as (app, state):
        yield app, state


@pytest.fixture
async def client(demo_app, api_key) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(demo_app[0], api_key) as api:
        yield api


@pytest.fixture
async def browser(tls) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=tls[1], follow_redirects=False) as user_agent:
        yield user_agent
