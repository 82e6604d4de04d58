"""The recorder's SQLite fast path against the general path: the same runs stored, byte for byte.

A run recorded by the recorder (rows encoded once, one ``executemany`` per table on the driver connection)
is compared with the same run written by the previous path: the ``Run`` row inserted through the ORM with
SQLAlchemy's bind processing, its steps through :meth:`RunRepo.upsert_steps` (the queued runs' path, which
caps outputs and logs). Both databases are read back raw (every column, with its SQLite type), through
the ORM, and as the API shows them (``GET /v1/runs/{id}``, ``GET /v1/runs``).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.api.views import run_read, run_summary
from app.engine.types import StepError, StepResult, StepStatus
from app.runtime.pipelines import check_source, create_pipeline
from app.runtime.run_recorder import FinishedRun, RunRecorder
from app.storage.base import new_id
from app.storage.db import Database
from app.storage.models import Pipeline, Run
from app.storage.repositories import AccountRepo, RunRepo, run_writes
from app.storage.repositories.run_writes import RunWrites, sqlite_rows_match
from app.storage.types import sqlite_utc_text

SIMPLE = """\
version: 1
name: simple
steps:
  - id: a
    uses: core.set
    with: {value: 1}
"""

UTC_ZERO_MICROS = datetime(2026, 11, 26, 6, 32, 17, tzinfo=UTC)  # isoformat would drop ".000000"
INDIA = timezone(timedelta(hours=5, minutes=30))
AWAY = datetime(2026, 11, 26, 12, 2, 18, 123456, tzinfo=INDIA)  # not UTC: stored as its UTC instant
LAST_MICRO = datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
UNICODE = {"é": "naïve café", "emoji": "😀", "sep": "\u2028\u2029", "nul": "a\x00b", "quote": '"\\'}
HUGE_INT = 2**70  # beyond 64 bits: the stdlib encoder's path


async def _database(path: Path) -> Database:
    database = Database(f"sqlite+aiosqlite:///{path}")
    await database.upgrade()
    return database


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Database, Database, str, str]]:
    """Two databases with the same account and pipeline (one for the recorder, one for the reference
    path): the second is a copy of the first."""
    first = await _database(tmp_path / "fast.db")
    async with first.session() as session:
        account = await AccountRepo(session).create("acme")
        await create_pipeline(session, account.id, SIMPLE, check_source(SIMPLE, None, max_bytes=262_144))
        await session.commit()
        pipeline = await session.scalar(select(Pipeline))
        assert pipeline is not None
        account_id, pipeline_id = account.id, pipeline.id
    await first.dispose()  # the WAL is checkpointed into the file: copy it
    shutil.copyfile(tmp_path / "fast.db", tmp_path / "ref.db")
    fast, reference = await _database(tmp_path / "fast.db"), await _database(tmp_path / "ref.db")
    yield fast, reference, account_id, pipeline_id
    await fast.dispose()
    await reference.dispose()


def _steps(now: datetime) -> list[StepResult]:
    later = now + timedelta(milliseconds=1234, microseconds=5)
    return [
        StepResult(
            step_id="fetch",
            status=StepStatus.SUCCEEDED,
            attempts=2,
            started_at=now,
            finished_at=later,
            output=[{"id": n, "title": f"Story {n} é", "tags": ["x", "y"]} for n in range(60)],  # truncated
            logs=["GET http://127.0.0.1/items -> 200"],
        ),
        StepResult(step_id="kept", status=StepStatus.RUNNING, attempts=1, started_at=now, output=None),
        StepResult(
            step_id="kept",  # a later state of the same step: the last one is recorded
            status=StepStatus.SUCCEEDED,
            attempts=1,
            started_at=AWAY,
            finished_at=AWAY + timedelta(microseconds=1),
            output={"unicode": UNICODE, "big": HUGE_INT, "float": 1e300, "neg": -0.0, "list": [None, True]},
            logs=["ünïcode log", "second line"],
        ),
        StepResult(
            step_id="broken",
            status=StepStatus.FAILED,
            attempts=3,
            started_at=UTC_ZERO_MICROS,
            finished_at=LAST_MICRO.replace(year=2027),
            error=StepError("http_error", "upstream said 500 — ünïcode", {"status": 500, "body": UNICODE}),
            logs=[f"attempt {n}: " + "z" * 300 for n in range(40)],  # over the cap: dropped lines
        ),
        StepResult(step_id="skipped", status=StepStatus.SKIPPED),  # no timestamps, no output
        StepResult(step_id="empty", status=StepStatus.SUCCEEDED, output=[], started_at=now, finished_at=now),
        StepResult(
            step_id="scalar", status=StepStatus.SUCCEEDED, output=1.0, started_at=now, finished_at=now
        ),
        StepResult(step_id="text", status=StepStatus.SUCCEEDED, output="x" * 10, logs=[]),
    ]


def _runs(account_id: str, pipeline_id: str) -> list[FinishedRun]:
    now = datetime.now(UTC)
    base: dict[str, Any] = {
        "account_id": account_id,
        "pipeline_id": pipeline_id,
        "pipeline_name": "simple",
        "revision": 1,
    }
    return [
        FinishedRun(
            id=new_id(),
            **base,
            status="succeeded",
            trigger={"kind": "endpoint", "query": {"min_score": "20", "q": "é😀"}},
            inputs={"min_score": 20, "big": HUGE_INT},
            outputs={"top": [{"id": 1, "label": "Story 1 (99 points)"}], "unicode": UNICODE},
            error=None,
            created_at=now,
            started_at=now + timedelta(microseconds=1),
            finished_at=now + timedelta(milliseconds=3),
            steps=_steps(now),
        ),
        FinishedRun(
            id=new_id(),
            **base,
            status="failed",
            trigger={"kind": "k" * 40, "query": {}},  # a kind longer than the column: cut to 32
            inputs={},
            outputs=None,
            error={"code": "internal_error", "message": "the run failed: ünïcode", "details": None},
            created_at=UTC_ZERO_MICROS,
            started_at=AWAY,
            finished_at=LAST_MICRO.replace(year=2030),
            steps=[],
        ),
        FinishedRun(
            id=new_id(),
            **base,
            status="succeeded",
            trigger={"query": {"a": ["1", "2"]}},  # no kind: an endpoint's
            inputs={"nested": {"deep": [[[]]], "empty": {}}},
            outputs={},
            error=None,
            created_at=LAST_MICRO,
            started_at=LAST_MICRO,
            finished_at=LAST_MICRO,
            steps=[StepResult(step_id="only", status=StepStatus.CANCELLED, output=None, logs=["stopped"])],
        ),
    ]


async def _write_reference(database: Database, runs: list[FinishedRun], max_output_bytes: int) -> None:
    """The previous path: the run row through the ORM (SQLAlchemy binds every value), its steps through
    RunRepo.upsert_steps (outputs and logs capped by the repository)."""
    async with database.session() as session:
        for run in runs:
            session.add(
                Run(
                    id=run.id,
                    account_id=run.account_id,
                    pipeline_id=run.pipeline_id,
                    pipeline_name=run.pipeline_name,
                    revision=run.revision,
                    status=run.status,
                    trigger_kind=str(run.trigger.get("kind", "endpoint"))[:32],
                    trigger=run.trigger,
                    inputs=run.inputs,
                    outputs=run.outputs,
                    error=run.error,
                    created_at=run.created_at,
                    started_at=run.started_at,
                    finished_at=run.finished_at,
                    attempt=1,
                )
            )
            await session.flush()
            await RunRepo(session).upsert_steps(run.id, run.steps, max_output_bytes)
        await session.commit()


def _raw(path: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[str]]:
    """Every column of every run and step row as SQLite gives it back (with its storage type), step ids
    apart (random)."""
    connection = sqlite3.connect(path)
    try:
        runs = connection.execute("SELECT * FROM runs ORDER BY id").fetchall()
        types = "typeof(outputs), typeof(error), typeof(created_at), typeof(started_at)"
        run_types = connection.execute(f"SELECT {types} FROM runs ORDER BY id").fetchall()
        columns = [row[1] for row in connection.execute("PRAGMA table_info(step_runs)")]
        names = ", ".join(f'"{name}"' for name in columns if name != "id")
        kinds = ", ".join(f'typeof("{name}")' for name in columns if name != "id")
        steps = connection.execute(
            f"SELECT {names}, {kinds} FROM step_runs ORDER BY run_id, step_id"
        ).fetchall()
        ids = [row[0] for row in connection.execute("SELECT id FROM step_runs")]
    finally:
        connection.close()
    return [(*run, *types) for run, types in zip(runs, run_types, strict=True)], steps, ids


async def _api_views(database: Database, account_id: str, run_ids: list[str]) -> list[Any]:
    views: list[Any] = []
    async with database.session() as session:
        repo = RunRepo(session)
        for run_id in run_ids:
            run = await repo.get(account_id, run_id)
            assert run is not None
            views.append(run_read(run, await repo.steps(run_id)).model_dump(mode="json"))
        page = await repo.list(account_id)
        views.append(([run_summary(run).model_dump(mode="json") for run in page.runs], page.total))
    return views


@pytest.mark.parametrize("rows_per_statement", [2, run_writes.ROWS_PER_STATEMENT])
@pytest.mark.parametrize("max_output_bytes", [2_000, 262_144])
async def test_recorded_runs_are_stored_exactly_as_the_general_path_stores_them(
    pair: tuple[Database, Database, str, str],
    tmp_path: Path,
    max_output_bytes: int,
    rows_per_statement: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 2 rows per statement: the 3 runs and their 8 steps take several multi-row INSERTs, one short.
    monkeypatch.setattr(run_writes, "ROWS_PER_STATEMENT", rows_per_statement)
    fast, reference, account_id, pipeline_id = pair
    runs = _runs(account_id, pipeline_id)
    recorder = RunRecorder(fast, max_output_bytes=max_output_bytes, delay=0.01)
    assert recorder._writes.fast  # the fast path is the one under test
    for run in runs:
        await recorder.add(run)
    await recorder.close()
    assert recorder.lost == 0
    assert recorder.batches == 1  # all three in one transaction
    await _write_reference(reference, runs, max_output_bytes)

    fast_runs, fast_steps, fast_ids = _raw(tmp_path / "fast.db")
    ref_runs, ref_steps, _ = _raw(tmp_path / "ref.db")
    assert len(fast_runs) == 3
    assert len(fast_steps) == 8  # "kept" once: its last state
    assert fast_runs == ref_runs
    assert fast_steps == ref_steps
    assert all(re.fullmatch(r"[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}", step_id) for step_id in fast_ids)
    assert len(set(fast_ids)) == len(fast_ids)

    ids = [run.id for run in runs]
    assert await _api_views(fast, account_id, ids) == await _api_views(reference, account_id, ids)


async def test_values_read_back_through_the_orm(pair: tuple[Database, Database, str, str]) -> None:
    fast, _, account_id, pipeline_id = pair
    runs = _runs(account_id, pipeline_id)
    recorder = RunRecorder(fast, max_output_bytes=2_000, delay=0.0)
    for run in runs:
        await recorder.add(run)
    await recorder.close()
    async with fast.session() as session:
        repo = RunRepo(session)
        first = await repo.get(account_id, runs[0].id)
        failed = await repo.get(account_id, runs[1].id)
        steps = {step.step_id: step for step in await repo.steps(runs[0].id)}
    assert first is not None
    assert failed is not None
    assert first.created_at == runs[0].created_at
    assert first.created_at.tzinfo is UTC
    assert first.inputs == {"min_score": 20, "big": HUGE_INT}
    assert first.outputs == runs[0].outputs
    assert first.trigger == runs[0].trigger
    assert first.trigger_kind == "endpoint"
    assert failed.outputs is None
    assert failed.error == runs[1].error
    assert failed.created_at == UTC_ZERO_MICROS
    assert failed.started_at == AWAY
    assert failed.started_at.tzinfo is UTC
    assert failed.trigger_kind == "k" * 32
    assert steps["fetch"].output_truncated
    assert steps["fetch"].output["truncated"] is True
    assert steps["fetch"].duration_ms == 1234
    assert steps["kept"].output == runs[0].steps[2].output
    assert not steps["kept"].output_truncated
    assert steps["kept"].started_at == AWAY
    assert steps["broken"].error == {
        "code": "http_error",
        "message": "upstream said 500 — ünïcode",
        "details": {"status": 500, "body": UNICODE},
    }
    assert steps["broken"].logs[-1].endswith("more log lines dropped (over 2000 bytes)")
    assert steps["skipped"].output is None
    assert steps["skipped"].started_at is None
    assert steps["skipped"].duration_ms is None
    assert steps["skipped"].logs == []
    assert steps["scalar"].output == 1.0
    assert steps["empty"].output == []


async def test_the_core_path_stores_the_same_rows(
    pair: tuple[Database, Database, str, str], tmp_path: Path
) -> None:
    """The portable path (used on PostgreSQL) forced on SQLite: the same rows as the fast path's."""
    fast, reference, account_id, pipeline_id = pair
    runs = _runs(account_id, pipeline_id)
    fast_writes = RunWrites(fast, max_output_bytes=2_000)
    core_writes = RunWrites(reference, max_output_bytes=2_000)
    core_writes.fast = False
    assert fast_writes.fast
    await fast_writes.insert([fast_writes.encode(run) for run in runs])
    await core_writes.insert([core_writes.encode(run) for run in runs])
    fast_runs, fast_steps, _ = _raw(tmp_path / "fast.db")
    core_runs, core_steps, _ = _raw(tmp_path / "ref.db")
    assert fast_runs == core_runs
    assert fast_steps == core_steps


