"""Retention: finished runs (and their steps) pruned by age and by count per pipeline.

``run_retention_days`` (0: keep forever) removes finished runs created more than that many days ago;
``run_retention_max_per_pipeline`` (0: no cap) removes finished runs older than each pipeline's N
newest runs. Queued and running runs are never pruned. Deletion goes in batches of
:data:`BATCH_SIZE` runs, each its own short transaction (steps first, then runs), so a large prune
never holds the database's write lock for long and other writers interleave.

The server prunes every ``run_prune_interval_seconds`` (:mod:`app.runtime.maintenance`);
``mashpipe prune`` does it on demand.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.storage.db import Database
from app.storage.repositories import RuntimeRepo

logger = logging.getLogger("mashpipe.runtime")

BATCH_SIZE = 1000
"""Runs deleted per transaction."""


@dataclass(frozen=True, slots=True)
class PruneReport:
    """How many runs were deleted, by rule."""

    by_age: int = 0
    by_count: int = 0

    @property
    def total(self) -> int:
        return self.by_age + self.by_count


async def _drain(db: Database, pick: Callable[[RuntimeRepo], Awaitable[list[str]]]) -> int:
    """Delete batches picked by ``pick`` until a batch comes back short."""
    deleted = 0
    while True:
        async with db.session() as session:
            repo = RuntimeRepo(session)
            ids = await pick(repo)
            count = await repo.delete_runs(ids)
            await session.commit()
        deleted += count
        if len(ids) < BATCH_SIZE or count == 0:
            return deleted
        await asyncio.sleep(0)  # let other tasks of the loop run between batches


async def prune_runs(
    db: Database, *, retention_days: float, max_per_pipeline: int, now: datetime
) -> PruneReport:
    """Delete the finished runs the two rules allow; see the module docstring."""
    by_age = 0
    if retention_days > 0:
        cutoff = now - timedelta(days=retention_days)
        async with db.session() as session:
            accounts = await RuntimeRepo(session).account_ids()
        for account_id in accounts:

            async def old(repo: RuntimeRepo, account_id: str = account_id) -> list[str]:
                return await repo.old_finished_run_ids(account_id, cutoff, BATCH_SIZE)

            by_age += await _drain(db, old)
    by_count = 0
    if max_per_pipeline > 0:
        async with db.session() as session:
            crowded = await RuntimeRepo(session).pipelines_over(max_per_pipeline)
        for account_id, pipeline_id in crowded:

            async def excess(
                repo: RuntimeRepo, account_id: str = account_id, pipeline_id: str = pipeline_id
            ) -> list[str]:
                return await repo.excess_finished_run_ids(
                    account_id, pipeline_id, max_per_pipeline, BATCH_SIZE
                )

            by_count += await _drain(db, excess)
    report = PruneReport(by_age, by_count)
    if report.total:
        logger.info("retention: pruned %d run(s) by age and %d by count per pipeline", by_age, by_count)
    return report


__all__ = ["BATCH_SIZE", "PruneReport", "prune_runs"]
