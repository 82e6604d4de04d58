"""Helpers of the trigger tests (task H2): a run service whose runs stay queued, pipelines saved at a
fake time, and reading back runs and trigger state."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from app.registry import Registry
from app.runtime.pipelines import check_source, spec_document
from app.runtime.queue import InProcessQueue
from app.runtime.service import RunService
from app.runtime.triggers import sync_triggers
from app.settings import Settings
from app.storage.db import Database
from app.storage.models import Pipeline, Run
from app.storage.models_triggers import PollState, TriggerRow
from app.storage.repositories import PipelineRepo
from app.storage.repositories.runs import RunRepo

from ..engine.fakes import FakeCaller


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def settings(**overrides: Any) -> Settings:
    """Settings for tests: the environment ignored; httpx's transport (the one respx mocks)."""
    return Settings.model_validate({"http_retries": 0, "http_transport": "httpx", **overrides})


def queued_runs(db: Database, settings: Settings) -> RunService:
    """A run service whose queue is never started: submitted runs stay ``queued`` (to count them)."""
    runs = RunService(db, settings, FakeCaller())
    runs.attach_queue(InProcessQueue(runs.execute, max_concurrent=1))
    return runs


async def save(
    db: Database, account_id: str, source: str, now: datetime, registry: Registry | None = None
) -> Pipeline:
    """Create the pipeline or add a revision, and register its triggers as of ``now``."""
    source = textwrap.dedent(source)
    spec = check_source(source, registry, max_bytes=262_144)
    async with db.session() as session:
        repo = PipelineRepo(session)
        pipeline = await repo.get(account_id, spec.name)
        if pipeline is None:
            pipeline, revision = await repo.create(account_id, spec.name, source, spec_document(spec))
        else:
            revision = await repo.add_revision(pipeline, source, spec_document(spec))
        await sync_triggers(session, pipeline, spec, revision=revision.number, now=now)
        await session.commit()
        return pipeline


async def runs_of(db: Database, account_id: str, name: str) -> list[Run]:
    """The runs of a pipeline, oldest first."""
    async with db.session() as session:
        rows = await session.scalars(
            select(Run)
            .where(Run.account_id == account_id, Run.pipeline_name == name)
            .order_by(Run.created_at, Run.id)
        )
        return list(rows)


async def fired_at(db: Database, account_id: str, name: str) -> list[str]:
    """``trigger.fired_at`` of a pipeline's runs, in fire-time order."""
    return sorted(run.trigger["fired_at"] for run in await runs_of(db, account_id, name))


async def triggers_of(db: Database, pipeline_id: str) -> list[TriggerRow]:
    async with db.session() as session:
        rows = await session.scalars(
            select(TriggerRow).where(TriggerRow.pipeline_id == pipeline_id).order_by(TriggerRow.created_at)
        )
        return list(rows)


async def poll_state(db: Database, trigger_id: str) -> PollState:
    async with db.session() as session:
        state = await session.get(PollState, trigger_id)
        assert state is not None
        return state


async def run_steps(db: Database, run_id: str) -> Any:
    async with db.session() as session:
        return list(await RunRepo(session).steps(run_id))
