"""API models of webhook deliveries (``POST /v1/hooks/{hook_id}``) and of a pipeline's hooks."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from app.schemas.base import APIModel


class HookRead(APIModel):
    """The URL of one webhook trigger of a pipeline; the id in it is the only credential of a call."""

    id: str = Field(description="The hook's unguessable id (kept across revisions)")
    url: str = Field(description="Where the sender POSTs its calls")


class HookAccepted(APIModel):
    """A delivery was accepted: the run it started, or the run a first delivery started (redelivery)."""

    run_id: str = Field(description="The run of this delivery")
    duplicate: bool = Field(
        default=False, description="True when the `dedupe_header` value was seen before: no new run"
    )


class HookResult(HookAccepted):
    """With `?wait=true`: the run finished and these are its outputs."""

    status: str = Field(description="The run's final status: succeeded")
    outputs: dict[str, Any] | None = Field(default=None, description="The run's outputs")
