"""Runs left behind by a dead process: resume them, or fail them with a clear error.

A process executing runs refreshes their ``heartbeat_at`` every ``run_heartbeat_seconds``. A
``running`` run whose heartbeat is older than :data:`STALE_BEATS` intervals (or missing) was left by
a process that died (crash, ``kill -9``, power loss). At start-up and then periodically, each such
run is looked at with its recorded steps:

* a step recorded ``running`` was interrupted. It may run again only when its retry policy
  (``retry`` or ``defaults.retry``) has an attempt left: ``attempts`` > the attempts it used. The
  attempt counter of a step is recorded when it starts and when it finishes, so a step interrupted
  in the middle counts as having used ``max(1, recorded)`` attempts;
* when every interrupted step may run again, the run goes back to ``queued`` (keeping its first
  ``started_at``) and is resumed: steps recorded ``succeeded``/``skipped`` (with an output that was
  not truncated) are reused through ``RunRequest.prior``, the interrupted steps go on with their
  remaining attempts (``RunRequest.attempts_used``), the rest runs normally;
* otherwise the run fails with the error ``interrupted`` ("interrupted by a server restart ..."),
  its interrupted steps too.

Steps are written in order (see :mod:`app.runtime.observer`): a step recorded finished has every step
it depends on recorded finished as well. A step whose start had not been written yet when the
process died is simply run again (at-least-once).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from app.engine.types import StepResult, StepStatus
from app.pipelines.spec import PipelineSpec
from app.runtime.plans import PlanCache, revision_key
from app.storage.db import Database
from app.storage.models import StepRun
from app.storage.repositories import PipelineRepo, RunRepo, RuntimeRepo
from app.storage.repositories.runtime import StaleRun

logger = logging.getLogger("mashpipe.runtime")

STALE_BEATS = 3
"""A running run is left behind when its heartbeat is older than this many heartbeat intervals."""

INTERRUPTED = "interrupted"
_REUSABLE = (StepStatus.SUCCEEDED.value, StepStatus.SKIPPED.value)


def stale_before(now: datetime, heartbeat_seconds: float) -> datetime:
    """Heartbeats older than this are stale."""
    return now - timedelta(seconds=heartbeat_seconds * STALE_BEATS)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with a run left running: resume it, or fail it with ``error``."""

    resume: bool
    interrupted: tuple[str, ...]
    error: dict[str, Any] | None = None


def attempts_allowed(spec: PipelineSpec, step_id: str) -> int:
    """Attempts the step's retry policy allows in all (1 without a policy)."""
    for step in spec.steps:
        if step.id == step_id:
            policy = step.retry or spec.defaults.retry
            return policy.attempts if policy is not None else 1
    return 1


def judge(spec: PipelineSpec | None, rows: Iterable[StepRun]) -> Verdict:
    """Decide the fate of a run left running, from its spec and its recorded steps."""
    interrupted = [row for row in rows if row.status == StepStatus.RUNNING.value]
    names = tuple(sorted(row.step_id for row in interrupted))
    if spec is None:
        return Verdict(False, names, _error("interrupted by a server restart; its revision cannot be loaded"))
    exhausted: list[dict[str, Any]] = []
    for row in interrupted:
        used, allowed = max(1, row.attempts), attempts_allowed(spec, row.step_id)
        if used >= allowed:
            exhausted.append({"step_id": row.step_id, "attempts": used, "allowed": allowed})
    if not exhausted:
        return Verdict(True, names)
    first = exhausted[0]
    why = (
        "it has no retry policy"
        if first["allowed"] == 1
        else f"it had used all {first['allowed']} attempts of its retry policy"
    )
    message = (
        f"interrupted by a server restart: step `{first['step_id']}` was running and {why}, "
        "so it is not run again"
    )
    return Verdict(False, names, _error(message, {"steps": exhausted}))


def _error(message: str, details: Any = None) -> dict[str, Any]:
    return {"code": INTERRUPTED, "message": message, "details": details}


@dataclass(slots=True)
class ResumeState:
    """What the engine needs to go on with a resumed or retried run."""

    prior: dict[str, StepResult] = field(default_factory=dict)
    attempts_used: dict[str, int] = field(default_factory=dict)


