"""Write-behind recording of finished runs (the published endpoints' runs), by group commit.

A published endpoint's run executes in memory and its caller gets the answer at once; the run (its final
state and its steps) is handed to the :class:`RunRecorder`, which writes the runs handed to it in the
last few milliseconds in ONE transaction (multi-row INSERTs of the runs and of their steps: see
:mod:`app.storage.repositories.run_writes`; each run is encoded once, when it is handed over).
The buffer is bounded: when ``max_pending`` runs wait to be written, :meth:`RunRecorder.add` waits for
room (backpressure: a run is never dropped). :meth:`RunRecorder.close` (at shutdown) writes what is
pending. A crash loses the records of the runs not written yet (the last few milliseconds):
their callers already had their answers (see docs/runtime.md).

A batch that fails (e.g. a pipeline deleted meanwhile: its runs break the foreign key) is written again
run by run (each run encoded once), so only the runs that cannot be recorded are lost (and logged); a
locked SQLite is retried.

The writer keeps one pooled database connection for the batches written in a row: after a batch it
lingers (``delay`` at most) for the next run instead of giving the connection back (and having the pool
reset it) at once. :meth:`RunRecorder.flush` and :meth:`RunRecorder.close` end the linger: after either,
no connection is held.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from app.storage.db import Database
from app.storage.repositories.run_writes import (
    BatchWriter,
    EncodedRun,
    FinishedRun,
    RunWrites,
    database_locked,
)

logger = logging.getLogger("mashpipe.runtime")

BUSY_WAITS = (0.05, 0.2, 0.5, 1.0)
"""Waits before writing a batch again when SQLite is locked by other writers."""


class RunRecorder:
    """Records finished runs in group-committed batches (see the module)."""

    def __init__(
        self, db: Database, *, max_output_bytes: int, max_pending: int = 1024, delay: float = 0.005
    ) -> None:
        self._writes = RunWrites(db, max_output_bytes=max_output_bytes)
        self.max_pending = max(1, max_pending)
        self.delay = max(0.0, delay)
        self._pending: list[EncodedRun] = []
        self._room = asyncio.Condition()
        self._full = asyncio.Event()  # write now: the buffer is full, or a flush waits
        self._wake = asyncio.Event()  # a run was handed over, or a flush/close waits (ends the linger)
        self._flushing = 0  # flush() calls waiting
        self._closed = False  # closed: the writer no longer lingers
        self._task: asyncio.Task[None] | None = None
        self._in_flight = 0  # runs taken by the writer, not committed yet (they still use the buffer)
        self.batches = 0  # transactions written so far (for tests and measurements)
        self.lost = 0  # runs that could not be recorded (logged)

    @property
    def pending(self) -> int:
        """Runs handed over and not written yet."""
        return len(self._pending) + self._in_flight

    async def add(self, run: FinishedRun) -> None:
        """Hand a finished run over; waits only while the buffer is full.

        The run is encoded at once (its rows, see :meth:`RunWrites.encode`): what waits to be written is
        text, not the run's values (its steps' outputs die with the request instead of being kept, and
        traversed by the garbage collector, until the batch is written). A run that cannot be encoded is
        logged and counted in :attr:`lost`."""
        try:
            encoded = self._writes.encode(run)
        except Exception:
            self.lost += 1
            logger.exception("run %s: its record could not be written", run.id)
            return
        if self.pending >= self.max_pending:  # full: wait for room (the lock only then)
            async with self._room:
                await self._room.wait_for(lambda: self.pending < self.max_pending)
                self._pending.append(encoded)
        else:
            self._pending.append(encoded)
        if self.pending >= self.max_pending:
            self._full.set()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="mashpipe-run-recorder")

    async def flush(self) -> None:
        """Write every run handed over so far (returns when they are written, and the writer has given
        its database connection back)."""
        if not self.pending and (self._task is None or self._task.done()):
            return
        self._flushing += 1
        try:
            if self.pending:
                self._full.set()
            self._wake.set()  # a writer lingering with nothing to write stops now
            while self._task is not None and not self._task.done():
                await asyncio.shield(self._task)
            if self._pending:  # handed over while the writer was finishing
                self._task = asyncio.create_task(self._run(), name="mashpipe-run-recorder")
                await asyncio.shield(self._task)
        finally:
            self._flushing -= 1

    async def close(self) -> None:
        """At shutdown: write what is pending and give the writer's database connection back (a run handed
        over later is still written, without the writer lingering after it)."""
        self._closed = True
        await self.flush()

    async def _run(self) -> None:
        # One database connection for the batches written in a row: after a batch, the writer lingers
        # (``delay`` at most) for the next run rather than giving the connection back at once. Giving it
        # back waits too: runs handed over meanwhile are written by this task as well.
        while self._pending:
            async with self._writes.writer() as writer:
                while self._pending:
                    await self._next_batch(writer)
                    if not self._pending and self._lingers():
                        self._wake.clear()
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(self.delay):
                                await self._wake.wait()

    def _lingers(self) -> bool:
        return self.delay > 0 and not self._flushing and not self._closed

    async def _next_batch(self, writer: BatchWriter) -> None:
        if not self._full.is_set() and self.delay > 0 and not self._flushing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.delay):
                    await self._full.wait()
        batch, self._pending = self._pending, []
        self._in_flight = len(batch)
        self._full.clear()
        try:
            await self._write(batch, writer)
        finally:
            self._in_flight = 0
            async with self._room:
                self._room.notify_all()

    async def _write(self, encoded: list[EncodedRun], writer: BatchWriter) -> None:
        # Each run was encoded once (by add), also when it is written again alone.
        try:
            await self._transaction(encoded, writer)
            self.batches += 1
            return
        except Exception:
            if len(encoded) == 1:
                self.lost += 1
                logger.exception("run %s: its record could not be written", encoded[0].id)
                return
            logger.warning("a batch of %d runs could not be written; writing them one by one", len(encoded))
        for one in encoded:
            try:
                await self._transaction([one], writer)
            except Exception:
                self.lost += 1
                logger.exception("run %s: its record could not be written", one.id)

    async def _transaction(self, batch: list[EncodedRun], writer: BatchWriter) -> None:
        for wait in (*BUSY_WAITS, None):
            try:
                await writer.insert(batch)
                return
            except Exception as exc:
                if wait is None or not database_locked(exc):
                    raise
                await asyncio.sleep(wait)


__all__ = ["FinishedRun", "RunRecorder"]
