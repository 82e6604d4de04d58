"""Concurrency limits: global workers, per-pipeline limit with queue (FIFO, no head-of-line blocking),
skip and fail, held by the database across several processes (two services on one SQLite file)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from app.runtime.limits import PipelineGate
from app.storage.repositories import RuntimeRepo

from .h1_support import HeldCaller, load_run, pipeline_source, running_service, status_of, until


async def test_queue_limit_runs_fifo_per_pipeline_without_blocking_other_pipelines(
    db, account_id, save_pipeline, make_settings
):
    await save_pipeline(pipeline_source("limited", concurrency="{limit: 1, on_conflict: queue}"))
    await save_pipeline(pipeline_source("free"))
    caller = HeldCaller()
    async with running_service(db, make_settings(), caller, workers=2) as service:
        first, second, third = [
            await service.submit(account_id=account_id, pipeline_name="limited", inputs={}) for _ in range(3)
        ]
        await caller.wait_started(first.id)
        await until(lambda: service.gate.waiting_runs(first.pipeline_id) == [second.id, third.id])
        # two workers, one busy with `first`, two limited runs waiting: another pipeline still runs
        other = await service.submit(account_id=account_id, pipeline_name="free", inputs={})
        await caller.wait_started(other.id)
        assert await status_of(db, second.id) == "queued"
        assert await status_of(db, third.id) == "queued"
        caller.release(other.id)

        caller.release(first.id)
        await caller.wait_started(second.id)
        assert not caller.started.get(third.id, asyncio.Event()).is_set()
        caller.release(second.id)
        caller.release(third.id)
        for run in (first, second, third, other):
            assert await service.wait(run.id, 30)
    assert caller.order == [first.id, other.id, second.id, third.id]
    for run in (first, second, third, other):
        assert (await load_run(db, run.id))[0].status == "succeeded"


async def test_a_late_run_does_not_jump_the_waiting_line(db, account_id, save_pipeline, make_settings):
    await save_pipeline(pipeline_source("limited", concurrency="{limit: 2}"))  # on_conflict: queue
    caller = HeldCaller()
    async with running_service(db, make_settings(), caller, workers=8) as service:
        runs = [
            await service.submit(account_id=account_id, pipeline_name="limited", inputs={}) for _ in range(5)
        ]
        await caller.wait_started(runs[0].id)
        await caller.wait_started(runs[1].id)
        await until(lambda: len(service.gate.waiting_runs(runs[0].pipeline_id)) == 3)
        for run in runs:
            caller.release(run.id)
        for run in runs:
            assert await service.wait(run.id, 30)
    assert caller.order == [run.id for run in runs]


async def test_skip_records_the_run_cancelled_and_never_starts_it(
    db, account_id, save_pipeline, make_settings
):
    await save_pipeline(pipeline_source("skipper", concurrency="{limit: 1, on_conflict: skip}"))
    caller = HeldCaller()
    async with running_service(db, make_settings(), caller) as service:
        first = await service.submit(account_id=account_id, pipeline_name="skipper", inputs={})
        skipped = await service.submit(account_id=account_id, pipeline_name="skipper", inputs={})
        assert skipped.status == "cancelled"
        assert skipped.error is not None
        assert skipped.error["code"] == "concurrency_skipped"
        assert "on_conflict: skip" in skipped.error["message"]
        assert skipped.started_at is None
        assert skipped.finished_at is not None
        caller.release(first.id)
        assert await service.wait(first.id, 30)
        later = await service.submit(account_id=account_id, pipeline_name="skipper", inputs={})
        assert later.status == "queued"
        caller.release(later.id)
        assert await service.wait(later.id, 30)
    assert caller.order == [first.id, later.id]
    assert (await load_run(db, later.id))[0].status == "succeeded"


async def test_fail_records_the_run_failed_with_a_clear_error(db, account_id, save_pipeline, make_settings):
    await save_pipeline(pipeline_source("strict", concurrency="{limit: 1, on_conflict: fail}"))
    caller = HeldCaller()
    async with running_service(db, make_settings(), caller) as service:
        first = await service.submit(account_id=account_id, pipeline_name="strict", inputs={})
        refused = await service.submit(account_id=account_id, pipeline_name="strict", inputs={})
        caller.release(first.id)
        assert await service.wait(first.id, 30)
    stored, steps = await load_run(db, refused.id)
    assert stored.status == "failed"
    assert stored.error["code"] == "concurrency_limit"
    assert stored.error["message"] == (
        "pipeline 'strict' already has 1 run in progress (concurrency limit 1, on_conflict: fail)"
    )
    assert stored.error["details"] == {"limit": 1, "on_conflict": "fail"}
    assert steps == {}
    assert caller.order == [first.id]


async def test_concurrent_submissions_never_pass_a_skip_limit_together(
    db, account_id, save_pipeline, make_settings
):
    await save_pipeline(pipeline_source("burst", concurrency="{limit: 2, on_conflict: skip}"))
    caller = HeldCaller()
    async with running_service(db, make_settings(), caller) as service:
        runs = await asyncio.gather(
            *[service.submit(account_id=account_id, pipeline_name="burst", inputs={}) for _ in range(8)]
        )
        admitted = [run for run in runs if run.status == "queued"]
        assert len(admitted) == 2
        assert sorted(run.status for run in runs) == ["cancelled"] * 6 + ["queued"] * 2
        for run in admitted:
            caller.release(run.id)
            assert await service.wait(run.id, 30)


async def test_the_limit_holds_across_two_processes_sharing_the_database(
    db, account_id, save_pipeline, make_settings
):
    """Two services on one SQLite file stand for two processes: the running count is the database's."""
    await save_pipeline(pipeline_source("shared", concurrency="{limit: 1, on_conflict: queue}"))
    caller = HeldCaller()
    settings = make_settings()
    async with (
        running_service(db, settings, caller) as one,
        running_service(db, settings, caller) as two,
    ):
        first = await one.submit(account_id=account_id, pipeline_name="shared", inputs={})
        await caller.wait_started(first.id)
        second = await two.submit(account_id=account_id, pipeline_name="shared", inputs={})
        # process two finds the pipeline at its limit in the database and keeps the run waiting
        await until(lambda: two.gate.waiting_runs(first.pipeline_id) == [second.id])
        assert await status_of(db, second.id) == "queued"
        caller.release(first.id)
        assert await one.wait(first.id, 30)
        # process two cannot know the slot is free until its periodic chore wakes the waiting run
        await two.tend()
        await caller.wait_started(second.id)
        caller.release(second.id)
        assert await two.wait(second.id, 30)
    assert caller.order == [first.id, second.id]


