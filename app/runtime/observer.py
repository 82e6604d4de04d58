"""A :class:`~app.engine.types.RunObserver` that persists every step as it starts and finishes."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from app.engine.types import StepResult
from app.errors import NotFound
from app.storage.db import Database
from app.storage.repositories import RunRepo

logger = logging.getLogger("mashpipe.runtime")


class StorageObserver:
    """Writes each step's state to ``step_runs`` (one short transaction per change).

    Writes of one run are serialized, so a step's "started" row never lands after its "finished" row.
    A failing write is logged and does not break the run: the run's final state is still recorded.
    """

    def __init__(self, db: Database, *, max_output_bytes: int) -> None:
        self._db = db
        self._max_output_bytes = max_output_bytes
        self._lock = asyncio.Lock()

    async def step_started(self, run_id: str, result: StepResult) -> None:
        await self._save(run_id, _snapshot(result))

    async def step_finished(self, run_id: str, result: StepResult) -> None:
        await self._save(run_id, _snapshot(result))

    async def _save(self, run_id: str, result: StepResult) -> None:
        async with self._lock:
            try:
                async with self._db.session() as session:
                    await RunRepo(session).upsert_step(run_id, result, self._max_output_bytes)
                    await session.commit()
            except NotFound:
                logger.info(
                    "run %s is gone (pipeline deleted?): step %s not recorded", run_id, result.step_id
                )
            except Exception:
                logger.exception("run %s: could not record step %s", run_id, result.step_id)


def _snapshot(result: StepResult) -> StepResult:
    """A copy taken when the event happens: the engine may go on mutating the original."""
    return dataclasses.replace(result, logs=list(result.logs))
