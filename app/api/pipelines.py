"""`/v1/pipelines` and `/v1/validate`: save, read, list, update, delete and validate pipelines.

``PUT /v1/pipelines/{name}`` creates the pipeline when it does not exist (201) and otherwise records a
new revision (200; none when the source is byte-identical to the latest). ``POST`` only creates (409
when the name exists).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from app.api.apps import forget_published, public_base_url
from app.api.body import PIPELINE_BODY, read_pipeline_source
from app.api.deps import AccountDep, RegistryDep, RunServiceDep, SessionDep, SettingsDep
from app.api.responses import errors
from app.api.trigger_views import trigger_reads, wake_trigger_loops
from app.api.views import (
    hook_reads,
    pipeline_read,
    pipeline_summary,
    revision_read,
    revision_summary,
    run_read,
)
from app.errors import NotFound
from app.runtime.pipelines import check_source, create_pipeline, get_pipeline, put_pipeline, validate_problems
from app.runtime.webhooks import pipeline_hooks
from app.schemas.base import Page
from app.schemas.pipelines import (
    PipelineRead,
    PipelineSummary,
    ProblemRead,
    RevisionRead,
    RevisionSummary,
    ValidationRead,
)
from app.schemas.runs import RunCreate, RunRead
from app.storage.repositories import PipelineRepo
from app.storage.repositories.secrets import SecretRepo

router = APIRouter(tags=["pipelines"])

PipelineName = Annotated[str, Path(description="The pipeline's name", max_length=100)]


@router.post(
    "/pipelines",
    operation_id="createPipeline",
    summary="Save a new pipeline",
    status_code=status.HTTP_201_CREATED,
    response_model=PipelineRead,
    responses=errors(400, 401, 409, 413, 415, 422),
    openapi_extra=PIPELINE_BODY,
)
async def create(
    request: Request, account: AccountDep, session: SessionDep, registry: RegistryDep, settings: SettingsDep
) -> PipelineRead:
    """Validate and store a pipeline as its revision 1. Every problem is reported at once (422
    `pipeline_invalid`, `details` lists `{line, column, path, code, message}`). An existing name is a 409:
    update it with `PUT /v1/pipelines/{name}`."""
    source = await read_pipeline_source(request)
    secret_names = await SecretRepo(session).names(account.id)
    spec = check_source(source, registry, max_bytes=settings.max_yaml_bytes, secret_names=secret_names)
    saved = await create_pipeline(session, account.id, source, spec)
    hooks = await pipeline_hooks(session, saved.pipeline.id)
    await session.commit()
    wake_trigger_loops(request)
    forget_published(request, account.name, saved.pipeline.name, saved.pipeline.id)
    read = pipeline_read(saved.pipeline, saved.revision, hook_reads(hooks, public_base_url(request)))
    return read.model_copy(update=await trigger_reads(session, saved.pipeline.id))


@router.get(
    "/pipelines",
    operation_id="listPipelines",
    summary="List pipelines",
    response_model=Page[PipelineSummary],
    responses=errors(400, 401, 422),
)
async def list_pipelines(
    account: AccountDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size")] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> Page[PipelineSummary]:
    """The account's pipelines, by name."""
    repo = PipelineRepo(session)
    pipelines, next_cursor = await repo.list(account.id, limit, cursor)
    latest = await repo.latest_revisions(pipelines)
    items = [pipeline_summary(p, latest[p.id]) for p in pipelines if p.id in latest]
    return Page[PipelineSummary](items=items, total=await repo.count(account.id), next_cursor=next_cursor)


@router.get(
    "/pipelines/{name}",
    operation_id="getPipeline",
    summary="Read a pipeline",
    response_model=PipelineRead,
    responses=errors(401, 404, 422),
)
async def get(name: PipelineName, request: Request, account: AccountDep, session: SessionDep) -> PipelineRead:
    """The pipeline at its latest revision: source, inputs, triggers, outputs, steps, hook URLs, each
    schedule's next fire times and each poll's state (last poll, errors)."""
    pipeline = await get_pipeline(session, account.id, name)
    hooks = hook_reads(await pipeline_hooks(session, pipeline.id), public_base_url(request))
    read = pipeline_read(pipeline, await PipelineRepo(session).latest_revision(pipeline), hooks)
    return read.model_copy(update=await trigger_reads(session, pipeline.id))


