"""Saving pipelines: validate a source, then create it or add a revision (shared by the API and bootstrap).

Callers own the session and commit at their edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, NotFound, PipelineInvalid
from app.pipelines.catalog import OperationCatalog
from app.pipelines.loader import load_yaml
from app.pipelines.spec import PipelineSpec
from app.pipelines.validate import validate_source
from app.runtime.triggers import sync_triggers
from app.runtime.webhooks import sync_hooks
from app.storage.models import Pipeline, PipelineRevision
from app.storage.repositories import PipelineRepo

PROBLEM_FIELDS = ("line", "column", "path", "code", "message")


def problem_dict(problem: Any) -> dict[str, Any]:
    """A validation problem as the JSON object the API and CLI show."""
    if isinstance(problem, dict):
        return {name: problem.get(name) for name in PROBLEM_FIELDS}
    return {name: getattr(problem, name, None) for name in PROBLEM_FIELDS}


def validate_problems(
    source: str, catalog: OperationCatalog | None, *, max_bytes: int, secret_names: set[str] | None = None
) -> tuple[PipelineSpec | None, list[dict[str, Any]]]:
    """Validate ``source``: the spec when valid, and every problem found.

    ``secret_names`` (the account's secrets) makes a reference to any other secret a problem.
    """
    result = validate_source(source, catalog, max_bytes=max_bytes, secret_names=secret_names)
    problems = [problem_dict(p) for p in result.problems]
    spec = result.spec if result.ok and not problems else None
    return spec, problems


def check_source(
    source: str, catalog: OperationCatalog | None, *, max_bytes: int, secret_names: set[str] | None = None
) -> PipelineSpec:
    """The validated spec of ``source``; raises ``PipelineInvalid`` listing every problem otherwise."""
    spec, problems = validate_problems(source, catalog, max_bytes=max_bytes, secret_names=secret_names)
    if spec is None:
        if not problems:
            problems = [{"line": 1, "column": 1, "path": "", "code": "invalid", "message": "invalid"}]
        first = problems[0]
        count = len(problems)
        raise PipelineInvalid(
            f"the pipeline has {count} problem{'s' if count > 1 else ''}; first at line {first['line']}, "
            f"column {first['column']}: {first['message']}",
            details=problems,
        )
    return spec


def spec_document(spec: PipelineSpec) -> dict[str, Any]:
    """The spec as stored with a revision."""
    return spec.model_dump(mode="json", by_alias=True, exclude_none=True)


@dataclass(frozen=True, slots=True)
class SaveOutcome:
    """What saving a pipeline did."""

    pipeline: Pipeline
    revision: PipelineRevision
    created: bool  # the pipeline did not exist before
    changed: bool  # a new revision was recorded (False: the source was identical to the latest)


async def create_pipeline(
    session: AsyncSession, account_id: str, source: str, spec: PipelineSpec
) -> SaveOutcome:
    """Store a new pipeline; ``Conflict`` when the account already has one of that name."""
    repo = PipelineRepo(session)
    if await repo.get(account_id, spec.name) is not None:
        raise Conflict(
            f"a pipeline named {spec.name!r} already exists; use PUT /v1/pipelines/{spec.name} to update it",
            details={"name": spec.name},
        )
    pipeline, revision = await repo.create(account_id, spec.name, source, spec_document(spec))
    await sync_hooks(session, pipeline, spec)
    await sync_triggers(session, pipeline, spec, revision=revision.number)
    return SaveOutcome(pipeline, revision, created=True, changed=True)


async def put_pipeline(
    session: AsyncSession, account_id: str, name: str, source: str, spec: PipelineSpec
) -> SaveOutcome:
    """Create the pipeline ``name`` or add a revision to it (none when the source is unchanged)."""
    if spec.name != name:
        line, column = load_yaml(source).position(("name",))
        raise PipelineInvalid(
            f"the pipeline's name {spec.name!r} does not match {name!r} in the URL",
            details=[
                {
                    "line": line,
                    "column": column,
                    "path": "name",
                    "code": "name_mismatch",
                    "message": f"name is {spec.name!r} but the URL names {name!r}",
                }
            ],
        )
    repo = PipelineRepo(session)
    pipeline = await repo.get(account_id, name)
    if pipeline is None:
        pipeline, revision = await repo.create(account_id, name, source, spec_document(spec))
        await sync_hooks(session, pipeline, spec)
        await sync_triggers(session, pipeline, spec, revision=revision.number)
        return SaveOutcome(pipeline, revision, created=True, changed=True)
    before = pipeline.latest_revision
    revision = await repo.add_revision(pipeline, source, spec_document(spec))
    await sync_hooks(session, pipeline, spec)
    await sync_triggers(session, pipeline, spec, revision=revision.number)
    return SaveOutcome(pipeline, revision, created=False, changed=revision.number != before)


async def get_pipeline(session: AsyncSession, account_id: str, name: str) -> Pipeline:
    """The account's pipeline ``name``; ``NotFound`` otherwise (also for another account's)."""
    pipeline = await PipelineRepo(session).get(account_id, name)
    if pipeline is None:
        raise NotFound(f"no pipeline named {name!r}")
    return pipeline
