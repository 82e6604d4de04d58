"""StorageObserver: steps written in the background in batches; the rest handed back at the end."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from app.engine.types import StepResult, StepStatus
from app.runtime.observer import StorageObserver
from app.storage.repositories import PipelineRepo, RunRepo

SPEC = {"version": 1, "name": "p", "steps": [{"id": "a", "uses": "core.set", "with": {"value": 1}}]}


async def make_run(db, account_id: str) -> str:
    async with db.session() as session:
        pipeline, _ = await PipelineRepo(session).create(account_id, "p", "source", SPEC)
        run = await RunRepo(session).create(
            account_id=account_id, pipeline=pipeline, revision=1, inputs={}, trigger={"kind": "manual"}
        )
        await session.commit()
        return run.id


async def stored_steps(db, run_id: str) -> dict[str, str]:
    async with db.session() as session:
        return {step.step_id: step.status for step in await RunRepo(session).steps(run_id)}


def result(step_id: str, status: StepStatus) -> StepResult:
    now = datetime.now(UTC)
    finished = status not in (StepStatus.PENDING, StepStatus.RUNNING)
    return StepResult(
        step_id=step_id, status=status, attempts=1, started_at=now, finished_at=now if finished else None
    )


async def test_a_started_step_is_written_while_the_run_goes_on(db, account_id):
    run_id = await make_run(db, account_id)
    observer = StorageObserver(db, run_id, max_output_bytes=1000)
    await observer.step_started(run_id, result("slow", StepStatus.RUNNING))
    for _ in range(200):  # the background writer gets to it without the engine waiting
        if await stored_steps(db, run_id) == {"slow": "running"}:
            break
        await asyncio.sleep(0.01)
    assert await stored_steps(db, run_id) == {"slow": "running"}
    assert observer.batches == 1
    assert await observer.drain() == []


async def test_events_between_writes_are_coalesced_and_handed_back(db, account_id):
    run_id = await make_run(db, account_id)
    observer = StorageObserver(db, run_id, max_output_bytes=1000)
    for step_id in ("a", "b", "c"):
        await observer.step_started(run_id, result(step_id, StepStatus.RUNNING))
        await observer.step_finished(run_id, result(step_id, StepStatus.SUCCEEDED))
    pending = await observer.drain()
    # no write happened yet (no await gave the writer a turn): the final states come back, once each
    assert [(r.step_id, r.status) for r in pending] == [
        ("a", StepStatus.SUCCEEDED),
        ("b", StepStatus.SUCCEEDED),
        ("c", StepStatus.SUCCEEDED),
    ]
    assert observer.batches == 0
    # after drain, nothing is written in the background any more
    await observer.step_finished(run_id, result("d", StepStatus.SUCCEEDED))
    await asyncio.sleep(0.05)
    assert await stored_steps(db, run_id) == {}
    assert [r.step_id for r in await observer.drain()] == ["d"]


async def test_snapshots_do_not_follow_later_mutations(db, account_id):
    run_id = await make_run(db, account_id)
    observer = StorageObserver(db, run_id, max_output_bytes=1000)
    step = result("a", StepStatus.RUNNING)
    step.logs.append("first")
    await observer.step_started(run_id, step)
    step.logs.append("second")
    step.status = StepStatus.FAILED
    (pending,) = await observer.drain()
    assert pending.status == StepStatus.RUNNING
    assert pending.logs == ["first"]


async def test_a_deleted_run_stops_the_writer_quietly(db, account_id, caplog):
    observer = StorageObserver(db, "0" * 32, max_output_bytes=1000)
    await observer.step_started("0" * 32, result("a", StepStatus.RUNNING))
    await asyncio.sleep(0.05)
    assert await observer.drain() == []
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