async def test_the_fast_path_checks_itself_against_the_dialect(db: Database) -> None:
    assert sqlite_rows_match(db)
    assert RunWrites(db, max_output_bytes=10).fast


@pytest.mark.parametrize("path", ["fast", "core"])
async def test_a_naive_timestamp_loses_only_its_run(db: Database, account_id: str, path: str) -> None:
    spec = check_source(SIMPLE, None, max_bytes=262_144)
    async with db.session() as session:
        await create_pipeline(session, account_id, SIMPLE, spec)
        await session.commit()
        pipeline = await session.scalar(select(Pipeline))
    assert pipeline is not None
    good, bad = _runs(account_id, pipeline.id)[:2]
    naive = dataclasses.replace(bad, finished_at=datetime(2026, 1, 1, 12, 0))
    recorder = RunRecorder(db, max_output_bytes=2_000, delay=0.0)
    recorder._writes.fast = path == "fast"
    await recorder.add(good)
    await recorder.add(naive)
    await recorder.close()
    assert recorder.lost == 1
    async with db.session() as session:
        assert await session.get(Run, good.id) is not None
        assert await session.get(Run, naive.id) is None


@pytest.mark.parametrize(
    "value",
    [
        UTC_ZERO_MICROS,
        AWAY,
        LAST_MICRO,
        datetime(1, 1, 2, tzinfo=UTC),
        datetime(999, 5, 6, 7, 8, 9, 10, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 30, 0, 1, tzinfo=timezone(timedelta(hours=-11, minutes=-15))),
    ],
)
def test_sqlite_utc_text_is_what_the_column_type_binds(db: Database, value: datetime) -> None:
    dialect = db.engine.dialect
    process = Run.__table__.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
    assert process is not None
    assert sqlite_utc_text(value) == process(value)


