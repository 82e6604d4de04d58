"""Benchmark: ``GET /v1/runs`` queries with 1,000,000 runs in SQLite, repository vs raw SQL.

A temporary SQLite file is migrated (``Database.upgrade``, so the real indexes), then filled with
1,000,000 runs (``--quick``: 20,000) of one account spread over 20 pipelines (10% failed, 1%
cancelled, one per second), plus 1,000 runs of a second account, with ``executemany`` in one
transaction. Then each listing query is timed through :meth:`app.storage.repositories.RunRepo.list`
(SQLAlchemy, async, what the API calls) and as the same SQL sent raw through the same driver
(aiosqlite): the first page (50 runs, newest first, with the ``total`` count), a page filtered by
pipeline, a page filtered by status, and a page after a deep cursor (90% down the list). Both sides
must return the same run ids and total (checked first; a mismatch is a crash).

The page itself is an index range (``tests/storage/test_h1_runs_explain.py`` checks the plans): its
cost does not grow with the table. ``total`` is what the API computes: a count capped at the
default ``runs_total_max`` (``SELECT count(*) FROM (SELECT 1 ... LIMIT cap + 1)``, an index range that
stops early), so it does not grow with the table either. The exact count (``count_max=None``, a
count over the whole index range of the filters, which does grow) and the page alone are timed too.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app.settings import Settings
from bench.harness import BenchConfig, BenchResult, Line, Target, measure, median, require

KEY = "runs_listing"
TITLE = "Run listing with 1,000,000 runs in SQLite: RunRepo.list vs raw SQL"
PAGE = 50
PIPELINES = 20
OTHER_ACCOUNT_RUNS = 1_000
TARGET_RATIO = 2.0  # repository / raw SQL, per query
CAP = Settings.model_fields["runs_total_max"].default  # what the API passes as count_max
START = datetime(2025, 1, 1, tzinfo=UTC)

_COLUMNS = (
    "id, account_id, pipeline_id, pipeline_name, revision, status, trigger_kind, trigger, inputs, "
    "outputs, error, created_at, started_at, finished_at, attempt"
)
_SELECT = f"SELECT {_COLUMNS} FROM runs"


def _stamp(moment: datetime) -> str:
    """How SQLAlchemy writes a UTC timestamp into SQLite (see app.storage.types.UTCDateTime)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _status(n: int) -> str:
    if n % 100 == 7:
        return "cancelled"
    if n % 10 == 3:
        return "failed"
    return "succeeded"


def bulk_insert(
    path: Path, account: str, pipelines: list[tuple[str, str]], other: tuple[str, str, str], size: int
) -> float:
    """Insert ``size`` runs of ``account`` and a few of the ``other`` account; returns seconds taken."""
    connection = sqlite3.connect(path)
    started = time.perf_counter()
    try:
        # A bulk load: no journal, no fsync, a big page cache; the file goes back to WAL afterwards.
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-262144")
        sql = (
            "INSERT INTO runs (id, account_id, pipeline_id, pipeline_name, revision, status, trigger_kind, "
            "trigger, inputs, outputs, error, created_at, started_at, finished_at, attempt) "
            "VALUES (?, ?, ?, ?, 1, ?, 'manual', '{\"kind\":\"manual\"}', '{}', NULL, NULL, ?, ?, ?, 1)"
        )

        def rows(count: int, owner: str, owned: list[tuple[str, str]]) -> Iterator[tuple[str, ...]]:
            base = START.replace(tzinfo=None)  # UTC wall clock, as stored
            second, to_start, to_finish = (
                timedelta(seconds=1),
                timedelta(milliseconds=5),
                timedelta(milliseconds=120),
            )
            created = base
            for n in range(count):
                pipeline_id, name = owned[n % len(owned)]
                yield (
                    os.urandom(16).hex(),  # random 32-hex ids, like app.storage.base.new_id
                    owner,
                    pipeline_id,
                    name,
                    _status(n),
                    created.isoformat(sep=" ", timespec="microseconds"),
                    (created + to_start).isoformat(sep=" ", timespec="microseconds"),
                    (created + to_finish).isoformat(sep=" ", timespec="microseconds"),
                )
                created += second

        # The migrated indexes are dropped for the load and built again after it (CREATE INDEX sorts
        # once instead of inserting 1,000,000 times into each B-tree); the same definitions.
        indexes = connection.execute(
            "SELECT name, sql FROM sqlite_master "
            "WHERE type = 'index' AND tbl_name = 'runs' AND sql IS NOT NULL"
        ).fetchall()
        with connection:  # one transaction
            for name, _ in indexes:
                connection.execute(f'DROP INDEX "{name}"')
            connection.executemany(sql, rows(size, account, pipelines))
            connection.executemany(sql, rows(OTHER_ACCOUNT_RUNS, other[0], [(other[1], other[2])]))
            for _, definition in indexes:
                connection.execute(definition)
        connection.execute("ANALYZE")
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()
    return time.perf_counter() - started


