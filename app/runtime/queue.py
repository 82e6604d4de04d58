"""The run queue: ONE interface, implementations behind it.

Runs reach the queue only through :meth:`app.runtime.service.RunService.submit` (every trigger:
manual, schedule, webhook, endpoint, poll, retry) and the service's recovery; nothing else enqueues.
The queue only moves run ids; what executing a run means lives in
:meth:`app.runtime.service.RunService.execute`, which every implementation calls. The in-process
queue below runs inside the server's event loop; its workers are the global concurrency limit
(``max_concurrent_runs``); per-pipeline limits are the service's (see :mod:`app.runtime.limits`). A
PostgreSQL-backed queue (procrastinate) can take its place behind the same :class:`RunQueue` protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from app.errors import MashpipeError

logger = logging.getLogger("mashpipe.runtime.queue")

RunHandler = Callable[[str], Awaitable[None]]


class RunQueue(Protocol):
    """Where runs recorded as ``queued`` wait for a worker."""

    async def enqueue(self, run_id: str) -> None:
        """Hand a queued run to a worker; returns at once."""
        ...

    async def start(self) -> None:
        """Start executing enqueued runs."""
        ...

    async def stop(self) -> None:
        """Stop the workers; runs still waiting stay ``queued`` in the database."""
        ...


class QueueClosed(MashpipeError):
    """The queue is stopped and accepts no run (the server is shutting down)."""

    status = 503
    code = "unavailable"


class InProcessQueue:
    """An asyncio queue worked by ``max_concurrent`` tasks of this process.

    ``handler(run_id)`` is called once per enqueued run (``RunService.execute``); it is expected not to
    raise, but an exception is logged and the worker goes on. At most ``max_concurrent`` handlers run at
    once; more runs wait in order of arrival.
    """

    def __init__(self, handler: RunHandler, *, max_concurrent: int) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self._handler = handler
        self._max_concurrent = max_concurrent
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._closed = False
        self._active = 0

    @property
    def pending(self) -> int:
        """Runs waiting for a worker."""
        return self._queue.qsize()

    @property
    def active(self) -> int:
        """Runs being executed right now."""
        return self._active

    async def enqueue(self, run_id: str) -> None:
        if self._closed:
            raise QueueClosed("the server is shutting down; the run stays queued and starts after a restart")
        self._queue.put_nowait(run_id)

    async def start(self) -> None:
        if self._workers:
            return
        self._closed = False
        self._workers = [
            asyncio.create_task(self._work(), name=f"mashpipe-run-worker-{n}")
            for n in range(self._max_concurrent)
        ]

    async def join(self) -> None:
        """Wait until every enqueued run has been handled (for tests and the CLI)."""
        await self._queue.join()

    async def stop(self) -> None:
        self._closed = True
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.cancel()
        for worker in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def _work(self) -> None:
        while True:
            run_id = await self._queue.get()
            self._active += 1
            try:
                await self._handler(run_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("run %s: the run handler raised", run_id)
            finally:
                self._active -= 1
                self._queue.task_done()
