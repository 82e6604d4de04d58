"""Clocks for the trigger loops: the system clock, and a fake one to travel in time in tests.

A loop asks ``clock.now()`` for the time and waits with ``await clock.sleep(seconds, wake)``, which
returns early when ``wake`` is set (something changed: wake up now). :class:`FakeClock` does not
wait at all: sleeping moves its time forward, so a test runs days of schedule in milliseconds::

    clock = FakeClock(datetime(2026, 3, 28, tzinfo=UTC))
    await scheduler.run(until=clock.now() + timedelta(days=3))   # three days of fires, at once
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock"]


class Clock(Protocol):
    """What the scheduler and the poller need to know about time."""

    def now(self) -> datetime:
        """The current time, aware, in UTC."""
        ...

    async def sleep(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        """Wait ``seconds``, or less when ``wake`` is set."""
        ...


class SystemClock:
    """The real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        seconds = max(0.0, seconds)
        if wake is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), seconds)


class FakeClock:
    """A clock that only moves when told to, or when something sleeps on it (time travel)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be an aware datetime")
        self._now = start.astimezone(UTC)
        self.slept: list[float] = []
        """Every sleep asked for, in seconds (what a loop would have waited)."""

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta | float) -> datetime:
        """Move the time forward by ``delta`` (a timedelta or seconds); returns the new time."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        if step < timedelta(0):
            raise ValueError("time only moves forward")
        self._now += step
        return self._now

    def set(self, moment: datetime) -> None:
        """Jump to ``moment`` (not before the current time)."""
        self.advance(moment.astimezone(UTC) - self._now)

    async def sleep(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        self.slept.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)  # let other tasks run, as a real sleep would
