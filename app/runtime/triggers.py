"""The trigger registry: a pipeline's schedule and poll triggers, kept in step with its revisions.

Saving a pipeline (:mod:`app.runtime.pipelines`) calls :func:`sync_triggers`, which makes the stored
triggers those of the new latest revision. A trigger is identified by the pipeline, its kind, its
position and a hash of the parameters that define WHAT it watches:

* a schedule: ``cron`` and ``timezone`` (its ``inputs`` are updated in place);
* a poll: ``uses``, ``with`` and ``connection`` (its ``every`` is updated in place).

So a new revision that keeps a trigger (even moved to another position) keeps its state: a
schedule's progress, a poll's cursor and dedupe window. Changing what a poll watches starts a new
trigger, with a new baseline. Deleting the pipeline deletes its triggers.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.pipelines.spec import PipelineSpec
from app.storage.models import Pipeline
from app.storage.models_triggers import TriggerRow
from app.storage.repositories.triggers import DeclaredTrigger, TriggerRepo

__all__ = ["declared_triggers", "identity_of", "sync_triggers"]

IDENTITY_KEYS = {"schedule": ("cron", "timezone"), "poll": ("uses", "with", "connection")}


def identity_of(kind: str, params: dict[str, Any]) -> str:
    """The sha256 (hex) of the parameters that define what a trigger of ``kind`` watches."""
    defining = {key: params.get(key) for key in IDENTITY_KEYS[kind]}
    text = json.dumps([kind, defining], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def declared_triggers(spec: PipelineSpec) -> list[DeclaredTrigger]:
    """The schedule and poll triggers of a spec (webhooks and endpoints are handled elsewhere)."""
    found: list[DeclaredTrigger] = []
    for position, trigger in enumerate(spec.triggers):
        if trigger.schedule is not None:
            params = trigger.schedule.model_dump(mode="json", by_alias=True)
            found.append(DeclaredTrigger("schedule", position, identity_of("schedule", params), params))
        elif trigger.poll is not None:
            params = trigger.poll.model_dump(mode="json", by_alias=True)
            found.append(DeclaredTrigger("poll", position, identity_of("poll", params), params))
    return found


async def sync_triggers(
    session: AsyncSession,
    pipeline: Pipeline,
    spec: PipelineSpec,
    *,
    revision: int | None = None,
    now: datetime | None = None,
) -> list[TriggerRow]:
    """Register the schedule and poll triggers of ``spec``, the pipeline's latest revision (see the
    module docstring); returns the active trigger rows. The caller commits."""
    return await TriggerRepo(session).sync(
        pipeline,
        revision if revision is not None else pipeline.latest_revision,
        declared_triggers(spec),
        now or datetime.now(UTC),
    )
