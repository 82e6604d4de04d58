"""The scheduler: starts a run at each fire time of each active schedule trigger.

One loop per server process (:meth:`Scheduler.start`): it fires what is due, then sleeps until the
earliest planned fire time (or ``trigger_idle_seconds``, to notice schedules saved by other
processes), on an injectable :class:`~app.runtime.clock.Clock`.

**Exactly once.** A fire time starts its run through :meth:`RunService.submit` with, in the SAME
transaction as the run, a ``schedule_fires`` row whose primary key is (trigger, fire time) and a
forward-only move of the schedule's progress (``fired_through``). Two schedulers racing for a fire
time both try; the second insert fails (``IntegrityError``) or finds the progress already moved
(``StaleTrigger``), its transaction, run included, is rolled back, and it goes on. No lock in memory.

**DST.** Fire times come from :class:`~app.runtime.cron.CronSchedule` (a skipped wall-clock time
fires once when the clock jumps; a repeated one fires at its first occurrence).

**Downtime.** Fire times found more than ``schedule_misfire_grace_seconds`` late were missed; the
``schedule_missed_policy`` setting decides: ``latest`` (default) runs once for the latest due fire
time, ``all`` runs each (the most recent ``schedule_catchup_max``), ``none`` runs only those on time.
Every fire time not run is counted in ``skipped_fires`` (and logged), never dropped silently.

The run's ``trigger`` is ``{kind: "schedule", fired_at, local_time, cron, timezone}``; the
schedule's ``inputs`` may use ``${{ trigger.fired_at }}`` (or ``now()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import MashpipeError
from app.pipelines.expressions import Scope, compile_value
from app.runtime.background import ERROR_PAUSE, BackgroundLoop, seconds_until
from app.runtime.clock import Clock
from app.runtime.cron import CronSchedule
from app.runtime.queue import QueueClosed
from app.runtime.service import RunService
from app.settings import Settings
from app.storage.db import Database
from app.storage.models import Run
from app.storage.models_triggers import TriggerRow
from app.storage.repositories.triggers import StaleTrigger, TriggerRepo

logger = logging.getLogger("mashpipe.scheduler")

COUNT_CAP = 1000  # missed fire times are counted up to this many per scheduler pass (then "1000+")
LONG_GAP = timedelta(hours=1)  # planning a longer catch-up is CPU work: done in a thread
FIRES_KEPT = timedelta(days=7)  # schedule_fires rows older than this are pruned (progress covers them)
PRUNE_EVERY = timedelta(hours=1)
FIRE_CONCURRENCY = 16  # schedules handled at once in a pass (their fire times stay in order per schedule)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _error(code: str, message: str, at: datetime) -> dict[str, Any]:
    return {"code": code, "message": message, "at": _iso(at)}


@dataclass(slots=True)
class SchedulerPass:
    """What one pass of the scheduler did."""

    started: list[tuple[str, datetime, str]] = field(default_factory=list)
    """``(trigger id, fire time, run id)`` of the runs started."""
    skipped: int = 0
    """Fire times not run (missed, per the policy)."""
    lost: int = 0
    """Fire times another process started first."""
    errors: int = 0
    """Fire times that could not be handled this pass (retried on the next)."""


@dataclass(slots=True)
class _Plan:
    run: list[datetime]
    skipped: int
    through: datetime | None  # the latest due fire time (None: nothing due)
    capped: bool = False  # more missed fire times than COUNT_CAP: ``skipped`` is a lower bound


class Scheduler(BackgroundLoop):
    """Fires the schedule triggers of every account. See the module docstring.

    Stopping it: a fire in progress is rolled back or committed as a whole."""

    task_name = "mashpipe-scheduler"
    logger = logger

    def __init__(
        self,
        db: Database,
        runs: RunService,
        settings: Settings,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._db = db
        self._runs = runs
        self._settings = settings
        super().__init__(clock)
        self._schedules: dict[tuple[str, str], CronSchedule] = {}
        self._pruned_at: datetime | None = None

    # -- the loop ---------------------------------------------------------------------------------

    async def one_pass(self, now: datetime) -> float:
        """Fire what is due; sleep until the next fire time, at least :data:`ERROR_PAUSE` after errors
        (see :meth:`BackgroundLoop.run`)."""
        done = await self.tick(now)
        async with self._db.session() as session:
            planned = await TriggerRepo(session).next_fire_at()
        delay = seconds_until(planned, self.clock.now(), self._settings.trigger_idle_seconds)
        return max(delay, ERROR_PAUSE) if done.errors else delay

    # -- one pass ---------------------------------------------------------------------------------

    async def tick(self, now: datetime | None = None) -> SchedulerPass:
        """Handle every schedule due at ``now`` (default: the clock's time)."""
        now = now or self.clock.now()
        done = SchedulerPass()
        async with self._db.session() as session:
            due = await TriggerRepo(session).due_schedules(now)
        slots = asyncio.Semaphore(FIRE_CONCURRENCY)

        async def handle(row: TriggerRow, pipeline_name: str) -> None:
            async with slots:
                try:
                    await self._handle(row, pipeline_name, now, done)
                except (DBAPIError, OSError) as exc:  # e.g. the database is busy: next pass
                    logger.warning("schedule %s: %s; retried on the next pass", row.id, exc)
                    done.errors += 1
                except Exception:
                    logger.exception("schedule %s: unexpected error; retried on the next pass", row.id)
                    done.errors += 1

        await asyncio.gather(*(handle(row, pipeline_name) for row, pipeline_name in due))
        await self._prune(now)
        return done

    def _schedule(self, params: dict[str, Any]) -> CronSchedule:
        key = (str(params.get("cron")), str(params.get("timezone") or "UTC"))
        schedule = self._schedules.get(key)
        if schedule is None:
            schedule = self._schedules[key] = CronSchedule(*key)
        return schedule

    def _plan(self, schedule: CronSchedule, since: datetime, now: datetime) -> _Plan:
        """Which due fire times in ``(since, now]`` to run: those on time always, the missed ones
        (more than the grace late) per the missed-fire policy."""
        grace_start = max(since, now - timedelta(seconds=self._settings.schedule_misfire_grace_seconds))
        on_time = schedule.between(grace_start, now, limit=COUNT_CAP)
        latest_missed = schedule.between(since, grace_start, limit=1)
        if not on_time and not latest_missed:
            return _Plan([], 0, None)
        missed = schedule.count_between(since, grace_start, cap=COUNT_CAP) if latest_missed else 0
        policy = self._settings.schedule_missed_policy
        if policy == "latest":
            catch_up = [] if on_time else latest_missed
        elif policy == "all":
            catch_up = schedule.between(since, grace_start, limit=self._settings.schedule_catchup_max)
        else:  # none
            catch_up = []
        through = on_time[-1] if on_time else latest_missed[-1]
        return _Plan(catch_up + on_time, missed - len(catch_up), through, capped=missed >= COUNT_CAP)

    async def _handle(self, row: TriggerRow, pipeline_name: str, now: datetime, done: SchedulerPass) -> None:
        try:
            schedule = self._schedule(row.params)
        except MashpipeError as exc:  # a stored schedule the cron module refuses: never due again
            await self._advance(
                row, now, next_fire_at=None, error=_error("invalid_schedule", exc.message, now)
            )
            return
        since = row.fired_through or now
        if since >= now:
            plan = _Plan([], 0, None)
        elif now - since > LONG_GAP:  # a catch-up after downtime: keep the event loop responsive
            plan = await asyncio.to_thread(self._plan, schedule, since, now)
        else:
            plan = self._plan(schedule, since, now)
        if plan.through is None:  # nothing due: plan the next fire time
            async with self._db.session() as session:
                await TriggerRepo(session).plan_schedule(row.id, schedule.next_after(max(since, now)))
                await session.commit()
            return
        next_fire_at = schedule.next_after(plan.through)
        if plan.skipped:
            logger.warning(
                "schedule %s of pipeline %r: %s missed fire time(s) up to %s not run "
                "(schedule_missed_policy=%s)",
                row.id,
                pipeline_name,
                f"{plan.skipped}+" if plan.capped else plan.skipped,
                _iso(plan.through),
                self._settings.schedule_missed_policy,
            )
            done.skipped += plan.skipped
        if not plan.run:
            with contextlib.suppress(StaleTrigger):
                await self._advance(
                    row, now, through=plan.through, next_fire_at=next_fire_at, skipped=plan.skipped
                )
            return
        skipped = plan.skipped
        for index, fire in enumerate(plan.run):
            last = index == len(plan.run) - 1
            through = plan.through if last else fire
            await self._fire(
                row,
                pipeline_name,
                schedule,
                fire,
                now,
                through=through,
                next_fire_at=next_fire_at if last else schedule.next_after(fire),
                skipped=skipped,
                done=done,
            )
            # the skipped fire times are counted once: with this fire (run or failed), or by the
            # process that won it
            skipped = 0

    async def _fire(
        self,
        row: TriggerRow,
        pipeline_name: str,
        schedule: CronSchedule,
        fire: datetime,
        now: datetime,
        *,
        through: datetime,
        next_fire_at: datetime | None,
        skipped: int,
        done: SchedulerPass,
    ) -> Run | None:
        """Start the run of one fire time; None when another process did, or it could not start."""
        trigger = {
            "kind": "schedule",
            "fired_at": _iso(fire),
            "local_time": fire.astimezone(schedule.zone).isoformat(),
            "cron": schedule.cron,
            "timezone": schedule.timezone,
        }

        async def record(session: AsyncSession, run: Run) -> None:
            await TriggerRepo(session).advance_schedule(
                row.id,
                through=through,
                next_fire_at=next_fire_at,
                now=now,
                skipped=skipped,
                fire=(fire, run.id),
            )

        try:
            inputs = self._inputs(row.params.get("inputs") or {}, trigger)
            run = await self._runs.submit(
                account_id=row.account_id,
                pipeline_name=pipeline_name,
                inputs=inputs,
                trigger=trigger,
                in_transaction=record,
            )
        except (IntegrityError, StaleTrigger):
            logger.debug("schedule %s: fire time %s was started by another process", row.id, _iso(fire))
            done.lost += 1
            return None
        except QueueClosed:  # the run and its fire are recorded; the run starts after a restart
            logger.info("schedule %s: fire time %s recorded while shutting down", row.id, _iso(fire))
            return None
        except MashpipeError as exc:
            # the run cannot be created (inputs refused, pipeline gone...): recorded, not retried forever
            logger.warning("schedule %s: fire time %s could not start a run: %s", row.id, _iso(fire), exc)
            with contextlib.suppress(StaleTrigger):
                await self._advance(
                    row,
                    now,
                    through=through,
                    next_fire_at=next_fire_at,
                    skipped=skipped + 1,
                    error=_error(exc.code, f"fire time {_iso(fire)}: {exc.message}", now),
                )
            return None
        done.started.append((row.id, fire, run.id))
        logger.info(
            "schedule %s of pipeline %r fired for %s: run %s", row.id, pipeline_name, _iso(fire), run.id
        )
        return run

    def _inputs(self, raw: dict[str, Any], trigger: dict[str, Any]) -> dict[str, Any]:
        """The schedule's inputs, with ``${{ }}`` evaluated against ``trigger``."""
        scope = Scope({"trigger": trigger})
        values: dict[str, Any] = {}
        for name, value in raw.items():
            try:
                values[name] = compile_value(value).evaluate(scope)
            except Exception as exc:
                raise MashpipeError(f"schedule input {name!r}: {exc}") from None
        return values

    async def _advance(
        self,
        row: TriggerRow,
        now: datetime,
        *,
        through: datetime | None = None,
        next_fire_at: datetime | None,
        skipped: int = 0,
        error: dict[str, Any] | None = None,
    ) -> None:
        async with self._db.session() as session:
            await TriggerRepo(session).advance_schedule(
                row.id,
                through=through or now,
                next_fire_at=next_fire_at,
                now=now,
                skipped=skipped,
                error=error,
            )
            await session.commit()

    async def _prune(self, now: datetime) -> None:
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        try:
            async with self._db.session() as session:
                await TriggerRepo(session).prune_fires(now - FIRES_KEPT)
                await session.commit()
        except DBAPIError as exc:
            logger.warning("could not prune old schedule fires: %s", exc)
