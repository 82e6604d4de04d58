"""`/v1/runs`: list runs, read one with every step, cancel one, retry a failed one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from app.api.deps import AccountDep, RunServiceDep, SessionDep, SettingsDep
from app.api.responses import errors
from app.api.views import run_read, run_summary
from app.schemas.base import Page
from app.schemas.runs import RunRead, RunRetry, RunStatusName, RunSummary
from app.storage.repositories import RunRepo

router = APIRouter(tags=["runs"])

RunId = Annotated[str, Path(description="The run's id", max_length=64)]


@router.get(
    "/runs",
    operation_id="listRuns",
    summary="List runs",
    response_model=Page[RunSummary],
    responses=errors(400, 401, 422),
)
async def list_runs(
    account: AccountDep,
    session: SessionDep,
    service: RunServiceDep,
    settings: SettingsDep,
    pipeline: Annotated[str | None, Query(description="Only runs of this pipeline", max_length=100)] = None,
    status: Annotated[RunStatusName | None, Query(description="Only runs in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size")] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> Page[RunSummary]:
    """The account's runs, newest first. `total` is exact up to `MASHPIPE_RUNS_TOTAL_MAX` matching
    runs (10,000 by default); beyond, it is that number with `total_exact: false`."""
    await service.settle()  # endpoint runs recorded write-behind are listed once they are handed over
    page = await RunRepo(session).list(
        account.id,
        pipeline_name=pipeline,
        status=status,
        limit=limit,
        cursor=cursor,
        count_max=settings.runs_total_max or None,  # 0: always exact
    )
    return Page[RunSummary](
        items=[run_summary(r) for r in page.runs],
        total=page.total,
        next_cursor=page.next_cursor,
        total_exact=page.total_exact,
    )


@router.get(
    "/runs/{run_id}",
    operation_id="getRun",
    summary="Read a run",
    response_model=RunRead,
    responses=errors(401, 404, 422),
)
async def get_run(run_id: RunId, account: AccountDep, runs: RunServiceDep) -> RunRead:
    """Status, inputs, outputs, revision, trigger, error, timings, and each step's status, attempts,
    timings, output, error and logs."""
    run, steps = await runs.read(account.id, run_id)
    return run_read(run, steps)


@router.post(
    "/runs/{run_id}/cancel",
    operation_id="cancelRun",
    summary="Cancel a run",
    response_model=RunRead,
    responses=errors(401, 404, 409, 422),
)
async def cancel_run(run_id: RunId, account: AccountDep, runs: RunServiceDep) -> RunRead:
    """A queued run is cancelled at once; a running one is told to stop (its running steps are
    cancelled) and the answer shows it as it is a few seconds later at most. A finished run is a 409."""
    await runs.cancel(account.id, run_id)
    run, steps = await runs.read(account.id, run_id)
    return run_read(run, steps)


@router.post(
    "/runs/{run_id}/retry",
    operation_id="retryRun",
    summary="Retry a failed run",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunRead,
    responses={
        201: {"model": RunRead, "description": "The new run finished (with `wait: true`)"},
        202: {"description": "The new run is queued, or still running when the wait cap passed"},
        **errors(401, 404, 409, 422),
    },
)
async def retry_run(
    run_id: RunId,
    response: Response,
    account: AccountDep,
    runs: RunServiceDep,
    settings: SettingsDep,
    body: RunRetry | None = None,
) -> RunRead:
    """Re-run a failed or cancelled run from its first failed step, as a NEW run (`attempt` + 1,
    `retry_of` = this run) of the same revision with the same inputs and trigger: the steps that
    succeeded (or were skipped) are reused with their outputs, not run again; the others run. A run that
    succeeded, or is still queued or running, is a 409. With `wait: true` the answer comes when the new
    run is finished (201), or after a server-side cap with the run as it is (202)."""
    body = body or RunRetry()
    run = await runs.retry(account.id, run_id)
    if body.wait and await runs.wait(run.id, settings.run_wait_max_seconds):
        response.status_code = status.HTTP_201_CREATED
    run, steps = await runs.read(account.id, run.id)
    return run_read(run, steps)
