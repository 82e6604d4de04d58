"""Hooks of pipelines, the deliveries that started runs, and the lookup of published pipelines."""

from __future__ import annotations

import builtins

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict
from app.storage.base import utcnow
from app.storage.models import Account, Pipeline
from app.storage.models_hooks import HOOK_ID_LENGTH, Hook, WebhookDelivery, new_hook_id


class HookRepo:
    """Hooks (one per webhook trigger of a pipeline) and their deliveries. Never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def sync(self, pipeline: Pipeline, count: int) -> builtins.list[Hook]:
        """Make the pipeline have exactly ``count`` enabled hooks (ordinals ``0 .. count-1``).

        Existing hooks keep their id (the URL survives new revisions); hooks past ``count`` are
        disabled, not deleted, so a revision bringing the trigger back enables the same URL.
        Returns the enabled hooks by ordinal.
        """
        existing = {hook.ordinal: hook for hook in await self._all(pipeline.id)}
        enabled: list[Hook] = []
        for ordinal in range(count):
            hook = existing.get(ordinal)
            if hook is None:
                hook = Hook(
                    id=new_hook_id(),
                    account_id=pipeline.account_id,
                    pipeline_id=pipeline.id,
                    ordinal=ordinal,
                    enabled=True,
                    created_at=utcnow(),
                )
                self.session.add(hook)
            elif not hook.enabled:
                hook.enabled = True
            enabled.append(hook)
        stale = [hook.id for ordinal, hook in existing.items() if ordinal >= count and hook.enabled]
        if stale:
            await self.session.execute(update(Hook).where(Hook.id.in_(stale)).values(enabled=False))
        try:
            await self.session.flush()
        except IntegrityError:  # another save of the same pipeline created the hook meanwhile
            raise Conflict(
                f"pipeline {pipeline.name!r} was saved concurrently; retry", details={"name": pipeline.name}
            ) from None
        return enabled

    async def _all(self, pipeline_id: str) -> builtins.list[Hook]:
        statement = select(Hook).where(Hook.pipeline_id == pipeline_id).order_by(Hook.ordinal)
        return list(await self.session.scalars(statement))

    async def list(self, pipeline_id: str) -> builtins.list[Hook]:
        """The pipeline's enabled hooks, by ordinal."""
        statement = (
            select(Hook).where(Hook.pipeline_id == pipeline_id, Hook.enabled.is_(True)).order_by(Hook.ordinal)
        )
        return list(await self.session.scalars(statement))

    async def target(self, hook_id: str) -> tuple[Hook, Pipeline] | None:
        """The enabled hook with this id and its pipeline (one query), or None."""
        if not hook_id or len(hook_id) > HOOK_ID_LENGTH:
            return None
        statement = (
            select(Hook, Pipeline)
            .join(Pipeline, Pipeline.id == Hook.pipeline_id)
            .where(Hook.id == hook_id, Hook.enabled.is_(True))
        )
        row = (await self.session.execute(statement)).first()
        return None if row is None else (row[0], row[1])

    async def delivery_run(self, hook_id: str, dedupe_key: str) -> str | None:
        """The id of the run an earlier delivery with this dedupe value started, or None."""
        statement = select(WebhookDelivery.run_id).where(
            WebhookDelivery.hook_id == hook_id, WebhookDelivery.dedupe_key == dedupe_key
        )
        run_id: str | None = await self.session.scalar(statement)
        return run_id

    async def add_delivery(self, hook_id: str, dedupe_key: str, run_id: str) -> None:
        """Record a delivery (flushed). A second delivery with the same value raises ``IntegrityError``."""
        self.session.add(
            WebhookDelivery(hook_id=hook_id, dedupe_key=dedupe_key, run_id=run_id, created_at=utcnow())
        )
        await self.session.flush()


class PublishedRepo:
    """Finds a pipeline by account name and pipeline name (``GET /v1/apps/{account}/{name}``)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def find(self, account_name: str, pipeline_name: str) -> Pipeline | None:
        """The pipeline ``pipeline_name`` of the account named ``account_name`` (one query), or None."""
        statement = (
            select(Pipeline)
            .join(Account, Account.id == Pipeline.account_id)
            .where(Account.name == account_name, Pipeline.name == pipeline_name)
        )
        pipeline: Pipeline | None = await self.session.scalar(statement)
        return pipeline
