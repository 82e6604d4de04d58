"""A loop run as one background task of the server, woken early on demand (scheduler, poller)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from app.runtime.clock import Clock, SystemClock

ERROR_PAUSE = 1.0
"""Seconds the loop waits after a pass that failed (e.g. a database error)."""


def seconds_until(planned: datetime | None, now: datetime, idle: float) -> float:
    """How long to sleep before ``planned`` (at most ``idle``; ``idle`` when nothing is planned)."""
    if planned is None:
        return idle
    return min(idle, max(0.0, (planned - now).total_seconds()))


class BackgroundLoop:
    """``start()`` runs :meth:`run` as a background task, ``wake()`` cuts its current sleep short,
    ``stop()`` cancels it and waits for it to end. :meth:`run` repeats :meth:`one_pass` (which says how
    long to sleep after it) on ``self.clock``; subclasses implement :meth:`one_pass`."""

    task_name = "mashpipe-loop"
    logger = logging.getLogger("mashpipe.runtime")

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Go through the loop now instead of at the end of the current sleep."""
        self._wake.set()

    async def start(self) -> None:
        """Start the loop in the background (once)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=self.task_name)

    async def stop(self) -> None:
        """Cancel the loop and wait for it to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def one_pass(self, now: datetime) -> float:
        """Do what is due at ``now``; the seconds to sleep before the next pass."""
        raise NotImplementedError

    async def run(self, *, until: datetime | None = None) -> None:
        """Pass, sleep, again; forever, or until the clock reaches ``until`` (time-travel tests run the
        real loop on a :class:`~app.runtime.clock.FakeClock`). A pass that raises is logged and the loop
        waits :data:`ERROR_PAUSE` before the next one."""
        while True:
            self._wake.clear()  # a wake() from now on cuts the coming sleep short
            try:
                delay = await self.one_pass(self.clock.now())
            except Exception:
                self.logger.exception("%s: a pass failed", self.task_name)
                delay = ERROR_PAUSE
            if until is not None:
                left = (until - self.clock.now()).total_seconds()
                if left <= 0:
                    return
                delay = min(delay, left)
            await self.clock.sleep(delay, self._wake)