async def test_claim_is_one_conditional_statement_under_the_limit(
    db, account_id, save_pipeline, make_settings
):
    await save_pipeline(pipeline_source("claims", concurrency="{limit: 1}"))
    async with running_service(db, make_settings(), HeldCaller()) as service:
        a = await service.create_run(account_id=account_id, pipeline_name="claims", inputs={})
        b = await service.create_run(account_id=account_id, pipeline_name="claims", inputs={})
    now = datetime.now(UTC)
    async with db.session() as session:
        repo = RuntimeRepo(session)
        assert await repo.claim(a.id, now, pipeline_id=a.pipeline_id, limit=1) == "claimed"
        assert await repo.claim(b.id, now, pipeline_id=b.pipeline_id, limit=1) == "at_limit"
        assert await repo.claim(a.id, now, pipeline_id=a.pipeline_id, limit=1) == "not_queued"
        assert await repo.claim(b.id, now) == "claimed"  # no limit given: only the state counts
        assert await repo.running_count(a.pipeline_id) == 2
        await session.commit()


async def test_a_cancelled_waiting_run_passes_its_turn_on(db, account_id, save_pipeline, make_settings):
    await save_pipeline(pipeline_source("turns", concurrency="{limit: 1}"))
    caller = HeldCaller()
    async with running_service(db, make_settings(), caller) as service:
        first, second, third = [
            await service.submit(account_id=account_id, pipeline_name="turns", inputs={}) for _ in range(3)
        ]
        await caller.wait_started(first.id)
        await until(lambda: len(service.gate.waiting_runs(first.pipeline_id)) == 2)
        await service.cancel(account_id, second.id)
        assert service.gate.waiting_runs(first.pipeline_id) == [third.id]
        caller.release(first.id)
        caller.release(third.id)
        assert await service.wait(third.id, 30)
    assert (await load_run(db, second.id))[0].status == "cancelled"
    assert caller.order == [first.id, third.id]


def test_the_gate_keeps_fifo_order_and_a_released_run_keeps_its_turn():
    gate = PipelineGate()
    assert not gate.should_wait("p", "a")
    gate.park("p", "a")
    gate.park("p", "b")
    gate.park("p", "a")  # parked twice: once in the line
    assert gate.waiting_runs("p") == ["a", "b"]
    assert gate.should_wait("p", "c")
    assert gate.release("p") == "a"
    assert not gate.should_wait("p", "a")  # released: may try its claim
    assert gate.idle_pipelines() == []
    gate.park("p", "a")  # the claim found no slot (another process took it): back at the front
    assert gate.waiting_runs("p") == ["a", "b"]
    assert gate.idle_pipelines() == ["p"]
    assert gate.release("p") == "a"
    gate.started("a")
    assert gate.dropped("b") is None  # was waiting, not released: nobody to replace
    assert gate.waiting == 0
    assert gate.release("p") is None
    gate.park("p", "c")
    assert gate.release("p") == "c"
    assert gate.dropped("c") == "p"  # a released run that will not start hands its turn on
