"""Write-behind recording of finished runs (the published endpoints' runs), by group commit.

A published endpoint's run executes in memory and its caller gets the answer at once; the run (its final
state and its steps) is handed to the :class:`RunRecorder`, which writes the runs handed to it in the
last few milliseconds in ONE transaction (one prepared INSERT of the runs, one of their steps, both
executemany). The buffer is bounded: when ``max_pending`` runs wait to be written, :meth:`RunRecorder.add`
waits for room (backpressure: a run is never dropped). :meth:`RunRecorder.close` (at shutdown) writes
what is pending. A crash loses the records of the runs not written yet (the last few milliseconds):
their callers already had their answers (see docs/runtime.md).

A batch that fails (e.g. a pipeline deleted meanwhile: its runs break the foreign key) is written again
run by run, so only the runs that cannot be recorded are lost (and logged); a locked SQLite is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.exc import OperationalError

from app.engine.types import StepResult, StepStatus
from app.storage.base import new_id
from app.storage.db import Database
from app.storage.models import Run, StepRun
from app.storage.repositories.runs import PREVIEW_MAX_CHARS, cap_logs
from app.storage.types import EncodedJSON, dumps_json_bytes

logger = logging.getLogger("mashpipe.runtime")

_INSERT_RUNS = insert(cast(Table, Run.__table__))  # prepared once: Core INSERTs executed for many rows
_INSERT_STEPS = insert(cast(Table, StepRun.__table__))

BUSY_WAITS = (0.05, 0.2, 0.5, 1.0)
"""Waits before writing a batch again when SQLite is locked by other writers."""


@dataclass(frozen=True, slots=True)
class FinishedRun:
    """A run executed in memory, to record: its row's values and its steps' final states."""

    id: str
    account_id: str
    pipeline_id: str
    pipeline_name: str
    revision: int
    status: str
    trigger: dict[str, Any]
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None
    error: dict[str, Any] | None
    created_at: datetime
    started_at: datetime
    finished_at: datetime
    steps: Sequence[StepResult]


class RunRecorder:
    """Records finished runs in group-committed batches (see the module)."""

    def __init__(
        self, db: Database, *, max_output_bytes: int, max_pending: int = 1024, delay: float = 0.005
    ) -> None:
        self._db = db
        self._max_output_bytes = max_output_bytes
        self.max_pending = max(1, max_pending)
        self.delay = max(0.0, delay)
        self._pending: list[FinishedRun] = []
        self._room = asyncio.Condition()
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight = 0  # runs taken by the writer, not committed yet (they still use the buffer)
        self.batches = 0  # transactions written so far (for tests and measurements)
        self.lost = 0  # runs that could not be recorded (logged)

    @property
    def pending(self) -> int:
        """Runs handed over and not written yet."""
        return len(self._pending) + self._in_flight

    async def add(self, run: FinishedRun) -> None:
        """Hand a finished run over; waits only while the buffer is full."""
        async with self._room:
            await self._room.wait_for(lambda: self.pending < self.max_pending)
            self._pending.append(run)
            if self.pending >= self.max_pending:
                self._full.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="mashpipe-run-recorder")

    async def flush(self) -> None:
        """Write every run handed over so far (returns when they are written)."""
        if not self.pending:
            return
        self._full.set()
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
        if self._pending:  # handed over while the writer was finishing
            self._task = asyncio.create_task(self._run(), name="mashpipe-run-recorder")
            await asyncio.shield(self._task)

    async def close(self) -> None:
        """At shutdown: write what is pending."""
        await self.flush()

    async def _run(self) -> None:
        while self._pending:
            if not self._full.is_set() and self.delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.delay)
            batch, self._pending = self._pending, []
            self._in_flight = len(batch)
            self._full.clear()
            try:
                await self._write(batch)
            finally:
                self._in_flight = 0
                async with self._room:
                    self._room.notify_all()

    async def _write(self, batch: list[FinishedRun]) -> None:
        try:
            await self._transaction(batch)
            self.batches += 1
            return
        except Exception:
            if len(batch) == 1:
                self.lost += 1
                logger.exception("run %s: its record could not be written", batch[0].id)
                return
            logger.warning("a batch of %d runs could not be written; writing them one by one", len(batch))
        for run in batch:
            try:
                await self._transaction([run])
            except Exception:
                self.lost += 1
                logger.exception("run %s: its record could not be written", run.id)

    async def _transaction(self, batch: list[FinishedRun]) -> None:
        runs = [_run_row(run) for run in batch]
        steps = [
            _step_row(run.id, step, self._max_output_bytes)
            for run in batch
            for step in _last_states(run.steps)
        ]
        for wait in (*BUSY_WAITS, None):
            try:
                async with self._db.session() as session:
                    await session.execute(_INSERT_RUNS, runs)
                    if steps:
                        await session.execute(_INSERT_STEPS, steps)
                    await session.commit()
                return
            except OperationalError as exc:
                if wait is None or "database is locked" not in str(exc):
                    raise
                await asyncio.sleep(wait)


def _last_states(steps: Sequence[StepResult]) -> list[StepResult]:
    """One state per step (the last one given)."""
    return list({step.step_id: step for step in steps}.values())


def _run_row(run: FinishedRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "account_id": run.account_id,
        "pipeline_id": run.pipeline_id,
        "pipeline_name": run.pipeline_name,
        "revision": run.revision,
        "status": run.status,
        "trigger_kind": str(run.trigger.get("kind", "endpoint"))[:32],
        "trigger": run.trigger,
        "inputs": run.inputs,
        "outputs": run.outputs,
        "error": run.error,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "attempt": 1,
    }


def _output(output: Any, max_output_bytes: int) -> tuple[Any, bool]:
    """The stored output and whether it was truncated, as :func:`~app.storage.repositories.runs.cap_output`
    gives them, but an output that fits is given as the JSON text encoded to measure it (stored as it is:
    encoded once)."""
    if output is None:
        return None, False
    encoded = dumps_json_bytes(output)
    if len(encoded) <= max_output_bytes:
        return EncodedJSON(encoded.decode("utf-8")), False
    keep = max(0, min(PREVIEW_MAX_CHARS, max_output_bytes))
    preview = encoded[: keep * 4].decode("utf-8", errors="ignore")[:keep]
    return {"truncated": True, "size": len(encoded), "preview": preview}, True


def _logs(logs: list[str], max_bytes: int) -> list[str]:
    """The logs as :func:`~app.storage.repositories.runs.cap_logs` keeps them; without encoding them when
    they surely fit (a character is at most 4 bytes of UTF-8)."""
    if all(type(line) is str for line in logs) and sum(map(len, logs)) * 4 <= max_bytes:
        return list(logs)
    return cap_logs(list(logs), max_bytes)


def _step_row(run_id: str, step: StepResult, max_output_bytes: int) -> dict[str, Any]:
    output, truncated = _output(step.output, max_output_bytes)
    error = step.error.to_dict() if step.error is not None else None
    return {
        "id": new_id(),
        "run_id": run_id,
        "step_id": step.step_id,
        "status": StepStatus(step.status).value,
        "attempts": step.attempts,
        "started_at": step.started_at,
        "finished_at": step.finished_at,
        "duration_ms": step.duration_ms,
        "output": output,
        "output_truncated": truncated,
        "error": error,
        "logs": _logs(step.logs, max_output_bytes),
    }


__all__ = ["FinishedRun", "RunRecorder"]