def test_sqlite_utc_text_refuses_what_the_column_type_refuses() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        sqlite_utc_text(datetime(2026, 1, 1))
    with pytest.raises(TypeError, match="expected a datetime"):
        sqlite_utc_text("2026-01-01")  # type: ignore[arg-type]


async def test_without_the_aiosqlite_internals_the_public_api_writes_the_same_rows(
    pair: tuple[Database, Database, str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, reference, account_id, pipeline_id = pair
    runs = _runs(account_id, pipeline_id)
    monkeypatch.setattr(run_writes, "thread_call", lambda driver: None)
    writes = RunWrites(fast, max_output_bytes=2_000)
    assert writes.fast
    await writes.insert([writes.encode(run) for run in runs])
    await _write_reference(reference, runs, 2_000)
    assert _raw(tmp_path / "fast.db")[:2] == _raw(tmp_path / "ref.db")[:2]
    # A batch that fails leaves nothing (one transaction), the connection given back.
    again = RunWrites(fast, max_output_bytes=2_000)
    fresh = dataclasses.replace(runs[0], id=new_id())
    with pytest.raises(sqlite3.IntegrityError):
        await again.insert([again.encode(fresh), again.encode(runs[1])])  # runs[1] is there already
    async with fast.session() as session:
        assert await session.get(Run, fresh.id) is None
    assert fast.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
