"""Schedule and poll triggers: the registry kept in step with pipeline revisions, schedule fires and
poll state (cursor, dedupe window, lease). See :mod:`app.storage.models_triggers`.

Every write that decides "who handles this" is a compare-and-set in SQL, so several processes can
share a database: a schedule fire is a row whose primary key (trigger, fire time) refuses a second
insert, the schedule's progress only moves forward, and a poll is claimed with a lease that a
conditional ``UPDATE`` grants to one process at a time.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict
from app.storage.base import new_id
from app.storage.models import Pipeline
from app.storage.models_triggers import PollState, ScheduleFire, TriggerRow

TRIGGER_KINDS = ("schedule", "poll")


class StaleTrigger(Conflict):
    """The trigger's state moved on meanwhile (another process fired the schedule or holds the poll);
    raised inside a run's transaction so the run is rolled back with it."""

    code = "trigger_stale"


@dataclass(frozen=True, slots=True)
class DeclaredTrigger:
    """A schedule or poll trigger as a revision declares it."""

    kind: str  # schedule | poll
    position: int  # index in the revision's `triggers`
    identity: str  # sha256 of the parameters that define what the trigger watches
    params: dict[str, Any]  # every parameter, as JSON


def _rowcount(result: Any) -> int:
    return result.rowcount if isinstance(result, CursorResult) else 0


