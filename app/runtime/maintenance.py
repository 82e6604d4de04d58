"""The background chores of a server process, started and stopped by the app's lifespan.

Every ``run_heartbeat_seconds``: :meth:`app.runtime.service.RunService.tend` marks the runs this
process executes as alive, resumes or fails runs left ``running`` by a dead process
(:mod:`app.runtime.recovery`) and wakes runs waiting for a pipeline slot that another process may
have freed. Every ``run_prune_interval_seconds`` (and once shortly after start):
:func:`app.runtime.retention.prune_runs`.

A chore that fails is logged and tried again at its next turn; it never stops the loop. The clock and
the sleep are injectable, so tests drive the loops without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from app.runtime.retention import PruneReport, prune_runs
from app.settings import Settings
from app.storage.db import Database

if TYPE_CHECKING:
    from app.runtime.service import RunService

logger = logging.getLogger("mashpipe.runtime")

FIRST_PRUNE_DELAY = 60.0
"""Seconds after start before the first prune (start-up has enough to do)."""


def _now() -> datetime:
    return datetime.now(UTC)


class Maintenance:
    """Runs :meth:`tend` and :meth:`prune` periodically in tasks of the event loop."""

    def __init__(
        self,
        runs: RunService,
        db: Database,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = _now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._runs = runs
        self._db = db
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self._tasks: list[asyncio.Task[None]] = []

    async def tend(self) -> None:
        """One heartbeat round (see the module docstring)."""
        await self._runs.tend(self._clock())

    async def prune(self) -> PruneReport:
        """One retention round with the settings' rules."""
        return await prune_runs(
            self._db,
            retention_days=self._settings.run_retention_days,
            max_per_pipeline=self._settings.run_retention_max_per_pipeline,
            now=self._clock(),
        )

    async def start(self) -> None:
        """Start both loops (idempotent)."""
        if self._tasks:
            return
        heartbeat = self._settings.run_heartbeat_seconds
        interval = self._settings.run_prune_interval_seconds
        self._tasks = [
            asyncio.create_task(self._every(heartbeat, heartbeat, self.tend), name="mashpipe-heartbeat"),
            asyncio.create_task(
                self._every(min(FIRST_PRUNE_DELAY, interval), interval, self.prune), name="mashpipe-retention"
            ),
        ]

    async def stop(self) -> None:
        """Stop the loops (a chore in progress is cancelled)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _every(self, first: float, interval: float, chore: Callable[[], Awaitable[object]]) -> None:
        delay = first
        while True:
            await self._sleep(delay)
            delay = interval
            try:
                await chore()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception(
                    "runtime maintenance: %s failed; tried again in %gs", chore.__name__, interval
                )


__all__ = ["FIRST_PRUNE_DELAY", "Maintenance"]
