"""Security test fixtures: a running app with clients of two accounts (A = `default`, B = `other`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.runtime.bootstrap import create_account
from tests.api.helpers import client_for


@pytest.fixture
def settings(make_settings):
    return make_settings()


@pytest.fixture
async def app_state(settings, app_runner) -> AsyncIterator[tuple[Any, Any]]:
    async with app_runner(settings) as (app, state):
        yield app, state


@pytest.fixture
async def api(app_state, api_key) -> AsyncIterator[httpx.AsyncClient]:
    """A client of account A (`default`)."""
    async with client_for(app_state[0], api_key) as client:
        yield client


@pytest.fixture
async def other_key(app_state) -> str:
    """An API key of account B (`other`)."""
    _, key = await create_account(app_state[1].db, app_state[1].secret_key, "other")
    return key


@pytest.fixture
async def other(app_state, other_key) -> AsyncIterator[httpx.AsyncClient]:
    """A client of account B (`other`)."""
    async with client_for(app_state[0], other_key) as client:
        yield client
