"""API test fixtures: a running app on a fresh SQLite file, clients with and without an API key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.runtime.bootstrap import create_account

from .helpers import client_for


@pytest.fixture
def settings(make_settings):
    return make_settings()


@pytest.fixture
async def app_state(settings, app_runner) -> AsyncIterator[tuple[Any, Any]]:
    async with app_runner(settings) as (app, state):
        yield app, state


@pytest.fixture
async def api(app_state, api_key) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the `default` account."""
    async with client_for(app_state[0], api_key) as client:
        yield client


@pytest.fixture
async def anon(app_state) -> AsyncIterator[httpx.AsyncClient]:
    """A client without API key."""
    async with client_for(app_state[0]) as client:
        yield client


@pytest.fixture
async def other(app_state) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a second account, `other`."""
    app, state = app_state
    _, key = await create_account(state.db, state.secret_key, "other")
    async with client_for(app, key) as client:
        yield client
