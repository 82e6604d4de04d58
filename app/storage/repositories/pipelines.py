"""Pipelines and their immutable revisions."""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, NotFound
from app.storage.base import utcnow
from app.storage.models import Pipeline, PipelineRevision
from app.storage.repositories.cursor import check_limit, decode_name, encode_name

MAX_PAGE = 1000


def source_sha256(source: str) -> str:
    """Hex SHA-256 of a pipeline source (UTF-8)."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


_GET_BY_NAME = select(Pipeline).where(
    Pipeline.account_id == bindparam("account_id"), Pipeline.name == bindparam("name")
)  # built once: every run's creation looks its pipeline up


class PipelineRepo:
    """Pipelines of an account and their revisions. Never commits: the caller does.

    A revision is never changed once written: a new source makes a new revision.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, account_id: str, name: str) -> Pipeline | None:
        """The account's pipeline with this name (None for another account's)."""
        return await self.session.scalar(_GET_BY_NAME, {"account_id": account_id, "name": name})

    async def get_by_id(self, account_id: str, pipeline_id: str) -> Pipeline | None:
        """The account's pipeline with this id (None for another account's)."""
        return await self.session.scalar(
            select(Pipeline).where(Pipeline.account_id == account_id, Pipeline.id == pipeline_id)
        )

    async def list(
        self, account_id: str, limit: int = 100, cursor: str | None = None
    ) -> tuple[builtins.list[Pipeline], str | None]:
        """One page of the account's pipelines by name, and the cursor of the next page (or None)."""
        check_limit(limit, MAX_PAGE)
        statement = select(Pipeline).where(Pipeline.account_id == account_id)
        if cursor is not None:
            statement = statement.where(Pipeline.name > decode_name(cursor))
        rows = list(await self.session.scalars(statement.order_by(Pipeline.name).limit(limit + 1)))
        next_cursor = encode_name(rows[limit - 1].name) if len(rows) > limit else None
        return rows[:limit], next_cursor

    async def count(self, account_id: str) -> int:
        """How many pipelines the account has."""
        statement = select(func.count()).select_from(Pipeline).where(Pipeline.account_id == account_id)
        return await self.session.scalar(statement) or 0

    async def create(
        self, account_id: str, name: str, source: str, spec_json: dict[str, Any]
    ) -> tuple[Pipeline, PipelineRevision]:
        """A new pipeline with its revision 1; :class:`Conflict` when the name exists in the account."""
        if await self.get(account_id, name) is not None:
            raise Conflict(f"pipeline {name!r} already exists", details={"name": name})
        now = utcnow()
        pipeline = Pipeline(
            account_id=account_id, name=name, latest_revision=1, created_at=now, updated_at=now
        )
        self.session.add(pipeline)
        try:
            await self.session.flush()
        except IntegrityError:
            raise Conflict(f"pipeline {name!r} already exists", details={"name": name}) from None
        revision = self._new_revision(pipeline, 1, source, spec_json)
        await self.session.flush()
        return pipeline, revision

    async def add_revision(
        self, pipeline: Pipeline, source: str, spec_json: dict[str, Any]
    ) -> PipelineRevision:
        """A new revision (``latest_revision + 1``) with this source.

        When ``source`` is byte-identical to the latest revision's, that revision is returned
        and nothing is written. :class:`Conflict` when another writer added a revision meanwhile.
        """
        # Re-read the row (locked on PostgreSQL) so the number is computed from the stored value.
        locked = await self.session.scalar(
            select(Pipeline)
            .where(Pipeline.id == pipeline.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if locked is None:
            raise NotFound(f"pipeline {pipeline.name!r} not found")
        latest = await self.latest_revision(locked)
        if latest.source == source:
            return latest
        number = locked.latest_revision + 1
        revision = self._new_revision(locked, number, source, spec_json)
        locked.latest_revision = number
        locked.updated_at = revision.created_at
        try:
            await self.session.flush()
        except IntegrityError:
            raise Conflict(
                f"pipeline {pipeline.name!r} was changed concurrently; retry", details={"name": pipeline.name}
            ) from None
        return revision

    def _new_revision(
        self, pipeline: Pipeline, number: int, source: str, spec_json: dict[str, Any]
    ) -> PipelineRevision:
        revision = PipelineRevision(
            pipeline_id=pipeline.id,
            number=number,
            source=source,
            spec=spec_json,
            source_sha256=source_sha256(source),
            created_at=utcnow(),
        )
        self.session.add(revision)
        return revision

    async def get_revision(self, pipeline_id: str, number: int) -> PipelineRevision | None:
        """Revision ``number`` of the pipeline, or None."""
        return await self.session.scalar(
            select(PipelineRevision).where(
                PipelineRevision.pipeline_id == pipeline_id, PipelineRevision.number == number
            )
        )

    async def get_revision_by_id(self, revision_id: str) -> PipelineRevision | None:
        """A revision by its id (for the worker, which knows ids, not names)."""
        return await self.session.get(PipelineRevision, revision_id)

    async def latest_revision(self, pipeline: Pipeline) -> PipelineRevision:
        """The pipeline's latest revision (:class:`NotFound` if it is missing, which should not happen)."""
        revision = await self.get_revision(pipeline.id, pipeline.latest_revision)
        if revision is None:
            raise NotFound(f"pipeline {pipeline.name!r} has no revision {pipeline.latest_revision}")
        return revision

    async def latest_revisions(self, pipelines: Sequence[Pipeline]) -> dict[str, PipelineRevision]:
        """The latest revision of each pipeline, by pipeline id, in one query (for list pages)."""
        if not pipelines:
            return {}
        statement = (
            select(PipelineRevision)
            .join(
                Pipeline,
                and_(
                    Pipeline.id == PipelineRevision.pipeline_id,
                    Pipeline.latest_revision == PipelineRevision.number,
                ),
            )
            .where(Pipeline.id.in_([pipeline.id for pipeline in pipelines]))
        )
        return {revision.pipeline_id: revision for revision in await self.session.scalars(statement)}

    async def list_revisions(self, pipeline_id: str) -> builtins.list[PipelineRevision]:
        """Every revision of the pipeline, newest first."""
        statement = (
            select(PipelineRevision)
            .where(PipelineRevision.pipeline_id == pipeline_id)
            .order_by(PipelineRevision.number.desc())
        )
        return list(await self.session.scalars(statement))

    async def delete(self, pipeline: Pipeline) -> None:
        """Delete the pipeline; its revisions, runs and step runs go with it (ON DELETE CASCADE)."""
        await self.session.delete(pipeline)
        await self.session.flush()
