"""RunRepo.list with ``count_max``: the total is exact up to the cap, capped and flagged beyond it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event

from app.errors import BadRequest
from app.storage import AccountRepo, Database, RunRepo
from app.storage.repositories.runs import RunPage

from .conftest import Clock, make_pipeline

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


async def _runs(session, account, pipelines, statuses, count):
    """``count`` runs over ``pipelines`` and ``statuses`` (round robin), one second apart."""
    clock = Clock(T0)
    made = []
    repo = RunRepo(session)
    for index in range(count):
        run = await repo.create(
            account_id=account.id,
            pipeline=pipelines[index % len(pipelines)],
            revision=1,
            inputs={"i": index},
            trigger={"kind": "manual"},
            status=statuses[index % len(statuses)],
        )
        run.created_at = clock()
        made.append(run)
    await session.commit()
    return made


def _newest_first(runs):
    return [run.id for run in sorted(runs, key=lambda run: (run.created_at, run.id), reverse=True)]


async def _pages(repo: RunRepo, account_id: str, limit: int, **filters: Any) -> list[RunPage]:
    pages = [await repo.list(account_id, limit=limit, **filters)]
    while pages[-1].next_cursor is not None:
        pages.append(await repo.list(account_id, limit=limit, cursor=pages[-1].next_cursor, **filters))
    return pages


async def test_total_is_exact_up_to_the_cap(session, account):
    pipeline = await make_pipeline(session, account)
    runs = await _runs(session, account, [pipeline], ["queued"], 12)
    repo = RunRepo(session)
    for cap in (12, 13, 100):
        pages = await _pages(repo, account.id, 5, count_max=cap)
        assert [run.id for page in pages for run in page.runs] == _newest_first(runs)
        assert {(page.total, page.total_exact) for page in pages} == {(12, True)}


async def test_total_beyond_the_cap_is_the_cap_flagged_not_exact(session, account):
    pipeline = await make_pipeline(session, account)
    runs = await _runs(session, account, [pipeline], ["queued"], 12)
    repo = RunRepo(session)
    pages = await _pages(repo, account.id, 5, count_max=5)
    # The pages themselves are untouched by the cap: every run, newest first, three pages.
    assert [run.id for page in pages for run in page.runs] == _newest_first(runs)
    assert len(pages) == 3
    assert {(page.total, page.total_exact) for page in pages} == {(5, False)}
    capped = await repo.list(account.id, limit=5, count_max=11)
    assert (capped.total, capped.total_exact) == (11, False)


async def test_no_cap_counts_exactly(session, account):
    pipeline = await make_pipeline(session, account)
    await _runs(session, account, [pipeline], ["queued"], 12)
    pages = await _pages(RunRepo(session), account.id, 5)
    assert {(page.total, page.total_exact) for page in pages} == {(12, True)}


async def test_a_first_page_holding_everything_is_exact_whatever_the_cap(session, account):
    pipeline = await make_pipeline(session, account)
    await _runs(session, account, [pipeline], ["queued"], 12)
    page = await RunRepo(session).list(account.id, limit=50, count_max=5)
    assert (len(page.runs), page.total, page.total_exact, page.next_cursor) == (12, 12, True, None)


async def test_the_cap_applies_to_the_filtered_runs(session, account, other_account):
    first = await make_pipeline(session, account, "first")
    second = await make_pipeline(session, account, "second")
    runs = await _runs(session, account, [first, second], ["succeeded", "failed", "queued"], 30)
    foreign = await make_pipeline(session, other_account, "first")
    await _runs(session, other_account, [foreign], ["failed"], 20)
    repo = RunRepo(session)

    # 15 runs of `first`: capped at 10, exact with a cap of 15.
    pages = await _pages(repo, account.id, 4, pipeline_name="first", count_max=10)
    assert [run.id for page in pages for run in page.runs] == _newest_first(
        [run for run in runs if run.pipeline_id == first.id]
    )
    assert {(page.total, page.total_exact) for page in pages} == {(10, False)}
    pages = await _pages(repo, account.id, 4, pipeline_name="first", count_max=15)
    assert {(page.total, page.total_exact) for page in pages} == {(15, True)}

    # 10 failed runs of the account (the other account's 20 are not counted).
    pages = await _pages(repo, account.id, 3, status="failed", count_max=9)
    assert {(page.total, page.total_exact) for page in pages} == {(9, False)}
    pages = await _pages(repo, account.id, 3, status="failed", count_max=10)
    assert {(page.total, page.total_exact) for page in pages} == {(10, True)}

    # Both filters: 5 failed runs of `second`.
    expected = [run for run in runs if run.pipeline_id == second.id and run.status == "failed"]
    pages = await _pages(repo, account.id, 2, pipeline_name="second", status="failed", count_max=4)
    assert [run.id for page in pages for run in page.runs] == _newest_first(expected)
    assert {(page.total, page.total_exact) for page in pages} == {(4, False)}

    assert await repo.list(account.id, pipeline_name="nope", count_max=3) == RunPage([], 0, None, True)


async def test_a_deep_cursor_counts_the_filters_not_the_rest_of_the_list(session, account):
    pipeline = await make_pipeline(session, account)
    await _runs(session, account, [pipeline], ["queued"], 12)
    repo = RunRepo(session)
    pages = await _pages(repo, account.id, 5, count_max=20)
    last = pages[-1]
    assert (len(last.runs), last.total, last.total_exact) == (2, 12, True)
    pages = await _pages(repo, account.id, 5, count_max=3)
    assert (len(pages[-1].runs), pages[-1].total, pages[-1].total_exact) == (2, 3, False)


async def test_the_count_stops_at_the_cap_plus_one(db, session, account):
    """The capped count is one statement: count(*) over a LIMITed sub-select of cap + 1 rows."""
    pipeline = await make_pipeline(session, account)
    await _runs(session, account, [pipeline], ["queued"], 12)
    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        statements.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        await RunRepo(session).list(account.id, limit=5, count_max=7)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
    (count,) = [(sql, params) for sql, params in statements if "count(*)" in sql]
    sql, params = count
    assert "LIMIT" in sql.upper()
    assert 8 in (params.values() if isinstance(params, dict) else params)


@pytest.mark.parametrize("cap", [0, -1])
async def test_a_cap_below_one_is_refused(session, account, cap):
    with pytest.raises(BadRequest, match="count_max"):
        await RunRepo(session).list(account.id, count_max=cap)


@pytest.mark.parametrize(
    ("filters", "search"),
    [
        ({}, "(account_id=?"),
        ({"status": "failed"}, "(account_id=? AND status=?)"),
        ({"pipeline_name": "digest"}, "(account_id=? AND pipeline_id=?)"),
    ],
)
async def test_the_capped_count_is_a_covering_index_range_on_sqlite(tmp_path, filters, search):
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'plan.db'}")
    await database.upgrade()
    try:
        async with database.session() as session:
            account = await AccountRepo(session).create("acme")
            await session.commit()
            pipeline = await make_pipeline(session, account)
            await _runs(session, account, [pipeline], ["failed", "succeeded"], 12)
        statements: list[tuple[str, Any]] = []

        def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
            statements.append((statement, parameters))

        event.listen(database.engine.sync_engine, "before_cursor_execute", seen)
        try:
            async with database.session() as session:
                await RunRepo(session).list(account.id, limit=2, count_max=5, **filters)
        finally:
            event.remove(database.engine.sync_engine, "before_cursor_execute", seen)
        ((sql, params),) = [item for item in statements if "count(*)" in item[0]]
        async with database.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            cursor = await driver.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            details = "\n".join(str(row[3]) for row in await cursor.fetchall())
        assert "SEARCH runs USING COVERING INDEX ix_runs_account_id" in details, details
        assert search in details, details
        assert "SCAN runs" not in details, details
    finally:
        await database.dispose()
