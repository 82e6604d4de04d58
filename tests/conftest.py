"""Fixtures shared by every test folder. Keep this file small; put area fixtures in the area's conftest.

* ``make_settings(**overrides)``: :class:`Settings` on a fresh SQLite file in ``tmp_path``, a fixed secret
  key, ``TEST_KEY`` as the bootstrap key, loopback allowed for outbound HTTP.
* ``app_runner``: ``async with app_runner(settings) as (app, state)`` runs the app's lifespan.
* ``api_key``: the bootstrap key of the ``default`` account in ``make_settings`` (``TEST_KEY``).
* ``local_server``: starts small aiohttp servers on 127.0.0.1 (``await local_server(routes)`` returns the
  base URL), stopped at the end of the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from app.settings import Settings

TEST_KEY = "mp_test_key_0123456789abcdef0123456789"
TEST_SECRET = "test-secret-key-0123456789abcdef"

Routes = dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Build test settings; keyword arguments override any field."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'data' / 'mashpipe.db'}",
            "secret_key": TEST_SECRET,
            "bootstrap_key": TEST_KEY,
            "egress_allow": "127.0.0.1/32",
            "examples_dir": None,
            "connectors": "",
        }
        values.update(overrides)
        return Settings(**values)

    return make


@asynccontextmanager
async def running_app(settings: Settings, **kwargs: Any) -> AsyncIterator[tuple[Any, Any]]:
    """``create_app(settings, **kwargs)`` with its lifespan running; yields ``(app, state)``."""
    from app.main import create_app

    app = create_app(settings, **kwargs)
    async with app.router.lifespan_context(app):
        yield app, app.state.mashpipe


@pytest.fixture
def app_runner() -> Callable[..., Any]:
    """``async with app_runner(settings, **create_app_kwargs) as (app, state): ...``"""
    return running_app


@pytest.fixture
def api_key() -> str:
    """The API key of the ``default`` account of apps built with ``make_settings``."""
    return TEST_KEY


@pytest.fixture
async def local_server() -> AsyncIterator[Callable[[Routes], Awaitable[str]]]:
    """Start aiohttp servers on 127.0.0.1: ``base_url = await local_server({"GET /path": handler})``."""
    runners: list[web.AppRunner] = []

    async def start(routes: Routes) -> str:
        app = web.Application()
        for route, handler in routes.items():
            method, _, path = route.partition(" ")
            app.router.add_route(method, path, handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()