class TriggerRepo:
    """Triggers of pipelines and their state. Never commits: the caller does."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- the registry -----------------------------------------------------------------------------

    async def for_pipeline(self, pipeline_id: str, *, active_only: bool = True) -> builtins.list[TriggerRow]:
        """The pipeline's triggers, by position."""
        statement = select(TriggerRow).where(TriggerRow.pipeline_id == pipeline_id)
        if active_only:
            statement = statement.where(TriggerRow.active.is_(True))
        return list(
            await self.session.scalars(statement.order_by(TriggerRow.position, TriggerRow.created_at))
        )

    async def poll_states(self, trigger_ids: Sequence[str]) -> dict[str, PollState]:
        """The poll state of each of these triggers, by trigger id."""
        if not trigger_ids:
            return {}
        rows = await self.session.scalars(
            select(PollState).where(PollState.trigger_id.in_(list(trigger_ids)))
        )
        return {row.trigger_id: row for row in rows}

    async def sync(
        self, pipeline: Pipeline, revision: int, declared: Sequence[DeclaredTrigger], now: datetime
    ) -> builtins.list[TriggerRow]:
        """Make the pipeline's active triggers those ``declared`` by its latest revision.

        A declared trigger keeps the row (and state) of an existing trigger of the same kind and
        identity, preferably at the same position; its other parameters are updated. New triggers
        get a row (a schedule counts its fire times from ``now``; a poll is due at once, for its
        baseline); rows no longer declared become inactive. Returns the active rows, by position.
        """
        existing = await self.for_pipeline(pipeline.id, active_only=False)
        unmatched = list(existing)
        matched: builtins.list[tuple[DeclaredTrigger, TriggerRow | None]] = []
        pending = list(declared)
        # exact (kind, identity, position) first, then the same trigger moved to another position,
        # preferring the active row
        for exact in (True, False):
            still: builtins.list[DeclaredTrigger] = []
            for item in pending:
                candidates = [
                    row
                    for row in unmatched
                    if row.kind == item.kind
                    and row.identity == item.identity
                    and (row.position == item.position or not exact)
                ]
                if candidates:
                    row = sorted(candidates, key=lambda r: (not r.active, r.created_at))[0]
                    unmatched.remove(row)
                    matched.append((item, row))
                else:
                    still.append(item)
            pending = still
        matched.extend((item, None) for item in pending)

        active: builtins.list[TriggerRow] = []
        new_polls: builtins.list[str] = []
        for item, found in matched:
            if found is None:
                found = TriggerRow(
                    id=new_id(),
                    account_id=pipeline.account_id,
                    pipeline_id=pipeline.id,
                    kind=item.kind,
                    position=item.position,
                    identity=item.identity,
                    params=item.params,
                    revision=revision,
                    active=True,
                    created_at=now,
                    updated_at=now,
                    fired_through=now if item.kind == "schedule" else None,
                    fires=0,
                    skipped_fires=0,
                )
                self.session.add(found)
                if item.kind == "poll":
                    new_polls.append(found.id)
            else:
                if not found.active and found.kind == "schedule":
                    # a schedule coming back counts from now: the time it was off is not "missed"
                    found.fired_through, found.next_fire_at = now, None
                if found.params != item.params or found.position != item.position or not found.active:
                    found.updated_at = now
                found.params, found.position, found.revision, found.active = (
                    item.params,
                    item.position,
                    revision,
                    True,
                )
                if found.kind == "schedule":
                    found.next_fire_at = None  # recomputed by the scheduler
            active.append(found)
        for row in unmatched:
            if row.active:
                row.active, row.updated_at, row.next_fire_at = False, now, None
        await self.session.flush()  # the trigger rows first: poll_state refers to them
        for trigger_id in new_polls:
            self.session.add(
                PollState(
                    trigger_id=trigger_id,
                    cursor=None,
                    seen=[],
                    baselined=False,
                    next_poll_at=now,
                    polls=0,
                    runs_started=0,
                    failures=0,
                )
            )
        await self.session.flush()
        return sorted(active, key=lambda row: row.position)

    # -- schedules --------------------------------------------------------------------------------

    async def due_schedules(self, now: datetime, limit: int = 500) -> builtins.list[tuple[TriggerRow, str]]:
        """Active schedules due at ``now`` (or not yet planned), with their pipeline's name."""
        statement = (
            select(TriggerRow, Pipeline.name)
            .join(Pipeline, Pipeline.id == TriggerRow.pipeline_id)
            .where(
                TriggerRow.kind == "schedule",
                TriggerRow.active.is_(True),
                or_(TriggerRow.next_fire_at.is_(None), TriggerRow.next_fire_at <= now),
            )
            .order_by(TriggerRow.next_fire_at)
            .limit(limit)
        )
        return [(row, name) for row, name in (await self.session.execute(statement)).all()]

    async def next_fire_at(self) -> datetime | None:
        """The earliest planned fire time of the active schedules."""
        statement = select(func.min(TriggerRow.next_fire_at)).where(
            TriggerRow.kind == "schedule", TriggerRow.active.is_(True)
        )
        value: datetime | None = await self.session.scalar(statement)
        return value

    async def advance_schedule(
        self,
        trigger_id: str,
        *,
        through: datetime,
        next_fire_at: datetime | None,
        now: datetime,
        skipped: int = 0,
        fire: tuple[datetime, str] | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        """Move a schedule forward to ``through`` (every fire time up to it is handled).

        ``fire = (fire time, run id)`` records the fire that started a run, in the caller's (the
        run's) transaction: a second insert of the same fire time fails with ``IntegrityError``.
        ``StaleTrigger`` when the schedule was already moved to ``through`` or beyond (another
        process got there first) or is no longer active; the caller's transaction must then be
        rolled back.
        """
        if fire is not None:
            self.session.add(
                ScheduleFire(trigger_id=trigger_id, fire_time=fire[0], run_id=fire[1], created_at=now)
            )
            await self.session.flush()
        values: dict[str, Any] = {
            "fired_through": through,
            "next_fire_at": next_fire_at,
            "skipped_fires": TriggerRow.skipped_fires + skipped,
        }
        if skipped:
            values["last_skipped_at"] = now
        if fire is not None:
            values.update(
                last_fire_at=fire[0], last_run_id=fire[1], fires=TriggerRow.fires + 1, last_error=None
            )
        if error is not None:
            values["last_error"] = error
        statement = (
            update(TriggerRow)
            .where(
                TriggerRow.id == trigger_id,
                TriggerRow.active.is_(True),
                or_(TriggerRow.fired_through.is_(None), TriggerRow.fired_through < through),
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if _rowcount(await self.session.execute(statement)) != 1:
            raise StaleTrigger("the schedule was already handled up to this fire time by another process")

    async def plan_schedule(self, trigger_id: str, next_fire_at: datetime | None) -> None:
        """Record when a schedule fires next (it has nothing due now)."""
        await self.session.execute(
            update(TriggerRow)
            .where(TriggerRow.id == trigger_id)
            .values(next_fire_at=next_fire_at)
            .execution_options(synchronize_session=False)
        )

    async def fires(self, trigger_id: str) -> builtins.list[ScheduleFire]:
        """The fires of a schedule that started runs, oldest first."""
        statement = (
            select(ScheduleFire).where(ScheduleFire.trigger_id == trigger_id).order_by(ScheduleFire.fire_time)
        )
        return list(await self.session.scalars(statement))

    async def prune_fires(self, before: datetime) -> int:
        """Forget fires older than ``before`` (the schedule's progress already covers them)."""
        result = await self.session.execute(
            delete(ScheduleFire)
            .where(ScheduleFire.fire_time < before)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result)

    # -- polls ------------------------------------------------------------------------------------

    async def due_polls(
        self, now: datetime, limit: int = 100
    ) -> builtins.list[tuple[TriggerRow, PollState, str]]:
        """Active poll triggers due at ``now`` and not leased, with their state and pipeline's name."""
        statement = (
            select(TriggerRow, PollState, Pipeline.name)
            .join(PollState, PollState.trigger_id == TriggerRow.id)
            .join(Pipeline, Pipeline.id == TriggerRow.pipeline_id)
            .where(
                TriggerRow.kind == "poll",
                TriggerRow.active.is_(True),
                PollState.next_poll_at <= now,
                or_(PollState.lease_until.is_(None), PollState.lease_until <= now),
            )
            .order_by(PollState.next_poll_at)
            .limit(limit)
        )
        return [(row, state, name) for row, state, name in (await self.session.execute(statement)).all()]

    async def next_poll_at(self) -> datetime | None:
        """The earliest time an active poll trigger is due (or its lease ends)."""
        due = case(
            (PollState.lease_until > PollState.next_poll_at, PollState.lease_until),
            else_=PollState.next_poll_at,
        )
        statement = (
            select(func.min(due))
            .join(TriggerRow, TriggerRow.id == PollState.trigger_id)
            .where(TriggerRow.kind == "poll", TriggerRow.active.is_(True))
        )
        value: datetime | None = await self.session.scalar(statement)
        return value

    async def claim_poll(
        self, trigger_id: str, token: str, now: datetime, lease_until: datetime
    ) -> tuple[TriggerRow, PollState] | None:
        """Take the poll of a trigger until ``lease_until`` when it is due and nobody holds it; gives
        the trigger and its state as they are now (read after the claim), or None."""
        statement = (
            update(PollState)
            .where(
                PollState.trigger_id == trigger_id,
                PollState.next_poll_at <= now,
                or_(PollState.lease_until.is_(None), PollState.lease_until <= now),
            )
            .values(lease_token=token, lease_until=lease_until)
            .execution_options(synchronize_session=False)
        )
        if _rowcount(await self.session.execute(statement)) != 1:
            return None
        fresh = (
            await self.session.execute(
                select(TriggerRow, PollState)
                .join(PollState, PollState.trigger_id == TriggerRow.id)
                .where(TriggerRow.id == trigger_id)
                .execution_options(populate_existing=True)
            )
        ).first()
        return None if fresh is None else (fresh[0], fresh[1])

    async def finish_poll(
        self,
        trigger_id: str,
        token: str,
        *,
        cursor: Any,
        seen: builtins.list[str],
        next_poll_at: datetime,
        now: datetime,
        run_id: str | None = None,
    ) -> None:
        """Store a successful poll (cursor, dedupe window, baseline done), release the lease.

        Called in the transaction of the run it starts, if any. ``StaleTrigger`` when the lease was
        lost (it expired and another process polled): the caller's transaction must be rolled back.
        """
        values: dict[str, Any] = {
            "cursor": cursor,
            "seen": seen,
            "baselined": True,
            "next_poll_at": next_poll_at,
            "lease_token": None,
            "lease_until": None,
            "polls": PollState.polls + 1,
            "last_polled_at": now,
            "last_success_at": now,
            "failures": 0,
            "last_error": None,
        }
        if run_id is not None:
            values.update(runs_started=PollState.runs_started + 1, last_run_id=run_id)
        statement = (
            update(PollState)
            .where(PollState.trigger_id == trigger_id, PollState.lease_token == token)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if _rowcount(await self.session.execute(statement)) != 1:
            raise StaleTrigger("the poll's lease was lost (it took too long and another process polled)")

    async def fail_poll(
        self, trigger_id: str, token: str, *, error: dict[str, Any], next_poll_at: datetime, now: datetime
    ) -> bool:
        """Record a failed poll (the cursor and window stay as they were), release the lease; False
        when the lease was lost meanwhile."""
        statement = (
            update(PollState)
            .where(PollState.trigger_id == trigger_id, PollState.lease_token == token)
            .values(
                lease_token=None,
                lease_until=None,
                next_poll_at=next_poll_at,
                polls=PollState.polls + 1,
                last_polled_at=now,
                failures=PollState.failures + 1,
                last_error=error,
            )
            .execution_options(synchronize_session=False)
        )
        return _rowcount(await self.session.execute(statement)) == 1
