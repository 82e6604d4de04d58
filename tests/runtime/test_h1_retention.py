"""Retention: finished runs and their steps pruned by age and by count per pipeline, in batches;
queued and running runs never; the server's maintenance loop prunes and tends on its own."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.engine.types import StepResult, StepStatus
from app.runtime import retention
from app.runtime.maintenance import Maintenance
from app.runtime.retention import prune_runs
from app.runtime.service import RunService
from app.storage.models import Run, StepRun
from app.storage.repositories import PipelineRepo, RunRepo

from .h1_support import HeldCaller, pipeline_source

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


async def seed(
    db, account_id: str, pipeline: str, ages_days: list[float], status: str = "succeeded"
) -> list[str]:
    """One run per age (days before NOW) with one step row each; returns their ids, oldest first."""
    ids: list[str] = []
    async with db.session() as session:
        found = await PipelineRepo(session).get(account_id, pipeline)
        assert found is not None
        repo = RunRepo(session)
        for age in sorted(ages_days, reverse=True):
            run = await repo.create(
                account_id=account_id, pipeline=found, revision=1, inputs={}, trigger={"kind": "manual"}
            )
            run.created_at = NOW - timedelta(days=age)
            run.status = status
            step = StepResult("work", StepStatus.SUCCEEDED, 1, run.created_at, run.created_at, {"n": 1})
            await repo.upsert_steps(run.id, [step], 10_000)
            ids.append(run.id)
        await session.commit()
    return ids


async def remaining(db) -> tuple[set[str], int]:
    async with db.session() as session:
        runs = set(await session.scalars(select(Run.id)))
        steps = await session.scalar(select(func.count()).select_from(StepRun)) or 0
        return runs, steps


async def test_prune_by_age_deletes_old_finished_runs_and_their_steps(db, account_id, save_pipeline):
    await save_pipeline(pipeline_source("aged"))
    old = await seed(db, account_id, "aged", [40, 35, 31])
    young = await seed(db, account_id, "aged", [29, 1])
    stuck = await seed(db, account_id, "aged", [90], status="queued")
    report = await prune_runs(db, retention_days=30, max_per_pipeline=0, now=NOW)
    assert (report.by_age, report.by_count, report.total) == (3, 0, 3)
    runs, steps = await remaining(db)
    assert runs == set(young + stuck)
    assert not runs & set(old)
    assert steps == 3


async def test_prune_by_count_keeps_the_newest_runs_of_each_pipeline(db, account_id, save_pipeline):
    await save_pipeline(pipeline_source("busy"))
    await save_pipeline(pipeline_source("calm"))
    busy = await seed(db, account_id, "busy", [float(n) for n in range(10)])  # oldest first
    running = await seed(db, account_id, "busy", [20], status="running")
    calm = await seed(db, account_id, "calm", [5, 4])
    report = await prune_runs(db, retention_days=0, max_per_pipeline=3, now=NOW)
    assert report.by_count == 7
    runs, _ = await remaining(db)
    assert runs == set(busy[-3:] + running + calm)  # the 3 newest; the running one is never pruned


async def test_prune_works_in_batches(db, account_id, save_pipeline, monkeypatch):
    monkeypatch.setattr(retention, "BATCH_SIZE", 4)
    await save_pipeline(pipeline_source("many"))
    await seed(db, account_id, "many", [100 + n for n in range(11)])
    keep = await seed(db, account_id, "many", [1])
    report = await prune_runs(db, retention_days=30, max_per_pipeline=0, now=NOW)
    assert report.by_age == 11
    assert (await remaining(db))[0] == set(keep)


async def test_zero_means_keep_forever(db, account_id, save_pipeline):
    await save_pipeline(pipeline_source("forever"))
    ids = await seed(db, account_id, "forever", [1000, 500, 1])
    assert (await prune_runs(db, retention_days=0, max_per_pipeline=0, now=NOW)).total == 0
    assert (await remaining(db))[0] == set(ids)


class SteppedSleep:
    """A sleep the test steps through: each call records its delay and waits for the next step."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._turn = asyncio.Condition()
        self._allowed = 0

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        async with self._turn:
            await self._turn.wait_for(lambda: self._allowed > 0)
            self._allowed -= 1

    async def step(self, turns: int = 1) -> None:
        async with self._turn:
            self._allowed += turns
            self._turn.notify_all()


async def test_the_maintenance_loops_prune_and_tend_without_waiting(
    db, account_id, save_pipeline, make_settings
):
    await save_pipeline(pipeline_source("looped"))
    ids = await seed(db, account_id, "looped", [60, 50, 2])
    settings = make_settings(run_retention_days=30, run_prune_interval_seconds=600, run_heartbeat_seconds=2)
    service = RunService(db, settings, HeldCaller())
    tended: list[datetime] = []

    async def tend(now: datetime | None = None):
        tended.append(now or NOW)
        return await RunService.tend(service, now)

    service.tend = tend  # type: ignore[method-assign]
    sleep = SteppedSleep()
    maintenance = Maintenance(service, db, settings, clock=lambda: NOW, sleep=sleep)
    await maintenance.start()
    try:
        for _ in range(200):
            if len(sleep.delays) >= 2:
                break
            await asyncio.sleep(0)
        assert sorted(sleep.delays) == [2, 60]  # first heartbeat after 2s, first prune after 60s
        await sleep.step(2)
        for _ in range(500):
            if tended and len((await remaining(db))[0]) == 1:
                break
            await asyncio.sleep(0.01)
        assert tended == [NOW]
        assert (await remaining(db))[0] == {ids[-1]}
    finally:
        await maintenance.stop()
    await maintenance.stop()  # idempotent


async def test_a_failing_chore_is_logged_and_the_loop_goes_on(db, make_settings, caplog):
    settings = make_settings()
    service = RunService(db, settings, HeldCaller())
    calls = 0

    async def tend(now: datetime | None = None):
        nonlocal calls
        calls += 1
        raise RuntimeError("database unavailable")

    service.tend = tend  # type: ignore[method-assign]
    sleep = SteppedSleep()
    maintenance = Maintenance(service, db, settings, sleep=sleep)
    await maintenance.start()
    try:
        await sleep.step(3)
        for _ in range(500):
            if calls >= 2:
                break
            await asyncio.sleep(0.01)
        assert calls >= 2
    finally:
        await maintenance.stop()
    assert "runtime maintenance: tend failed" in caplog.text


@pytest.mark.parametrize("bad", [{"run_retention_days": -1}, {"run_heartbeat_seconds": 0}])
def test_retention_settings_refuse_nonsense(make_settings, bad):
    with pytest.raises(ValueError, match="greater than"):
        make_settings(**bad)
