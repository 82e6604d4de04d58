"""Fixtures of the storage tests: a migrated database per test.

By default each test gets a fresh SQLite file in ``tmp_path``. Set
``MASHPIPE_TEST_POSTGRES_URL`` (e.g. ``postgresql+asyncpg://user:pw@127.0.0.1/mashpipe_test``)
to run the same tests on PostgreSQL: the schema ``public`` of that database is emptied
before each test.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.storage import Account, AccountRepo, Database, Pipeline, PipelineRepo

POSTGRES_URL = os.environ.get("MASHPIPE_TEST_POSTGRES_URL")

T = TypeVar("T")


def must(value: T | None) -> T:
    """``value``, asserting it is not None (narrows Optional results in tests)."""
    assert value is not None
    return value


async def _empty_postgres(url: str) -> None:
    database = Database(url)
    try:
        async with database.engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    finally:
        await database.dispose()


@pytest.fixture
async def database_url(tmp_path) -> str:
    """URL of an empty database (not migrated)."""
    if POSTGRES_URL:
        await _empty_postgres(POSTGRES_URL)
        return POSTGRES_URL
    return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'mashpipe.db'}"


@pytest.fixture
async def db(database_url) -> AsyncIterator[Database]:
    """A migrated database."""
    database = Database(database_url)
    await database.upgrade()
    yield database
    await database.dispose()


@pytest.fixture
async def session(db) -> AsyncIterator[AsyncSession]:
    async with db.session() as session:
        yield session


@pytest.fixture
async def account(session) -> Account:
    account = await AccountRepo(session).create("acme")
    await session.commit()
    return account


@pytest.fixture
async def other_account(session) -> Account:
    account = await AccountRepo(session).create("globex")
    await session.commit()
    return account


SOURCE = "version: 1\nname: {name}\nsteps:\n  - id: a\n    uses: core.log\n    with: {{message: hi}}\n"


def spec_for(name: str) -> dict[str, Any]:
    return {"version": 1, "name": name, "steps": [{"id": "a", "uses": "core.log", "with": {"message": "hi"}}]}


async def make_pipeline(session: AsyncSession, account: Account, name: str = "digest") -> Pipeline:
    pipeline, _ = await PipelineRepo(session).create(
        account.id, name, SOURCE.format(name=name), spec_for(name)
    )
    await session.commit()
    return pipeline


class Clock:
    """Hands out strictly increasing aware timestamps."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2025, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now
