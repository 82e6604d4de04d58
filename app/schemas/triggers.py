"""API models of a pipeline's schedule and poll triggers, shown in `GET /v1/pipelines/{name}`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from app.schemas.base import APIModel


class TriggerErrorRead(APIModel):
    """The last error of a trigger."""

    code: str = Field(description="Stable error code, e.g. `http_5xx`, `timeout`, `connection_not_found`")
    message: str
    at: datetime = Field(description="When it happened")
    retry_at: datetime | None = Field(default=None, description="When the trigger tries again (polls)")


class ScheduleRead(APIModel):
    """A schedule trigger and its progress."""

    position: int = Field(description="Index of the trigger in the pipeline's `triggers`")
    cron: str
    timezone: str
    inputs: dict[str, Any] = Field(default_factory=dict, description="Inputs of the scheduled runs")
    next_fire_times: list[datetime] = Field(
        description="The next fire times (up to 3) in the schedule's time zone; none if it never fires again"
    )
    last_fire_at: datetime | None = Field(default=None, description="Fire time of the last run started")
    last_run_id: str | None = None
    fires: int = Field(description="Runs started by this schedule")
    skipped_fires: int = Field(
        description="Fire times not run: missed during downtime (per `schedule_missed_policy`) or refused"
    )
    last_skipped_at: datetime | None = None
    last_error: TriggerErrorRead | None = Field(default=None, description="Why the last fire time failed")


class PollRead(APIModel):
    """A polling trigger and its state."""

    position: int = Field(description="Index of the trigger in the pipeline's `triggers`")
    uses: str = Field(description="CONNECTOR.TRIGGER")
    connection: str | None = None
    every: str | float = Field(description="The polling interval, as declared")
    baselined: bool = Field(description="The first poll (the baseline, which starts no run) is done")
    polls: int = Field(description="Polls done")
    runs_started: int
    last_run_id: str | None = None
    last_polled_at: datetime | None = None
    last_success_at: datetime | None = None
    next_poll_at: datetime | None = Field(default=None, description="When the next poll is due")
    failures: int = Field(description="Failed polls in a row (the interval backs off exponentially)")
    last_error: TriggerErrorRead | None = Field(default=None, description="Why the last poll failed")
    seen_keys: int = Field(description="Dedupe keys remembered (the most recent ones)")
