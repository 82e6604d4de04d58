"""Waiting for runs to finish, and their final states handed over in memory.

:class:`RunWaits` is the part of :class:`~app.runtime.service.RunService` that callers wait on
(``wait``, ``wait_outcome``, ``status``): the run executor tells it when a run of this process
finished (:meth:`RunWaits.notify`) and, when someone waits for that run, its final state
(:meth:`RunWaits.record`), so that the waiter gets it without reading the database. A run finishing
in another process is seen by reading it at least every :data:`POLL_INTERVAL` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from app.runtime.run_values import FINISHED
from app.storage.db import Database
from app.storage.repositories import RunRepo

POLL_INTERVAL = 1.0  # waiting re-reads the run at least this often (a run may finish in another process)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """The final state of a run, as :meth:`RunService.wait_outcome` gives it."""

    status: str
    outputs: dict[str, Any] | None
    error: dict[str, Any] | None


class RunWaits:
    """Who waits for which run, the events that wake them and the final states handed to them."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._done: dict[str, asyncio.Event] = {}
        self._waiters: dict[str, int] = {}
        self.outcomes: dict[str, RunOutcome] = {}  # final states of runs someone waits for (wait_outcome)

    def record(
        self, run_id: str, status: str, outputs: dict[str, Any] | None, error: dict[str, Any] | None
    ) -> None:
        """The run's final state is recorded: keep it for its waiters, if it has any."""
        if run_id in self._waiters:
            self.outcomes[run_id] = RunOutcome(status, outputs, error)

    def notify(self, run_id: str) -> None:
        """The run finished (or will not start here): wake whoever waits for it."""
        event = self._done.pop(run_id, None)
        if event is not None:
            event.set()

    async def status(self, run_id: str) -> str | None:
        """The run's current status, or None when there is no such run."""
        async with self._db.session() as session:
            run = await RunRepo(session).get_any(run_id)
            return None if run is None else run.status

    async def wait(self, run_id: str, timeout: float) -> bool:  # noqa: ASYNC109 - a cap, not a scope
        """Wait until the run is finished or ``timeout`` seconds pass; True when it is finished."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        self._waiters[run_id] = self._waiters.get(run_id, 0) + 1
        try:
            while True:
                event = self._done.setdefault(run_id, asyncio.Event())
                status = await self.status(run_id)
                if status is None or status in FINISHED:
                    return status is not None
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(remaining, POLL_INTERVAL))
        finally:
            self._waiters[run_id] -= 1
            if not self._waiters[run_id]:
                del self._waiters[run_id]
                pending = self._done.get(run_id)
                if pending is not None and not pending.is_set():
                    del self._done[run_id]

    async def wait_outcome(
        self,
        run_id: str,
        timeout: float,  # noqa: ASYNC109 - a cap, not a scope
        *,
        started_here: bool = True,
    ) -> RunOutcome | None:
        """Wait until the run is finished and give its final state, or None when it is not finished after
        ``timeout`` seconds (or does not exist).

        A run finished by this process is given from memory, without reading the database (the published
        endpoints and ``?wait=true`` webhooks wait for every run they start); otherwise the run is read
        once it is finished, checking at least every ``POLL_INTERVAL`` (it may run in another process).
        ``started_here=False`` (a run submitted earlier, maybe finished long ago) reads it first.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        self._waiters[run_id] = self._waiters.get(run_id, 0) + 1
        try:
            while True:
                event = self._done.setdefault(run_id, asyncio.Event())
                outcome = self.outcomes.get(run_id)
                if outcome is not None:
                    return outcome
                remaining = deadline - loop.time()
                if remaining > 0 and started_here:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(event.wait(), min(remaining, POLL_INTERVAL))
                    outcome = self.outcomes.get(run_id)
                    if outcome is not None:
                        return outcome
                async with self._db.session() as session:
                    run = await RunRepo(session).get_any(run_id)
                if run is None:
                    return None
                if run.status in FINISHED:
                    return RunOutcome(run.status, run.outputs, run.error)
                if deadline - loop.time() <= 0:
                    return None
                started_here = True
        finally:
            self._waiters[run_id] -= 1
            if not self._waiters[run_id]:
                del self._waiters[run_id]
                self.outcomes.pop(run_id, None)
                pending = self._done.get(run_id)
                if pending is not None and not pending.is_set():
                    del self._done[run_id]