@router.put(
    "/pipelines/{name}",
    operation_id="putPipeline",
    summary="Create or update a pipeline",
    response_model=PipelineRead,
    responses={201: {"model": PipelineRead, "description": "Created"}, **errors(400, 401, 413, 415, 422)},
    openapi_extra=PIPELINE_BODY,
)
async def put(
    name: PipelineName,
    request: Request,
    response: Response,
    account: AccountDep,
    session: SessionDep,
    registry: RegistryDep,
    settings: SettingsDep,
) -> PipelineRead:
    """Record a new revision (200), or create the pipeline when it does not exist (201). Saving a source
    identical to the latest revision records nothing. The `name` in the file must match the URL (422)."""
    source = await read_pipeline_source(request)
    secret_names = await SecretRepo(session).names(account.id)
    spec = check_source(source, registry, max_bytes=settings.max_yaml_bytes, secret_names=secret_names)
    saved = await put_pipeline(session, account.id, name, source, spec)
    hooks = await pipeline_hooks(session, saved.pipeline.id)
    await session.commit()
    wake_trigger_loops(request)
    forget_published(request, account.name, name, saved.pipeline.id)
    if saved.created:
        response.status_code = status.HTTP_201_CREATED
    read = pipeline_read(saved.pipeline, saved.revision, hook_reads(hooks, public_base_url(request)))
    return read.model_copy(update=await trigger_reads(session, saved.pipeline.id))


@router.delete(
    "/pipelines/{name}",
    operation_id="deletePipeline",
    summary="Delete a pipeline",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(401, 404, 422),
)
async def delete(
    name: PipelineName, request: Request, account: AccountDep, session: SessionDep, runs: RunServiceDep
) -> Response:
    """Delete the pipeline with its revisions and runs (runs in progress are stopped)."""
    pipeline = await get_pipeline(session, account.id, name)
    await PipelineRepo(session).delete(pipeline)
    await session.commit()
    forget_published(request, account.name, name, pipeline.id)
    runs.stop_pipeline_runs(pipeline.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/pipelines/{name}/revisions",
    operation_id="listPipelineRevisions",
    summary="List a pipeline's revisions",
    response_model=Page[RevisionSummary],
    responses=errors(401, 404, 422),
)
async def list_revisions(
    name: PipelineName, account: AccountDep, session: SessionDep
) -> Page[RevisionSummary]:
    """Every revision, newest first."""
    pipeline = await get_pipeline(session, account.id, name)
    revisions = await PipelineRepo(session).list_revisions(pipeline.id)
    return Page[RevisionSummary](items=[revision_summary(r) for r in revisions], total=len(revisions))


@router.get(
    "/pipelines/{name}/revisions/{number}",
    operation_id="getPipelineRevision",
    summary="Read one revision",
    response_model=RevisionRead,
    responses=errors(401, 404, 422),
)
async def get_revision(
    name: PipelineName,
    number: Annotated[int, Path(ge=1, description="Revision number")],
    account: AccountDep,
    session: SessionDep,
) -> RevisionRead:
    """One immutable revision with its source verbatim (comments included)."""
    pipeline = await get_pipeline(session, account.id, name)
    revision = await PipelineRepo(session).get_revision(pipeline.id, number)
    if revision is None:
        raise NotFound(f"pipeline {name!r} has no revision {number} (latest is {pipeline.latest_revision})")
    return revision_read(pipeline, revision)


@router.post(
    "/validate",
    operation_id="validatePipeline",
    summary="Validate a pipeline without saving it",
    response_model=ValidationRead,
    responses=errors(400, 401, 413, 415, 422),
    openapi_extra=PIPELINE_BODY,
)
async def validate(
    request: Request, account: AccountDep, session: SessionDep, registry: RegistryDep, settings: SettingsDep
) -> ValidationRead:
    """Every problem at once, with line and column. An invalid pipeline is still a 200 here. A reference
    to a secret the account does not have is a problem (`unknown_secret`)."""
    source = await read_pipeline_source(request)
    secret_names = await SecretRepo(session).names(account.id)
    spec, problems = validate_problems(
        source, registry, max_bytes=settings.max_yaml_bytes, secret_names=secret_names
    )
    return ValidationRead(valid=spec is not None, problems=[ProblemRead.model_validate(p) for p in problems])


@router.post(
    "/pipelines/{name}/runs",
    operation_id="createRun",
    summary="Run a pipeline",
    tags=["runs"],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunRead,
    responses={
        201: {"model": RunRead, "description": "The run finished (with `wait: true`)"},
        202: {"description": "The run is queued, or still running when the wait cap passed"},
        **errors(400, 401, 404, 413, 422),
    },
)
async def create_run(
    name: PipelineName,
    response: Response,
    account: AccountDep,
    runs: RunServiceDep,
    settings: SettingsDep,
    body: RunCreate | None = None,
) -> RunRead:
    """Start a run with the given inputs (validated and coerced against the pipeline's inputs; 422 with
    one detail per problem). With `wait: true` the answer comes when the run is finished (201), or after
    a server-side cap with the run as it is (202). An empty body runs with the inputs' defaults."""
    body = body or RunCreate()
    run = await runs.submit(
        account_id=account.id, pipeline_name=name, inputs=body.inputs, revision=body.revision
    )
    if body.wait and await runs.wait(run.id, settings.run_wait_max_seconds):
        response.status_code = status.HTTP_201_CREATED
    run, steps = await runs.read(account.id, run.id)
    return run_read(run, steps)