def resume_state(own: Sequence[StepRun], earlier: Sequence[StepRun] = ()) -> ResumeState:
    """Reusable step results of ``earlier`` (the run a retry re-runs) overlaid with the run's ``own``
    rows (a resumed run), and the attempts its interrupted steps already used."""
    state = ResumeState()
    for row in [*earlier, *own]:
        if row.status in _REUSABLE and not row.output_truncated:
            state.prior[row.step_id] = row.to_result()
        else:
            state.prior.pop(row.step_id, None)
    for row in own:
        if row.status == StepStatus.RUNNING.value:
            state.attempts_used[row.step_id] = max(1, row.attempts)
    return state


@dataclass(slots=True)
class RecoveryReport:
    """Runs found left running by a dead process (resumed: back to ``queued``; or failed), and at
    start-up the queued runs handed to the queue (resumed ones included)."""

    resumed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)


Outcome = Literal["resumed", "failed"]


async def settle(
    session: AsyncSession,
    plans: PlanCache,
    run: StaleRun,
    *,
    stale_before: datetime | None,
    now: datetime,
) -> Outcome | None:
    """Resume (back to ``queued``) or fail one running run no process executes any more, per
    :func:`judge`. With ``stale_before``, only while its heartbeat is still stale. None when another
    process settled it first. The caller commits."""
    repo = RuntimeRepo(session)
    rows = await repo.step_rows([run.id])
    spec = await _spec(session, plans, run.pipeline_id, run.revision)
    verdict = judge(spec, rows)
    if verdict.resume:
        return "resumed" if await repo.requeue(run.id, stale_before) else None
    assert verdict.error is not None
    if not await repo.fail_running(run.id, stale_before, verdict.error, now):
        return None
    step_error = _error("interrupted by a server restart while the step was running")
    await repo.close_steps(run.id, verdict.interrupted, StepStatus.FAILED.value, step_error, now)
    return "failed"


async def leave_interrupted(
    db: Database, plans: PlanCache, run: StaleRun, steps: Sequence[StepResult], max_output_bytes: int
) -> Outcome | None:
    """A run whose task was cancelled (the server stops): write its last step states, then resume it
    at the next start (back to ``queued``) or fail it, by the rule of :func:`judge`."""
    async with db.session() as session:
        await RunRepo(session).upsert_steps(run.id, steps, max_output_bytes)
        outcome = await settle(session, plans, run, stale_before=None, now=datetime.now(UTC))
        await session.commit()
        return outcome


async def recover_stale(
    db: Database,
    plans: PlanCache,
    *,
    now: datetime,
    heartbeat_seconds: float,
    exclude: Iterable[str] = (),
) -> RecoveryReport:
    """Resume or fail every stale running run except those in ``exclude`` (executing here).

    One short transaction per run; each statement re-checks that the heartbeat is still stale, so
    two processes recovering at once act on a run once."""
    cutoff = stale_before(now, heartbeat_seconds)
    skip = set(exclude)
    report = RecoveryReport()
    async with db.session() as session:
        stale = [run for run in await RuntimeRepo(session).stale_running(cutoff) if run.id not in skip]
    for run in stale:
        try:
            async with db.session() as session:
                outcome = await settle(session, plans, run, stale_before=cutoff, now=now)
                await session.commit()
        except Exception:
            logger.exception("recovery of run %s failed; it is tried again at the next sweep", run.id)
            continue
        if outcome == "resumed":
            report.resumed.append(run.id)
        elif outcome == "failed":
            report.failed.append(run.id)
    if report.resumed or report.failed:
        logger.info(
            "recovery: %d run(s) left running by a dead process resumed, %d failed",
            len(report.resumed),
            len(report.failed),
        )
    return report


async def _spec(
    session: AsyncSession, plans: PlanCache, pipeline_id: str, number: int
) -> PipelineSpec | None:
    key = revision_key(pipeline_id, number)
    spec = plans.cached_spec(key)
    if spec is not None:
        return spec
    revision = await PipelineRepo(session).get_revision(pipeline_id, number)
    if revision is None:
        return None
    try:
        return plans.spec(key, revision.spec)
    except Exception:
        logger.exception("the stored spec of revision %s is invalid", key)
        return None


__all__ = [
    "INTERRUPTED",
    "STALE_BEATS",
    "Outcome",
    "RecoveryReport",
    "ResumeState",
    "Verdict",
    "attempts_allowed",
    "judge",
    "leave_interrupted",
    "recover_stale",
    "resume_state",
    "settle",
    "stale_before",
]
