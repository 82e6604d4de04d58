"""A pipeline's schedule and poll triggers as API models (the `schedules` and `polls` of its view)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import MashpipeError
from app.runtime.cron import CronSchedule
from app.schemas.triggers import PollRead, ScheduleRead, TriggerErrorRead
from app.storage.models_triggers import PollState, TriggerRow
from app.storage.repositories.triggers import TriggerRepo

NEXT_FIRE_TIMES = 3


def _error(value: dict[str, Any] | None) -> TriggerErrorRead | None:
    if not value:
        return None
    try:
        return TriggerErrorRead.model_validate(value)
    except ValueError:
        return None


def schedule_read(row: TriggerRow, now: datetime) -> ScheduleRead:
    params = row.params
    try:
        schedule = CronSchedule(str(params.get("cron")), str(params.get("timezone") or "UTC"))
        upcoming = [moment.astimezone(schedule.zone) for moment in schedule.next_times(now, NEXT_FIRE_TIMES)]
    except MashpipeError:
        upcoming = []
    return ScheduleRead(
        position=row.position,
        cron=str(params.get("cron")),
        timezone=str(params.get("timezone") or "UTC"),
        inputs=dict(params.get("inputs") or {}),
        next_fire_times=upcoming,
        last_fire_at=row.last_fire_at,
        last_run_id=row.last_run_id,
        fires=row.fires,
        skipped_fires=row.skipped_fires,
        last_skipped_at=row.last_skipped_at,
        last_error=_error(row.last_error),
    )


def poll_read(row: TriggerRow, state: PollState | None) -> PollRead:
    params = row.params
    return PollRead(
        position=row.position,
        uses=str(params.get("uses")),
        connection=params.get("connection"),
        every=params.get("every", "5m"),
        baselined=bool(state and state.baselined),
        polls=state.polls if state else 0,
        runs_started=state.runs_started if state else 0,
        last_run_id=state.last_run_id if state else None,
        last_polled_at=state.last_polled_at if state else None,
        last_success_at=state.last_success_at if state else None,
        next_poll_at=state.next_poll_at if state else None,
        failures=state.failures if state else 0,
        last_error=_error(state.last_error if state else None),
        seen_keys=len(state.seen or []) if state else 0,
    )


async def trigger_reads(
    session: AsyncSession, pipeline_id: str, now: datetime | None = None
) -> dict[str, Any]:
    """``{"schedules": [...], "polls": [...]}`` of the pipeline, ready for ``PipelineRead.model_copy``."""
    now = now or datetime.now(UTC)
    repo = TriggerRepo(session)
    rows = await repo.for_pipeline(pipeline_id)
    states = await repo.poll_states([row.id for row in rows if row.kind == "poll"])
    return {
        "schedules": [schedule_read(row, now) for row in rows if row.kind == "schedule"],
        "polls": [poll_read(row, states.get(row.id)) for row in rows if row.kind == "poll"],
    }


def wake_trigger_loops(request: Request) -> None:
    """Tell this process's scheduler and poller to re-read their triggers (a pipeline was saved)."""
    state = getattr(request.app.state, "mashpipe", None)
    for loop in (getattr(state, "scheduler", None), getattr(state, "poller", None)):
        if loop is not None:
            loop.wake()
