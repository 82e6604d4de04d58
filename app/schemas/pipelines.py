"""API models of pipelines, their revisions and validation results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from app.schemas.base import APIModel
from app.schemas.hooks import HookRead
from app.schemas.triggers import PollRead, ScheduleRead


class PipelineCreate(APIModel):
    """JSON form of a pipeline body; the raw YAML may be sent instead as `application/yaml`."""

    source: str = Field(description="The pipeline file, YAML text")


class ProblemRead(APIModel):
    """One problem found in a pipeline source."""

    line: int = Field(description="1-based line of the offending node")
    column: int = Field(description="1-based column of the offending node")
    path: str = Field(description="Path of the node, like `steps[3].with.url`")
    code: str = Field(description="Stable problem code, e.g. `unknown_key`, `expression_syntax`")
    message: str


class ValidationRead(APIModel):
    """Outcome of `POST /v1/validate`: invalid pipelines are still a 200."""

    valid: bool
    problems: list[ProblemRead]


class PipelineSummary(APIModel):
    """A pipeline in a list."""

    name: str
    description: str | None = None
    revision: int = Field(description="Number of the latest revision")
    created_at: datetime
    updated_at: datetime


class PipelineRead(PipelineSummary):
    """A pipeline at its latest revision."""

    source: str = Field(description="The latest revision's source, verbatim")
    inputs: dict[str, dict[str, Any]] = Field(description="Declared inputs, by name")
    triggers: list[dict[str, Any]] = Field(description="Declared triggers")
    outputs: list[str] = Field(description="Names of the pipeline's outputs")
    steps: list[str] = Field(description="Step ids, in file order")
    hooks: list[HookRead] = Field(
        default_factory=list, description="The URL of each webhook trigger, in order (POST to start a run)"
    )
    schedules: list[ScheduleRead] = Field(
        default_factory=list, description="Each schedule trigger with its next fire times and progress"
    )
    polls: list[PollRead] = Field(
        default_factory=list, description="Each polling trigger with its state (last poll, errors, backoff)"
    )


class RevisionSummary(APIModel):
    """One immutable revision of a pipeline."""

    number: int
    created_at: datetime
    source_sha256: str


class RevisionRead(RevisionSummary):
    """A revision with its source, verbatim (comments included)."""

    pipeline: str
    source: str
