"""A loop run as one background task of the server, woken early on demand (scheduler, poller)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime


class BackgroundLoop:
    """``start()`` runs :meth:`run` as a background task, ``wake()`` cuts its current sleep short,
    ``stop()`` cancels it and waits for it to end. Subclasses implement :meth:`run` and clear
    ``self._wake`` at the top of each pass."""

    task_name = "mashpipe-loop"

    def __init__(self) -> None:
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

    async def run(self, *, until: datetime | None = None) -> None:
        raise NotImplementedError
