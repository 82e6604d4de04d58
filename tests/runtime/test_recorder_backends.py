"""The recorder on the configured database: SQLite (its fast path) by default, PostgreSQL (the Core path)
when ``MASHPIPE_TEST_POSTGRES_URL`` is set (its schema ``public`` is emptied first, as tests/storage does).

A run recorded by the recorder and the same run written by the general path (the ORM for the run,
:meth:`RunRepo.upsert_steps` for its steps) under another id read back the same, field by field.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from app.engine.types import StepError, StepResult, StepStatus
from app.runtime.pipelines import check_source, create_pipeline
from app.runtime.run_recorder import FinishedRun, RunRecorder
from app.storage.base import new_id
from app.storage.db import Database
from app.storage.models import Pipeline, Run, StepRun
from app.storage.repositories import AccountRepo, RunRepo

POSTGRES_URL = os.environ.get("MASHPIPE_TEST_POSTGRES_URL")

SIMPLE = """\
version: 1
name: simple
steps:
  - id: a
    uses: core.set
    with: {value: 1}
"""


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    if POSTGRES_URL:
        empty = Database(POSTGRES_URL)
        async with empty.engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
        await empty.dispose()
        url = POSTGRES_URL
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'backend.db'}"
    db = Database(url)
    await db.upgrade()
    yield db
    await db.dispose()


def _finished(account_id: str, pipeline_id: str) -> FinishedRun:
    now = datetime.now(UTC)
    away = datetime(2026, 11, 26, 12, 2, 18, 123456, tzinfo=timezone(timedelta(hours=-3)))
    return FinishedRun(
        id=new_id(),
        account_id=account_id,
        pipeline_id=pipeline_id,
        pipeline_name="simple",
        revision=1,
        status="failed",
        trigger={"kind": "endpoint", "query": {"q": "é😀"}},
        inputs={"min_score": 20, "text": "naïve \u2028"},
        outputs={"top": [{"id": 1, "title": "ÉTÉ"}]},
        error={"code": "step_failed", "message": "ünïcode", "details": {"n": 1}},
        created_at=datetime(2026, 11, 26, 6, 0, tzinfo=UTC),
        started_at=away,
        finished_at=now,
        steps=[
            StepResult(
                step_id="big",
                status=StepStatus.SUCCEEDED,
                attempts=1,
                started_at=away,
                finished_at=now,
                output=[{"n": n, "s": "é" * 20} for n in range(100)],
                logs=["line " + "x" * 100 for _ in range(50)],
            ),
            StepResult(
                step_id="failed",
                status=StepStatus.FAILED,
                attempts=3,
                started_at=now,
                finished_at=now + timedelta(microseconds=999),
                error=StepError("http_error", "500", {"status": 500}),
            ),
            StepResult(step_id="skipped", status=StepStatus.SKIPPED),
            StepResult(step_id="none", status=StepStatus.SUCCEEDED, output=None, started_at=now),
        ],
    )


def _columns(row: Any, skip: set[str]) -> dict[str, Any]:
    return {
        attribute.key: getattr(row, attribute.key)
        for attribute in type(row).__mapper__.column_attrs
        if attribute.key not in skip
    }


@pytest.mark.parametrize("compact", [False, True], ids=["step-rows", "compact"])
@pytest.mark.parametrize("max_output_bytes", [1_000, 1_000_000])
async def test_a_recorded_run_reads_back_as_the_general_path_writes_it(
    database: Database, max_output_bytes: int, compact: bool
) -> None:
    async with database.session() as session:
        account = await AccountRepo(session).create("acme")
        await create_pipeline(session, account.id, SIMPLE, check_source(SIMPLE, None, max_bytes=262_144))
        await session.commit()
        pipeline = await session.scalar(select(Pipeline))
        assert pipeline is not None
    recorded = dataclasses.replace(_finished(account.id, pipeline.id), compact=compact)
    reference = dataclasses.replace(recorded, id=new_id())

    recorder = RunRecorder(database, max_output_bytes=max_output_bytes, delay=0.0)
    assert recorder._writes.fast is (database.backend == "sqlite")
    await recorder.add(recorded)
    await recorder.close()
    assert recorder.lost == 0

    async with database.session() as session:
        values = {
            field.name: getattr(reference, field.name)
            for field in dataclasses.fields(FinishedRun)
            if field.name not in ("steps", "step_output_max_bytes", "compact")
        }
        session.add(Run(**values, trigger_kind="endpoint", attempt=1))
        await session.flush()
        await RunRepo(session).upsert_steps(reference.id, reference.steps, max_output_bytes)
        await session.commit()

    async with database.session() as session:
        repo = RunRepo(session)
        runs = [await repo.get(account.id, run_id) for run_id in (recorded.id, reference.id)]
        assert runs[0] is not None
        assert runs[1] is not None
        steps = [await repo.steps_of(run) for run in runs]
        # A compact record has no step_runs rows: its steps are in its own row.
        assert len(await repo.steps(recorded.id)) == (0 if compact else 4)
    assert (runs[0].step_states is not None) is compact
    assert runs[1].step_states is None
    assert _columns(runs[0], {"id", "step_states"}) == _columns(runs[1], {"id", "step_states"})
    assert runs[0].started_at == recorded.started_at
    assert runs[0].finished_at == recorded.finished_at
    assert [_columns(step, {"id", "run_id"}) for step in steps[0]] == [
        _columns(step, {"id", "run_id"}) for step in steps[1]
    ]
    assert sorted(step.step_id for step in steps[0]) == ["big", "failed", "none", "skipped"]
    assert next(s for s in steps[0] if s.step_id == "big").output_truncated is (max_output_bytes == 1_000)
    assert all(isinstance(step, StepRun) for step in steps[0])
