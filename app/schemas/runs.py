"""API models of runs and their steps."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from app.schemas.base import APIModel

RunStatusName = Literal["queued", "running", "succeeded", "failed", "cancelled"]
StepStatusName = Literal["pending", "running", "succeeded", "failed", "skipped", "cancelled"]


class RunCreate(APIModel):
    """Start a run by hand."""

    inputs: dict[str, Any] = Field(default_factory=dict, description="Values of the pipeline's inputs")
    wait: bool = Field(
        default=False,
        description=(
            "Answer once the run is finished (201), up to a server-side cap; past the cap, or without "
            "wait, the run is returned as it is (202)"
        ),
    )
    revision: int | None = Field(default=None, ge=1, description="Revision to run (default: the latest)")


class StepRunRead(APIModel):
    """What happened to one step of a run."""

    id: str = Field(description="The step id from the pipeline")
    status: StepStatusName
    attempts: int
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    output: Any = None
    output_truncated: bool = Field(default=False, description="The output was too large and is a preview")
    error: dict[str, Any] | None = Field(default=None, description="`{code, message, details}` when failed")
    logs: list[str] = Field(default_factory=list)


class RunRetry(APIModel):
    """Retry a failed or cancelled run."""

    wait: bool = Field(
        default=False,
        description=(
            "Answer once the new run is finished (201), up to a server-side cap; past the cap, or without "
            "wait, the new run is returned as it is (202)"
        ),
    )


class RunSummary(APIModel):
    """A run in a list."""

    id: str
    pipeline: str
    revision: int
    status: RunStatusName
    trigger_kind: str
    attempt: int = Field(default=1, description="1, or the number of this retry of the same run + 1")
    retry_of: str | None = Field(default=None, description="The run this one retries (POST .../retry)")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    error: dict[str, Any] | None = None


class RunRead(RunSummary):
    """A run with its inputs, outputs, trigger and every step."""

    inputs: dict[str, Any]
    outputs: dict[str, Any] | None = None
    trigger: dict[str, Any]
    steps: list[StepRunRead]
