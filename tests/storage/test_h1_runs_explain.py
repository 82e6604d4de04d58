"""The queries behind ``GET /v1/runs`` and the runtime's counts use their indexes (SQLite's
``EXPLAIN QUERY PLAN`` of the exact statements the repositories send): no table scan, no sort."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from app.storage import AccountRepo, Database, PipelineRepo, RunRepo
from app.storage.repositories import RuntimeRepo


@pytest.fixture
async def sqlite_db(tmp_path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'explain.db'}")
    await database.upgrade()
    yield database
    await database.dispose()


class Captured:
    """The SQL statements (with parameters) a block sends."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.statements: list[tuple[str, Any]] = []

    def __enter__(self) -> Captured:
        event.listen(self.db.engine.sync_engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.db.engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        self.statements.append((statement, parameters))

    def on(self, table_hint: str) -> list[tuple[str, Any]]:
        return [(sql, params) for sql, params in self.statements if table_hint in sql]


async def plan(db: Database, statement: str, parameters: Any) -> str:
    async with db.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        cursor = await driver.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
        rows = await cursor.fetchall()
        return "\n".join(str(row[3]) for row in rows)


def uses_index(details: str, index: str) -> None:
    assert f"INDEX {index}" in details, details
    assert "SCAN runs\n" not in details + "\n", details  # a full scan would say `SCAN runs` alone
    assert "TEMP B-TREE" not in details, details  # the order comes from the index, no sort step


@pytest.fixture
async def seeded(sqlite_db: Database) -> tuple[str, str]:
    async with sqlite_db.session() as session:
        account = await AccountRepo(session).create("acme")
        pipeline, _ = await PipelineRepo(session).create(account.id, "p", "source", {"version": 1})
        runs = RunRepo(session)
        start = datetime(2026, 1, 1, tzinfo=UTC)
        for n in range(120):
            run = await runs.create(
                account_id=account.id, pipeline=pipeline, revision=1, inputs={}, trigger={"kind": "manual"}
            )
            run.created_at = start + timedelta(minutes=n)
            run.status = "succeeded" if n % 3 else "failed"
        await session.commit()
        return account.id, pipeline.id


async def listing_plans(db: Database, account_id: str, **filters: Any) -> list[str]:
    """Plans of the SELECTs of a first page and of the page after it (deep cursor)."""
    with Captured(db) as captured:
        async with db.session() as session:
            repo = RunRepo(session)
            cursor = (await repo.list(account_id, limit=10, **filters)).next_cursor
            assert cursor is not None
            await repo.list(account_id, limit=10, cursor=cursor, **filters)
    selects = [item for item in captured.on("FROM runs") if item[0].lstrip().startswith("SELECT runs.")]
    assert len(selects) == 2
    return [await plan(db, sql, params) for sql, params in selects]


async def test_first_page_and_deep_cursor_use_the_account_index(sqlite_db, seeded):
    account_id, _ = seeded
    for details in await listing_plans(sqlite_db, account_id):
        uses_index(details, "ix_runs_account_id_created_at_id")


async def test_a_pipeline_filter_uses_the_per_pipeline_index(sqlite_db, seeded):
    account_id, _ = seeded
    for details in await listing_plans(sqlite_db, account_id, pipeline_name="p"):
        uses_index(details, "ix_runs_account_id_pipeline_id_created_at_id_status")


async def test_a_status_filter_uses_the_status_index(sqlite_db, seeded):
    account_id, _ = seeded
    for details in await listing_plans(sqlite_db, account_id, status="failed"):
        uses_index(details, "ix_runs_account_id_status_created_at_id")


async def test_the_total_is_counted_on_an_index_alone(sqlite_db, seeded):
    account_id, _ = seeded
    with Captured(sqlite_db) as captured:
        async with sqlite_db.session() as session:
            await RunRepo(session).list(account_id, limit=10)
    (count,) = [item for item in captured.statements if "count(*)" in item[0]]
    details = await plan(sqlite_db, *count)
    assert "COVERING INDEX" in details, details


async def test_concurrency_counts_use_the_pipeline_status_index(sqlite_db, seeded):
    _, pipeline_id = seeded
    with Captured(sqlite_db) as captured:
        async with sqlite_db.session() as session:
            repo = RuntimeRepo(session)
            await repo.over_limit(pipeline_id, 5)
            await repo.running_count(pipeline_id)
    counts = [item for item in captured.statements if "count(*)" in item[0]]
    assert len(counts) == 2
    for statement in counts:
        details = await plan(sqlite_db, *statement)
        assert "COVERING INDEX ix_runs_pipeline_id_status" in details, details


async def test_the_claim_counts_running_runs_on_the_index(sqlite_db, seeded):
    account_id, pipeline_id = seeded
    async with sqlite_db.session() as session:
        run, *_ = (await RunRepo(session).list(account_id, limit=1)).runs
    with Captured(sqlite_db) as captured:
        async with sqlite_db.session() as session:
            await RuntimeRepo(session).claim(run.id, datetime.now(UTC), pipeline_id=pipeline_id, limit=2)
    (update,) = [item for item in captured.statements if item[0].lstrip().startswith("UPDATE runs")]
    details = await plan(sqlite_db, *update)
    assert "COVERING INDEX ix_runs_pipeline_id_status" in details, details
    assert "SEARCH runs USING INDEX sqlite_autoindex_runs_1 (id=?)" in details, details