async def run(config: BenchConfig) -> BenchResult:
    db_mod = require("app.storage.db", "Database")
    repos = require("app.storage.repositories", "AccountRepo", "PipelineRepo", "RunRepo")
    cursor_mod = require("app.storage.repositories.cursor", "encode_time_id")
    import aiosqlite

    size = 20_000 if config.quick else 1_000_000
    result = BenchResult(KEY, TITLE, params={"runs": size, "pipelines": PIPELINES, "page": PAGE})
    with tempfile.TemporaryDirectory(prefix="mashpipe-bench-runs-") as folder:
        path = Path(folder) / "runs.db"
        db = db_mod.Database(f"sqlite+aiosqlite:///{path}")
        try:
            await db.upgrade()
            async with db.session() as session:
                account = await repos.AccountRepo(session).create("bench")
                other = await repos.AccountRepo(session).create("other")
                pipelines = []
                for n in range(PIPELINES):
                    pipeline, _ = await repos.PipelineRepo(session).create(
                        account.id, f"p{n:02d}", "source", {"version": 1}
                    )
                    pipelines.append((pipeline.id, pipeline.name))
                other_pipeline, _ = await repos.PipelineRepo(session).create(
                    other.id, "o", "s", {"version": 1}
                )
                await session.commit()
            account_id = account.id
            await db.dispose()  # no pooled connection may stay open while the load changes the journal
            insert_s = bulk_insert(
                path, account_id, pipelines, (other.id, other_pipeline.id, other_pipeline.name), size
            )
            result.lines.append(
                Line(f"bulk insert of {size:,} runs (executemany, one transaction)", insert_s, "s")
            )
            result.lines.append(Line("insert rate", size / insert_s, "runs/s"))

            pipeline_id, pipeline_name = pipelines[3]
            deep = await _deep_position(path, account_id, int(size * 0.9))
            deep_cursor = cursor_mod.encode_time_id(deep[0], deep[1])
            raw = await aiosqlite.connect(path)
            try:
                queries = _queries(account_id, pipeline_id, pipeline_name, deep)

                def repo_call(filters: dict[str, Any], count_max: int | None) -> Any:
                    async def call() -> tuple[list[str], int, bool]:
                        async with db.session() as session:
                            page = await repos.RunRepo(session).list(
                                account_id, limit=PAGE, count_max=count_max, **filters
                            )
                        return [row.id for row in page.runs], page.total, page.total_exact

                    return call

                def raw_call(
                    page_sql: str,
                    count_sql: str,
                    params: tuple[Any, ...],
                    count_params: tuple[Any, ...],
                    *,
                    capped: bool,
                ) -> Any:
                    async def call() -> tuple[list[str], int, bool]:
                        async with raw.execute(page_sql, params) as cursor:
                            ids = [row[0] for row in await cursor.fetchall()][:PAGE]
                        async with raw.execute(count_sql, count_params) as cursor:
                            (total,) = await cursor.fetchone()  # type: ignore[misc]
                        if capped and total > CAP:
                            return ids, CAP, False  # at least CAP runs match
                        return ids, int(total), True

                    return call

                def page_only(page_sql: str, params: tuple[Any, ...]) -> Any:
                    async def call() -> list[str]:
                        async with raw.execute(page_sql, params) as cursor:
                            return [row[0] for row in await cursor.fetchall()][:PAGE]

                    return call

                filters = {
                    "first page": {},
                    "filtered by pipeline": {"pipeline_name": pipeline_name},
                    "filtered by status": {"status": "failed"},
                    "deep cursor (90% down)": {"cursor": deep_cursor},
                }
                variants: dict[str, Any] = {}
                for label, query in queries.items():
                    page_sql, count_sql, params, count_params = query
                    capped_sql = _capped(count_sql)
                    pairs = {
                        "capped": (
                            repo_call(filters[label], CAP),
                            raw_call(page_sql, capped_sql, params, count_params, capped=True),
                        ),
                        "exact": (
                            repo_call(filters[label], None),
                            raw_call(page_sql, count_sql, params, count_params, capped=False),
                        ),
                    }
                    for kind, (repo_fn, raw_fn) in pairs.items():
                        got, want = await repo_fn(), await raw_fn()
                        if got != want:
                            raise AssertionError(f"{label} ({kind}): the repository and raw SQL disagree")
                        variants[f"repo {kind}: {label}"] = repo_fn
                        variants[f"raw {kind}: {label}"] = raw_fn
                    variants[f"page only: {label}"] = page_only(page_sql, params)
                samples = await measure(variants, config.repeats)
            finally:
                await raw.close()
        finally:
            await db.dispose()
    result.samples = samples
    for label in queries:
        repo_s, raw_s = median(samples[f"repo capped: {label}"]), median(samples[f"raw capped: {label}"])
        exact_repo_s = median(samples[f"repo exact: {label}"])
        exact_raw_s = median(samples[f"raw exact: {label}"])
        page_s = median(samples[f"page only: {label}"])
        result.lines += [
            Line(f"{label}: RunRepo.list (page + total)", repo_s, "s"),
            Line(f"{label}: raw SQL, same driver (page + total)", raw_s, "s"),
            Line(f"{label}: RunRepo.list, exact total (count_max=None)", exact_repo_s, "s"),
            Line(f"{label}: raw SQL, page + exact total", exact_raw_s, "s"),
            Line(f"{label}: raw SQL, the page alone (no total)", page_s, "s"),
        ]
        result.targets.append(
            Target(f"{label}: repo / raw (capped)", repo_s / raw_s, "<=", TARGET_RATIO, "x")
        )
    result.notes.append(
        f"`page + total` is what the API answers: `total` counted up to runs_total_max + 1 = {CAP + 1:,} "
        "matching rows (an index range that stops early), so it no longer grows with the number of "
        "matching runs; the exact count over the filters' index range (count_max=None) does; the page "
        "is an index range whatever the table size"
    )
    return result


