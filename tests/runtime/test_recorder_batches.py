"""The recorder's batches on the fast path: failed batches written run by run, a locked database retried,
one pooled connection for batches written in a row, given back at close."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import delete, event, func, select

from app.engine.types import StepResult, StepStatus
from app.runtime import run_recorder
from app.runtime.run_recorder import FinishedRun, RunRecorder
from app.storage.base import new_id
from app.storage.db import Database
from app.storage.models import Pipeline, Run, StepRun
from app.storage.repositories.run_writes import BatchWriter, EncodedRun

SOURCE = """\
version: 1
name: %s
steps:
  - id: a
    uses: core.set
    with: {value: 1}
"""


async def _pipeline(db: Database, save_pipeline: Any, name: str) -> Pipeline:
    await save_pipeline(SOURCE % name)
    async with db.session() as session:
        found = await session.scalar(select(Pipeline).where(Pipeline.name == name))
        assert found is not None
        return found


def _run(pipeline: Pipeline, n: int) -> FinishedRun:
    now = datetime.now(UTC)
    steps = [
        StepResult(
            step_id=step, status=StepStatus.SUCCEEDED, output={"n": n}, started_at=now, finished_at=now
        )
        for step in ("a", "b")
    ]
    return FinishedRun(
        id=new_id(),
        account_id=pipeline.account_id,
        pipeline_id=pipeline.id,
        pipeline_name=pipeline.name,
        revision=1,
        status="succeeded",
        trigger={"kind": "endpoint", "query": {}},
        inputs={"n": n},
        outputs={"n": n},
        error=None,
        created_at=now,
        started_at=now,
        finished_at=now,
        steps=steps,
    )


async def _count(db: Database, model: Any, **where: str) -> int:
    statement = select(func.count()).select_from(model)
    for name, value in where.items():
        statement = statement.where(getattr(model, name) == value)
    async with db.session() as session:
        return int(await session.scalar(statement) or 0)


async def test_a_batch_with_a_run_of_a_deleted_pipeline_is_written_run_by_run(
    db: Database, save_pipeline: Any
) -> None:
    kept = await _pipeline(db, save_pipeline, "kept")
    gone = await _pipeline(db, save_pipeline, "gone")
    async with db.session() as session:
        await session.execute(delete(Pipeline).where(Pipeline.id == gone.id))
        await session.commit()
    recorder = RunRecorder(db, max_output_bytes=10_000, delay=0.05)
    runs = [_run(kept, 1), _run(gone, 2), _run(kept, 3)]
    for run in runs:
        await recorder.add(run)
    await recorder.flush()
    assert recorder.lost == 1
    assert recorder.batches == 0  # the batch failed; its runs were written one by one
    assert await _count(db, Run) == 2
    assert await _count(db, StepRun, run_id=runs[0].id) == 2
    assert await _count(db, StepRun, run_id=runs[2].id) == 2
    assert await _count(db, StepRun, run_id=runs[1].id) == 0  # nothing of the failed run was left
    # The writer goes on with a good connection.
    later = _run(kept, 4)
    await recorder.add(later)
    await recorder.close()
    assert recorder.batches == 1
    assert await _count(db, StepRun, run_id=later.id) == 2
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_a_locked_database_is_written_again(
    db: Database, save_pipeline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = await _pipeline(db, save_pipeline, "locked")
    calls: list[int] = []
    insert = BatchWriter.insert

    async def locked_twice(self: BatchWriter, runs: Sequence[EncodedRun]) -> None:
        calls.append(len(runs))
        if len(calls) <= 2:
            raise sqlite3.OperationalError("database is locked")
        await insert(self, runs)

    monkeypatch.setattr(BatchWriter, "insert", locked_twice)
    monkeypatch.setattr(run_recorder, "BUSY_WAITS", (0.0, 0.0, 0.0))
    recorder = RunRecorder(db, max_output_bytes=10_000, delay=0.05)
    for n in range(3):
        await recorder.add(_run(pipeline, n))
    await recorder.close()
    assert calls == [3, 3, 3]  # the whole batch, three times
    assert recorder.batches == 1
    assert recorder.lost == 0
    assert await _count(db, Run) == 3


async def test_a_database_locked_for_too_long_falls_back_to_single_runs(
    db: Database, save_pipeline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = await _pipeline(db, save_pipeline, "busy")

    async def always_locked(self: BatchWriter, runs: Sequence[EncodedRun]) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(BatchWriter, "insert", always_locked)
    monkeypatch.setattr(run_recorder, "BUSY_WAITS", (0.0,))
    recorder = RunRecorder(db, max_output_bytes=10_000, delay=0.0)
    await recorder.add(_run(pipeline, 1))
    await recorder.add(_run(pipeline, 2))
    await recorder.close()
    assert recorder.lost == 2  # reported, not raised


async def test_batches_written_in_a_row_share_one_connection_given_back_at_close(
    db: Database, save_pipeline: Any
) -> None:
    pipeline = await _pipeline(db, save_pipeline, "rows")
    checkouts: list[object] = []
    event.listen(db.engine.sync_engine.pool, "checkout", lambda *args: checkouts.append(args[0]))
    recorder = RunRecorder(db, max_output_bytes=10_000, max_pending=1, delay=30.0)
    await recorder.add(_run(pipeline, 1))  # the buffer is full at once: written without waiting
    while recorder.pending:
        await asyncio.sleep(0.001)
    assert recorder.batches == 1
    assert db.engine.pool.checkedout() == 1  # type: ignore[attr-defined]  # kept for the next run
    await recorder.add(_run(pipeline, 2))  # the writer was lingering: same connection
    while recorder.pending:
        await asyncio.sleep(0.001)
    assert recorder.batches == 2
    assert len(checkouts) == 1
    await asyncio.wait_for(recorder.close(), 10)  # ends the linger at once (not after 30 s)
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert await _count(db, Run) == 2


async def test_flush_gives_the_connection_back(db: Database, save_pipeline: Any) -> None:
    pipeline = await _pipeline(db, save_pipeline, "flushed")
    recorder = RunRecorder(db, max_output_bytes=10_000, delay=30.0)
    for n in range(4):
        await recorder.add(_run(pipeline, n))
    await asyncio.wait_for(recorder.flush(), 10)
    assert recorder.pending == 0
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert await _count(db, StepRun) == 8


async def test_a_run_handed_over_while_the_connection_is_given_back_is_written(
    db: Database, save_pipeline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = await _pipeline(db, save_pipeline, "late")
    recorder = RunRecorder(db, max_output_bytes=10_000, delay=0.01)
    late = _run(pipeline, 2)
    release = BatchWriter.release
    handed: list[str] = []

    async def add_then_release(self: BatchWriter) -> None:
        if not handed:  # the first time the writer gives its connection back, a run comes in
            handed.append(late.id)
            await recorder.add(late)
        await release(self)

    monkeypatch.setattr(BatchWriter, "release", add_then_release)
    await recorder.add(_run(pipeline, 1))

    async def written() -> None:
        while not handed or recorder.pending:  # given back after the linger, then the late run
            await asyncio.sleep(0.005)

    await asyncio.wait_for(written(), 30)  # written by the writer itself: no flush() called
    assert handed == [late.id]
    assert await _count(db, Run, id=late.id) == 1
    await recorder.close()


async def test_flush_ends_the_linger_and_a_closed_recorder_no_longer_lingers(
    db: Database, save_pipeline: Any
) -> None:
    pipeline = await _pipeline(db, save_pipeline, "linger")
    recorder = RunRecorder(db, max_output_bytes=10_000, max_pending=1, delay=30.0)
    await recorder.add(_run(pipeline, 1))
    while recorder.pending:
        await asyncio.sleep(0.001)
    assert db.engine.pool.checkedout() == 1  # type: ignore[attr-defined]  # lingering
    await asyncio.wait_for(recorder.flush(), 10)  # nothing pending, yet the linger ends
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    await recorder.close()
    await recorder.add(_run(pipeline, 2))  # handed over after close: still written

    async def given_back() -> None:
        while recorder.pending or db.engine.pool.checkedout():  # type: ignore[attr-defined]
            await asyncio.sleep(0.001)

    await asyncio.wait_for(given_back(), 10)  # no 30 s linger after close
    assert await _count(db, Run) == 2
