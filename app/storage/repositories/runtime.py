"""The runtime's SQL: claiming runs under a concurrency limit, heartbeats, recovery, retention.

Every check that must hold across several processes is made by the database, inside the statement
or transaction that acts on it:

* :meth:`RuntimeRepo.claim` moves a run ``queued → running`` only while fewer than ``limit`` runs of
  its pipeline are running, in ONE conditional ``UPDATE`` (SQLite serialises writers, so the count and
  the update are atomic; on PostgreSQL the pipeline row is locked first, ``SELECT ... FOR UPDATE``).
* :meth:`RuntimeRepo.over_limit` is asked after the new run is inserted (SQLite holds the write lock
  from that ``INSERT`` to the commit), so two submissions cannot both pass a limit.
* Recovery statements are conditional on the heartbeat still being stale, so two processes
  recovering at once act on a run once.

Retention deletes finished runs (never queued or running ones) and their steps in batches, each batch
meant to be its own short transaction.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import ColumnElement, Table, bindparam, delete, func, literal, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.engine.types import RunStatus
from app.storage.models import Account, Pipeline, Run, StepRun
from app.storage.types import UTCDateTime

FINISHED_STATUSES = (RunStatus.SUCCEEDED.value, RunStatus.FAILED.value, RunStatus.CANCELLED.value)
UNFINISHED_STATUSES = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)

ClaimOutcome = Literal["claimed", "at_limit", "not_queued"]
"""``claimed``: the run is now ``running``; ``at_limit``: still ``queued``, its pipeline is at its
limit; ``not_queued``: it is gone, finished (e.g. cancelled) or already claimed."""


_RUNS = cast(Table, Run.__table__)
_CLAIM = (
    update(_RUNS)
    .where(_RUNS.c.id == bindparam("run_id"), _RUNS.c.status == RunStatus.QUEUED.value)
    .values(
        status=RunStatus.RUNNING.value,
        started_at=func.coalesce(_RUNS.c.started_at, bindparam("now", type_=UTCDateTime())),
        heartbeat_at=bindparam("now", type_=UTCDateTime()),
    )
    .returning(_RUNS.c.id, _RUNS.c.started_at)
)
"""The claim of a run without a concurrency limit (see :meth:`RuntimeRepo.claim`), built once."""


@dataclass(frozen=True, slots=True)
class StaleRun:
    """A ``running`` run whose heartbeat is stale: the process executing it is gone."""

    id: str
    pipeline_id: str
    revision: int


class RuntimeRepo:
    """Runtime statements on ``runs`` and ``step_runs``. Never commits: the caller does."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- concurrency ------------------------------------------------------------------------------

    async def lock_pipeline(self, pipeline_id: str) -> None:
        """Serialise the claims and admissions of one pipeline until the transaction ends.

        ``SELECT ... FOR UPDATE`` on PostgreSQL; nothing on SQLite, where the conditional statements
        below run under the database's single write lock anyway."""
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(
                select(Pipeline.id).where(Pipeline.id == pipeline_id).with_for_update()
            )

    async def claim(
        self, run_id: str, now: datetime, *, pipeline_id: str | None = None, limit: int | None = None
    ) -> ClaimOutcome:
        """Move a queued run to ``running`` (its first ``started_at`` is kept when it is resumed).

        With ``limit``, only while fewer than ``limit`` runs of ``pipeline_id`` are running."""
        outcome, _ = await self.claim_run(run_id, now, pipeline_id=pipeline_id, limit=limit)
        return outcome

    async def claim_run(
        self, run_id: str, now: datetime, *, pipeline_id: str | None = None, limit: int | None = None
    ) -> tuple[ClaimOutcome, datetime | None]:
        """:meth:`claim`, and the run's ``started_at`` once claimed: ``now``, or the first start of a
        resumed run (None when not claimed)."""
        if limit is None or pipeline_id is None:  # the common case: one statement built once
            row = (await self.session.execute(_CLAIM, {"run_id": run_id, "now": now})).first()
            return ("claimed", row.started_at) if row is not None else ("not_queued", None)
        conditions: list[ColumnElement[bool]] = [Run.id == run_id, Run.status == RunStatus.QUEUED.value]
        if limit is not None and pipeline_id is not None:
            await self.lock_pipeline(pipeline_id)
            other = aliased(Run)
            running = (
                select(func.count())
                .select_from(other)
                .where(other.pipeline_id == pipeline_id, other.status == RunStatus.RUNNING.value)
                .scalar_subquery()
            )
            conditions.append(running < limit)
        statement = (
            update(Run)
            .where(*conditions)
            .values(
                status=RunStatus.RUNNING.value,
                started_at=func.coalesce(Run.started_at, literal(now, UTCDateTime())),
                heartbeat_at=now,
            )
            .returning(Run.id, Run.started_at)
            .execution_options(synchronize_session=False)
        )
        claimed = (await self.session.execute(statement)).first()
        if claimed is not None:
            return "claimed", claimed.started_at
        status = await self.session.scalar(select(Run.status).where(Run.id == run_id))
        return ("at_limit" if status == RunStatus.QUEUED.value else "not_queued"), None

    async def over_limit(self, pipeline_id: str, limit: int) -> bool:
        """True when MORE than ``limit`` runs of the pipeline are queued or running, the new run (inserted
        in this transaction) included: it would be one too many.

        Reads at most ``limit`` + 1 entries of ``ix_runs_pipeline_id_status``, whatever the backlog."""
        unfinished = (
            select(Run.status)  # a column of the index: the rows themselves are never read
            .where(Run.pipeline_id == pipeline_id, Run.status.in_(UNFINISHED_STATUSES))
            .limit(limit + 1)
            .subquery()
        )
        count = await self.session.scalar(select(func.count()).select_from(unfinished))
        return (count or 0) > limit

    async def running_count(self, pipeline_id: str) -> int:
        """How many runs of the pipeline are running now (all processes)."""
        statement = select(func.count()).where(
            Run.pipeline_id == pipeline_id, Run.status == RunStatus.RUNNING.value
        )
        return await self.session.scalar(statement) or 0

    # -- heartbeats and recovery ------------------------------------------------------------------

    async def heartbeat(self, run_ids: Iterable[str], now: datetime) -> int:
        """Refresh the heartbeat of these runs (those still running); returns how many."""
        ids = list(run_ids)
        if not ids:
            return 0
        statement = (
            update(Run)
            .where(Run.id.in_(ids), Run.status == RunStatus.RUNNING.value)
            .values(heartbeat_at=now)
            .execution_options(synchronize_session=False)
        )
        result: Any = await self.session.execute(statement)
        return int(result.rowcount or 0)

    def _stale(self, stale_before: datetime) -> ColumnElement[bool]:
        return or_(Run.heartbeat_at.is_(None), Run.heartbeat_at < stale_before)

    async def stale_running(self, stale_before: datetime) -> builtins.list[StaleRun]:
        """Running runs whose heartbeat is older than ``stale_before`` (or missing), oldest first."""
        statement = (
            select(Run.id, Run.pipeline_id, Run.revision)
            .where(Run.status == RunStatus.RUNNING.value, self._stale(stale_before))
            .order_by(Run.created_at, Run.id)
        )
        return [StaleRun(*row) for row in (await self.session.execute(statement)).all()]

    async def requeue(self, run_id: str, stale_before: datetime | None) -> bool:
        """Put a running run back to ``queued`` (to resume it). With ``stale_before``, only while its
        heartbeat is stale; False when the run is no longer running (or no longer stale)."""
        conditions = [Run.id == run_id, Run.status == RunStatus.RUNNING.value]
        if stale_before is not None:
            conditions.append(self._stale(stale_before))
        statement = (
            update(Run)
            .where(*conditions)
            .values(status=RunStatus.QUEUED.value, heartbeat_at=None)
            .returning(Run.id)
            .execution_options(synchronize_session=False)
        )
        return await self.session.scalar(statement) is not None

    async def fail_running(
        self, run_id: str, stale_before: datetime | None, error: dict[str, Any], now: datetime
    ) -> bool:
        """Record a running run as failed with ``error`` (with ``stale_before``: only while its heartbeat
        is stale); False when it is no longer running (or no longer stale)."""
        conditions = [Run.id == run_id, Run.status == RunStatus.RUNNING.value]
        if stale_before is not None:
            conditions.append(self._stale(stale_before))
        statement = (
            update(Run)
            .where(*conditions)
            .values(status=RunStatus.FAILED.value, error=error, finished_at=now, heartbeat_at=None)
            .returning(Run.id)
            .execution_options(synchronize_session=False)
        )
        return await self.session.scalar(statement) is not None

    async def queued_ids(self) -> builtins.list[str]:
        """Every queued run, oldest first (re-enqueued at start-up, so per-pipeline order holds)."""
        statement = (
            select(Run.id).where(Run.status == RunStatus.QUEUED.value).order_by(Run.created_at, Run.id)
        )
        return list(await self.session.scalars(statement))

    async def step_rows(self, run_ids: Sequence[str]) -> builtins.list[StepRun]:
        """The step rows of these runs (to resume or retry them)."""
        if not run_ids:
            return []
        return list(await self.session.scalars(select(StepRun).where(StepRun.run_id.in_(list(run_ids)))))

    async def close_steps(
        self, run_id: str, step_ids: Iterable[str], status: str, error: dict[str, Any], now: datetime
    ) -> None:
        """Give steps left ``running`` or ``pending`` by a dead process their final state."""
        ids = list(step_ids)
        if not ids:
            return
        await self.session.execute(
            update(StepRun)
            .where(StepRun.run_id == run_id, StepRun.step_id.in_(ids))
            .values(status=status, error=error, finished_at=now)
            .execution_options(synchronize_session=False)
        )

    # -- retention --------------------------------------------------------------------------------

    async def account_ids(self) -> builtins.list[str]:
        """Every account id (age pruning walks each account's index range)."""
        return list(await self.session.scalars(select(Account.id).order_by(Account.id)))

    async def old_finished_run_ids(
        self, account_id: str, created_before: datetime, limit: int
    ) -> builtins.list[str]:
        """Up to ``limit`` finished runs of the account created before ``created_before``, oldest first
        (a range of ``ix_runs_account_id_created_at_id``)."""
        statement = (
            select(Run.id)
            .where(
                Run.account_id == account_id,
                Run.created_at < created_before,
                Run.status.in_(FINISHED_STATUSES),
            )
            .order_by(Run.created_at, Run.id)
            .limit(limit)
        )
        return list(await self.session.scalars(statement))

    async def pipelines_over(self, keep: int) -> builtins.list[tuple[str, str]]:
        """``(account_id, pipeline_id)`` of pipelines with more than ``keep`` runs."""
        counts = select(Run.pipeline_id).group_by(Run.pipeline_id).having(func.count() > keep).subquery()
        statement = (
            select(Pipeline.account_id, Pipeline.id)
            .join(counts, counts.c.pipeline_id == Pipeline.id)
            .order_by(Pipeline.id)
        )
        return [(row[0], row[1]) for row in (await self.session.execute(statement)).all()]

    async def excess_finished_run_ids(
        self, account_id: str, pipeline_id: str, keep: int, limit: int
    ) -> builtins.list[str]:
        """Up to ``limit`` finished runs of the pipeline older than its ``keep`` newest runs."""
        boundary = (
            await self.session.execute(
                select(Run.created_at, Run.id)
                .where(Run.account_id == account_id, Run.pipeline_id == pipeline_id)
                .order_by(Run.created_at.desc(), Run.id.desc())
                .offset(keep - 1)
                .limit(1)
            )
        ).first()
        if boundary is None:
            return []
        position = tuple_(literal(boundary[0], UTCDateTime()), literal(boundary[1], Run.id.type))
        statement = (
            select(Run.id)
            .where(
                Run.account_id == account_id,
                Run.pipeline_id == pipeline_id,
                tuple_(Run.created_at, Run.id) < position,
                Run.status.in_(FINISHED_STATUSES),
            )
            .order_by(Run.created_at, Run.id)
            .limit(limit)
        )
        return list(await self.session.scalars(statement))

    async def delete_runs(self, run_ids: Sequence[str]) -> int:
        """Delete these runs and their steps (finished ones only); returns how many runs."""
        ids = list(run_ids)
        if not ids:
            return 0
        finished = select(Run.id).where(Run.id.in_(ids), Run.status.in_(FINISHED_STATUSES))
        await self.session.execute(
            delete(StepRun).where(StepRun.run_id.in_(finished)).execution_options(synchronize_session=False)
        )
        result: Any = await self.session.execute(
            delete(Run)
            .where(Run.id.in_(ids), Run.status.in_(FINISHED_STATUSES))
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)


__all__ = ["FINISHED_STATUSES", "UNFINISHED_STATUSES", "ClaimOutcome", "RuntimeRepo", "StaleRun"]