def _queries(
    account_id: str, pipeline_id: str, pipeline_name: str, deep: tuple[datetime, str]
) -> dict[str, tuple[str, str, tuple[Any, ...], tuple[Any, ...]]]:
    """``(page SQL, count SQL, page params, count params)`` per query, as hand-written SQL."""
    order = f"ORDER BY created_at DESC, id DESC LIMIT {PAGE + 1}"
    count = "SELECT count(*) FROM runs WHERE account_id = ?"
    return {
        "first page": (f"{_SELECT} WHERE account_id = ? {order}", count, (account_id,), (account_id,)),
        "filtered by pipeline": (
            f"{_SELECT} WHERE account_id = ? AND pipeline_id = ? {order}",
            f"{count} AND pipeline_id = ?",
            (account_id, pipeline_id),
            (account_id, pipeline_id),
        ),
        "filtered by status": (
            f"{_SELECT} WHERE account_id = ? AND status = ? {order}",
            f"{count} AND status = ?",
            (account_id, "failed"),
            (account_id, "failed"),
        ),
        "deep cursor (90% down)": (
            f"{_SELECT} WHERE account_id = ? AND (created_at, id) < (?, ?) {order}",
            count,
            (account_id, _stamp(deep[0]), deep[1]),
            (account_id,),
        ),
    }


def _capped(count_sql: str) -> str:
    """The capped form of a ``SELECT count(*) FROM runs WHERE ...``: at most ``CAP + 1`` rows counted."""
    prefix = "SELECT count(*) FROM runs"
    assert count_sql.startswith(prefix)
    return f"SELECT count(*) FROM (SELECT 1 FROM runs{count_sql[len(prefix) :]} LIMIT {CAP + 1})"


async def _deep_position(path: Path, account_id: str, offset: int) -> tuple[datetime, str]:
    """``(created_at, id)`` of the run ``offset`` rows down the newest-first list."""
    connection = sqlite3.connect(path)
    try:
        stamp, run_id = connection.execute(
            "SELECT created_at, id FROM runs WHERE account_id = ? ORDER BY created_at DESC, id DESC "
            "LIMIT 1 OFFSET ?",
            (account_id, offset),
        ).fetchone()
    finally:
        connection.close()
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC), run_id
