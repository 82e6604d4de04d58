"""The write-behind run recorder: batched writes, backpressure, flush at close, failed batches."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from app.engine.types import StepResult, StepStatus
from app.runtime.run_recorder import FinishedRun, RunRecorder
from app.storage.base import new_id
from app.storage.db import Database
from app.storage.models import Pipeline, Run, StepRun
from app.storage.repositories import RunRepo

SIMPLE = """\
version: 1
name: simple
steps:
  - id: a
    uses: core.set
    with: {value: 1}
"""


@pytest.fixture
async def pipeline(db: Database, save_pipeline: Any) -> Pipeline:
    await save_pipeline(SIMPLE)
    async with db.session() as session:
        found = await session.scalar(select(Pipeline).where(Pipeline.name == "simple"))
        assert found is not None
        return found


def finished(pipeline: Pipeline, n: int = 0, *, pipeline_id: str | None = None) -> FinishedRun:
    now = datetime.now(UTC)
    step = StepResult(
        step_id="a",
        status=StepStatus.SUCCEEDED,
        output={"n": n},
        started_at=now,
        finished_at=now,
        logs=["hi"],
    )
    return FinishedRun(
        id=new_id(),
        account_id=pipeline.account_id,
        pipeline_id=pipeline_id or pipeline.id,
        pipeline_name=pipeline.name,
        revision=1,
        status="succeeded",
        trigger={"kind": "endpoint", "query": {"n": str(n)}},
        inputs={},
        outputs={"n": n},
        error=None,
        created_at=now,
        started_at=now,
        finished_at=now,
        steps=[step],
    )


async def count(db: Database, model: Any) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_runs_handed_over_together_are_written_in_one_batch_with_their_steps(
    db: Database, pipeline: Pipeline
) -> None:
    recorder = RunRecorder(db, max_output_bytes=10_000, delay=0.05)
    runs = [finished(pipeline, n) for n in range(10)]
    await asyncio.gather(*(recorder.add(run) for run in runs))
    await recorder.flush()
    assert recorder.batches == 1
    assert recorder.pending == 0
    assert await count(db, Run) == 10
    async with db.session() as session:
        run, steps = await session.get(Run, runs[4].id), await RunRepo(session).steps(runs[4].id)
    assert run is not None
    assert run.status == "succeeded"
    assert run.outputs == {"n": 4}
    assert run.trigger_kind == "endpoint"
    assert [(step.step_id, step.status, step.output, step.logs) for step in steps] == [
        ("a", "succeeded", {"n": 4}, ["hi"])
    ]


async def test_a_full_buffer_makes_the_caller_wait_and_nothing_is_dropped(
    db: Database, pipeline: Pipeline
) -> None:
    recorder = RunRecorder(db, max_output_bytes=10_000, max_pending=3, delay=60.0)
    for n in range(3):
        await recorder.add(finished(pipeline, n))
    assert recorder.pending == 3
    fourth = asyncio.ensure_future(recorder.add(finished(pipeline, 3)))
    await asyncio.wait_for(fourth, 30)  # the full buffer was written to make room, then it got in
    await recorder.close()
    assert await count(db, Run) == 4
    assert await count(db, StepRun) == 4
    assert recorder.lost == 0


async def test_close_writes_what_is_pending(db: Database, pipeline: Pipeline) -> None:
    recorder = RunRecorder(db, max_output_bytes=10_000, delay=60.0)
    for n in range(5):
        await recorder.add(finished(pipeline, n))
    assert await count(db, Run) == 0
    await asyncio.wait_for(recorder.close(), 30)
    assert await count(db, Run) == 5


async def test_a_run_that_cannot_be_recorded_does_not_lose_the_others(
    db: Database, pipeline: Pipeline
) -> None:
    recorder = RunRecorder(db, max_output_bytes=10_000, delay=0.05)
    await recorder.add(finished(pipeline, 1))
    await recorder.add(finished(pipeline, 2, pipeline_id="deleted-pipeline"))
    await recorder.add(finished(pipeline, 3))
    await recorder.flush()
    assert await count(db, Run) == 2
    assert recorder.lost == 1


async def test_outputs_and_logs_are_capped_like_any_run(db: Database, pipeline: Pipeline) -> None:
    recorder = RunRecorder(db, max_output_bytes=64, delay=0.0)
    now = datetime.now(UTC)
    big = StepResult(
        step_id="a",
        status=StepStatus.SUCCEEDED,
        output={"text": "x" * 500},
        started_at=now,
        finished_at=now,
        logs=["line " + "y" * 30, "line " + "z" * 30, "line three"],
    )
    small = StepResult(step_id="b", status=StepStatus.SUCCEEDED, output=[1, "é"], logs=["ok"])
    run = FinishedRun(**{**_fields(finished(pipeline)), "steps": [big, small]})
    await recorder.add(run)
    await recorder.flush()
    async with db.session() as session:
        steps = {step.step_id: step for step in await RunRepo(session).steps(run.id)}
    assert steps["a"].output_truncated
    assert steps["a"].output["truncated"] is True
    assert steps["a"].output["size"] > 500
    assert steps["a"].logs == ["line " + "y" * 30, "... 2 more log lines dropped (over 64 bytes)"]
    assert not steps["b"].output_truncated
    assert steps["b"].output == [1, "é"]
    assert steps["b"].logs == ["ok"]


def _fields(run: FinishedRun) -> dict[str, Any]:
    return {name: getattr(run, name) for name in FinishedRun.__dataclass_fields__}
