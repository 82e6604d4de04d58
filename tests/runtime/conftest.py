"""Runtime fixtures: a migrated SQLite database with one account, and a helper to save pipelines."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.runtime.pipelines import check_source, create_pipeline
from app.storage.db import Database
from app.storage.repositories import AccountRepo


@pytest.fixture
async def db(tmp_path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'runtime.db'}")
    await database.upgrade()
    yield database
    await database.dispose()


@pytest.fixture
async def account_id(db: Database) -> str:
    async with db.session() as session:
        account = await AccountRepo(session).create("acme")
        await session.commit()
        return account.id


@pytest.fixture
def save_pipeline(db: Database, account_id: str):
    async def save(source: str) -> None:
        spec = check_source(source, None, max_bytes=262_144)
        async with db.session() as session:
            await create_pipeline(session, account_id, source, spec)
            await session.commit()

    return save
