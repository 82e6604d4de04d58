"""A :class:`~app.engine.types.RunObserver` that persists every step as it starts and finishes.

The engine never waits for the database: each event stores a snapshot of the step and returns; a
background writer records every pending snapshot in one transaction, then the next batch, and so on
(a step that started and finished between two writes is written once, finished). The first batch waits
``first_write_delay`` (50 ms) after the first event: a run that ends sooner has nothing written in the
background. When the run ends, :meth:`StorageObserver.drain` hands back what is still pending, and the
run service writes it in the same transaction as the run's final state. A run of N steps thus costs a
few transactions, not 2N (a short run: only the one of its final state).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time

from app.engine.types import StepResult
from app.errors import NotFound
from app.storage.db import Database
from app.storage.repositories import RunRepo

logger = logging.getLogger("mashpipe.runtime")

FIRST_WRITE_DELAY = 0.05
"""Seconds between a run's first step event and its first background write (see the module)."""


class StorageObserver:
    """Writes each step's state to ``step_runs`` in the background, in batches (see the module)."""

    def __init__(
        self,
        db: Database,
        run_id: str,
        *,
        max_output_bytes: int,
        first_write_delay: float = FIRST_WRITE_DELAY,
    ) -> None:
        self._db = db
        self._run_id = run_id
        self._max_output_bytes = max_output_bytes
        self._pending: dict[str, StepResult] = {}
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self._first_write_at: float | None = None  # monotonic time of the first write; None: no event yet
        self._idle = False  # the writer has not begun writing yet (not started, or waiting to write)
        self.batches = 0  # transactions written so far (for tests and measurements)
        self.first_write_delay = max(0.0, first_write_delay)

    async def step_started(self, run_id: str, result: StepResult) -> None:
        self._record(result)

    async def step_finished(self, run_id: str, result: StepResult) -> None:
        self._record(result)

    def _record(self, result: StepResult) -> None:
        # A copy taken when the event happens: the engine may go on mutating the original.
        self._pending[result.step_id] = dataclasses.replace(result, logs=list(result.logs))
        if self._first_write_at is None:
            self._first_write_at = time.monotonic() + self.first_write_delay
        if not self._closed and (self._writer is None or self._writer.done()):
            self._idle = True
            self._writer = asyncio.create_task(self._write_pending(), name=f"mashpipe-steps-{self._run_id}")

    async def _write_pending(self) -> None:
        assert self._first_write_at is not None
        wait = self._first_write_at - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._idle = False
        while self._pending and not self._closed:
            batch, self._pending = self._pending, {}
            try:
                async with self._db.session() as session:
                    await RunRepo(session).upsert_steps(self._run_id, batch.values(), self._max_output_bytes)
                    await session.commit()
                self.batches += 1
            except NotFound:
                logger.info("run %s is gone (pipeline deleted): its steps are not recorded", self._run_id)
                self._closed = True
            except Exception:
                logger.exception("run %s: could not record steps %s", self._run_id, ", ".join(batch))
                # keep them for the final write, unless a newer state of the step arrived meanwhile
                self._pending = {**batch, **self._pending}
                return

    async def drain(self) -> list[StepResult]:
        """Stop writing in the background and return the step states not written yet."""
        self._closed = True
        writer = self._writer
        if writer is not None and not writer.done() and self._idle:
            writer.cancel()  # it has written nothing yet: nothing to wait for (the caller writes the rest)
        elif writer is not None and not writer.done():
            try:
                await asyncio.shield(writer)
            except asyncio.CancelledError:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
                raise
        pending, self._pending = list(self._pending.values()), {}
        return pending
