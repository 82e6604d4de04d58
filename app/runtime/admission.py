"""Recording a run: the revision's spec, the ``skip``/``fail`` concurrency limits at submission, and
the new attempt of a retried run.

Used by :meth:`app.runtime.service.RunService.create_run` (and so ``submit``) and
:meth:`~app.runtime.service.RunService.retry`, in the caller's transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.engine.types import RunStatus
from app.errors import Conflict, NotFound
from app.pipelines.spec import PipelineSpec
from app.runtime.limits import conflict_error, limit_of
from app.runtime.plans import PlanCache, revision_key
from app.storage.models import Pipeline, Run
from app.storage.repositories import PipelineRepo, RunRepo, RuntimeRepo


async def find_revision_spec(
    session: AsyncSession, plans: PlanCache, pipeline_id: str, number: int
) -> PipelineSpec | None:
    """The spec of revision ``number`` of a pipeline, from the plan cache or read once; None when gone."""
    key = revision_key(pipeline_id, number)
    spec = plans.cached_spec(key)
    if spec is None:
        revision = await PipelineRepo(session).get_revision(pipeline_id, number)
        if revision is None:
            return None
        spec = plans.spec(key, revision.spec)
    return spec


async def revision_spec(
    session: AsyncSession, plans: PlanCache, pipeline: Pipeline, number: int
) -> PipelineSpec:
    """The (cached) spec of revision ``number`` of the pipeline; ``NotFound`` when there is none."""
    spec = await find_revision_spec(session, plans, pipeline.id, number)
    if spec is None:
        raise NotFound(
            f"pipeline {pipeline.name!r} has no revision {number} (latest is {pipeline.latest_revision})"
        )
    return spec


async def record_run(
    session: AsyncSession,
    pipeline: Pipeline,
    number: int,
    spec: PipelineSpec,
    *,
    inputs: dict[str, Any],
    trigger: dict[str, Any],
    attempt: int = 1,
    retry_of: str | None = None,
) -> Run:
    """Insert a ``queued`` run (flushed, not committed). When the revision's ``concurrency`` limit is
    already reached and ``on_conflict`` is ``skip`` or ``fail``, the run is recorded finished at once
    (``cancelled`` / ``concurrency_skipped`` or ``failed`` / ``concurrency_limit``): visible, never
    started.

    The count comes AFTER the insert: on SQLite the insert holds the write lock until the commit, on
    PostgreSQL the pipeline row is locked first, so two submissions never both pass a limit."""
    limit = limit_of(spec)
    guarded = limit if limit is not None and limit.on_conflict != "queue" else None
    repo = RuntimeRepo(session)
    if guarded is not None:
        await repo.lock_pipeline(pipeline.id)
    runs = RunRepo(session)
    run = await runs.create(
        account_id=pipeline.account_id,
        pipeline=pipeline,
        revision=number,
        inputs=inputs,
        trigger=trigger,
        attempt=attempt,
        retry_of=retry_of,
    )
    if guarded is not None and await repo.over_limit(pipeline.id, guarded.limit):
        status, error = conflict_error(pipeline.name, guarded)
        await runs.finish(run.id, status, None, error, datetime.now(UTC))
    return run


RETRYABLE = frozenset({RunStatus.FAILED.value, RunStatus.CANCELLED.value})
"""The states of a run that may be retried."""


async def record_retry(session: AsyncSession, plans: PlanCache, account_id: str, run_id: str) -> Run:
    """Record the next attempt of a failed or cancelled run (not committed): same revision, inputs and
    trigger, ``attempt`` + 1, ``retry_of`` = the run; under the pipeline's limit like any run.

    ``NotFound`` for another account's run; ``Conflict`` for a run that succeeded or is in progress."""
    original = await RunRepo(session).get(account_id, run_id)
    if original is None:
        raise NotFound(f"no run {run_id!r}")
    if original.status not in RETRYABLE:
        reason = (
            "succeeded: there is nothing to retry"
            if original.status == RunStatus.SUCCEEDED.value
            else f"is still {original.status}: only a failed or cancelled run can be retried"
        )
        raise Conflict(f"run {run_id} {reason}", details={"status": original.status})
    pipeline = await PipelineRepo(session).get(account_id, original.pipeline_name)
    if pipeline is None or pipeline.id != original.pipeline_id:
        raise NotFound(f"the pipeline of run {run_id} is gone")
    spec = await revision_spec(session, plans, pipeline, original.revision)
    return await record_run(
        session,
        pipeline,
        original.revision,
        spec,
        inputs=dict(original.inputs),
        trigger=dict(original.trigger),
        attempt=original.attempt + 1,
        retry_of=original.id,
    )


__all__ = ["RETRYABLE", "record_retry", "record_run", "revision_spec"]
