"""Tables of the schedule and poll triggers: the trigger registry, schedule fires and poll state.

::

    pipelines ─< triggers ─┬─< schedule_fires      (one row per fire time that started a run)
                           └── poll_state          (one row per poll trigger: cursor, dedupe window, lease)

A ``triggers`` row is the durable identity of one schedule or poll trigger of a pipeline: its
``identity`` is a hash of the parameters that define WHAT it watches (a schedule's cron and time
zone; a poll's ``uses``, ``with`` and ``connection``), so a new revision that keeps the trigger keeps
its row and its state, while the other parameters (schedule ``inputs``, poll ``every``) are updated
in place. A trigger that disappears from the latest revision is kept ``active = false`` (its cursor
survives if it comes back). The rows go with the pipeline (``ON DELETE CASCADE``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.storage.base import ID_LENGTH, Base, new_id, utcnow
from app.storage.types import JSONDocument, UTCDateTime

__all__ = ["PollState", "ScheduleFire", "TriggerRow"]


class TriggerRow(Base):
    """A schedule or poll trigger of a pipeline, with the schedule's progress."""

    __tablename__ = "triggers"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )
    pipeline_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # schedule | poll
    position: Mapped[int] = mapped_column(Integer, nullable=False)  # index in the revision's `triggers`
    identity: Mapped[str] = mapped_column(String(64), nullable=False)  # sha256 of the defining parameters
    params: Mapped[dict[str, Any]] = mapped_column(JSONDocument, nullable=False)  # the trigger as declared
    revision: Mapped[int] = mapped_column(Integer, nullable=False)  # latest revision declaring it
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    # schedules: every fire time <= fired_through is handled (ran or skipped by the missed-fire policy)
    fired_through: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    next_fire_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_fire_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_run_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    fires: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # runs started
    skipped_fires: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_skipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument, nullable=True)

    __table_args__ = (
        Index("ix_triggers_pipeline_id_kind", "pipeline_id", "kind"),
        Index("ix_triggers_kind_active_next_fire_at", "kind", "active", "next_fire_at"),
    )


class ScheduleFire(Base):
    """One fire time of a schedule that started a run.

    The primary key (trigger, fire time), a unique constraint, makes a fire time start exactly one
    run however many schedulers race for it: the row is inserted in the run's own transaction, and
    the loser's insert fails (its run is rolled back with it)."""

    __tablename__ = "schedule_fires"

    trigger_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("triggers.id", ondelete="CASCADE"), primary_key=True
    )
    fire_time: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(ID_LENGTH), nullable=False)  # no foreign key: runs are pruned
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    __table_args__ = (Index("ix_schedule_fires_fire_time", "fire_time"),)


class PollState(Base):
    """The state of a poll trigger: the connector's cursor, the dedupe keys seen, when to poll next,
    who holds the poll right now (a lease) and how the last polls went."""

    __tablename__ = "poll_state"

    trigger_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("triggers.id", ondelete="CASCADE"), primary_key=True
    )
    cursor: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    seen: Mapped[list[str]] = mapped_column(JSONDocument, nullable=False, default=list)  # oldest first
    baselined: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    next_poll_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    lease_token: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    polls: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    runs_started: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_run_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # consecutive
    last_error: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument, nullable=True)

    __table_args__ = (Index("ix_poll_state_next_poll_at", "next_poll_at"),)
