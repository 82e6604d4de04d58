"""Stored rows → API models. The routers call these; nothing else does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.schemas.hooks import HookRead
from app.schemas.pipelines import PipelineRead, PipelineSummary, RevisionRead, RevisionSummary
from app.schemas.runs import RunRead, RunSummary, StepRunRead
from app.storage.models import Pipeline, PipelineRevision, Run, StepRun
from app.storage.models_hooks import Hook


def pipeline_summary(pipeline: Pipeline, revision: PipelineRevision) -> PipelineSummary:
    return PipelineSummary(
        name=pipeline.name,
        description=revision.spec.get("description"),
        revision=revision.number,
        created_at=pipeline.created_at,
        updated_at=pipeline.updated_at,
    )


def hook_reads(hooks: Sequence[Hook], base_url: str) -> list[HookRead]:
    """The hooks of a pipeline with their URLs under ``base_url`` (the server's, e.g. ``http://host:8000``)."""
    base = base_url.rstrip("/")
    return [HookRead(id=hook.id, url=f"{base}/v1/hooks/{hook.id}") for hook in hooks]


def pipeline_read(
    pipeline: Pipeline, revision: PipelineRevision, hooks: list[HookRead] | None = None
) -> PipelineRead:
    spec: dict[str, Any] = revision.spec
    return PipelineRead(
        name=pipeline.name,
        description=spec.get("description"),
        revision=revision.number,
        created_at=pipeline.created_at,
        updated_at=pipeline.updated_at,
        source=revision.source,
        inputs=dict(spec.get("inputs") or {}),
        triggers=list(spec.get("triggers") or []),
        outputs=list(spec.get("outputs") or {}),
        steps=[str(step.get("id")) for step in spec.get("steps") or []],
        hooks=hooks or [],
    )


def revision_summary(revision: PipelineRevision) -> RevisionSummary:
    return RevisionSummary(
        number=revision.number, created_at=revision.created_at, source_sha256=revision.source_sha256
    )


def revision_read(pipeline: Pipeline, revision: PipelineRevision) -> RevisionRead:
    return RevisionRead(
        pipeline=pipeline.name,
        number=revision.number,
        created_at=revision.created_at,
        source_sha256=revision.source_sha256,
        source=revision.source,
    )


def _summary_fields(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "pipeline": run.pipeline_name,
        "revision": run.revision,
        "status": run.status,
        "trigger_kind": run.trigger_kind,
        "attempt": run.attempt,
        "retry_of": run.retry_of,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_ms": run.duration_ms,
        "error": run.error,
    }


def run_summary(run: Run) -> RunSummary:
    return RunSummary.model_validate(_summary_fields(run))


def step_read(step: StepRun) -> StepRunRead:
    return StepRunRead.model_validate(
        {
            "id": step.step_id,
            "status": step.status,
            "attempts": step.attempts,
            "started_at": step.started_at,
            "finished_at": step.finished_at,
            "duration_ms": step.duration_ms,
            "output": step.output,
            "output_truncated": step.output_truncated,
            "error": step.error,
            "logs": list(step.logs or []),
        }
    )


def run_read(run: Run, steps: list[StepRun]) -> RunRead:
    """The run with every step recorded so far."""
    return RunRead.model_validate(
        {
            **_summary_fields(run),
            "inputs": run.inputs,
            "outputs": run.outputs,
            "trigger": run.trigger,
            "steps": [step_read(step) for step in steps],
        }
    )
