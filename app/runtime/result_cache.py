"""A bounded, expiring, single-flight cache of results (the published endpoints' ``cache: DURATION``).

:meth:`ResultCache.get_or_compute` gives the cached value of a key while it is fresh; on a miss, the
first caller starts ONE computation as its own task and every caller asking for the same key meanwhile
awaits that same task (no stampede: N concurrent requests for a cold key make one run). The task is
shielded, so a caller that goes away (client disconnect) does not cancel the work others wait for.
A computation that raises is not cached: its waiters all get the error, the next caller tries again.

Entries are dropped least recently used first beyond ``max_entries``, and when they expire.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Cached(Generic[T]):
    """A value and how it was obtained."""

    value: T
    expires_at: float  # on the cache's clock
    hit: bool  # served from the cache (or a computation another caller started), not computed here

    def remaining(self, now: float) -> float:
        """Seconds left before the entry expires (0 when it has)."""
        return max(0.0, self.expires_at - now)


class ResultCache(Generic[T]):
    """LRU cache with a time to live per entry and one computation per key at a time."""

    def __init__(self, max_entries: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self.clock = clock
        self._entries: OrderedDict[Hashable, tuple[T, float]] = OrderedDict()
        self._inflight: dict[Hashable, asyncio.Task[T]] = {}
        self._waiting: dict[Hashable, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Cached[T] | None:
        """The fresh cached value of ``key``, or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at <= self.clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return Cached(value, expires_at, hit=True)

    def put(self, key: Hashable, value: T, ttl: float) -> float:
        """Keep ``value`` for ``ttl`` seconds; returns when it expires."""
        expires_at = self.clock() + ttl
        if ttl > 0:
            self._entries[key] = (value, expires_at)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return expires_at

    def waiting(self, key: Hashable | None = None) -> int:
        """How many callers wait for the computation of ``key`` in flight (of any key when None)."""
        if key is None:
            return sum(self._waiting.values())
        return self._waiting.get(key, 0)

    def in_flight(self) -> int:
        """How many computations are in flight."""
        return len(self._inflight)

    def clear(self) -> None:
        """Forget every entry (computations in flight go on)."""
        self._entries.clear()

    async def get_or_compute(
        self, key: Hashable, ttl: float, compute: Callable[[], Awaitable[T]]
    ) -> Cached[T]:
        """The fresh value of ``key``, else the result of ONE ``compute()`` shared by concurrent callers."""
        cached = self.get(key)
        if cached is not None:
            return cached
        task = self._inflight.get(key)
        joined = task is not None
        if task is None:
            task = asyncio.ensure_future(self._compute(key, ttl, compute))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._settled(key, done))
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            value = await asyncio.shield(task)
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:
                del self._waiting[key]
        entry = self._entries.get(key)
        expires_at = entry[1] if entry is not None else self.clock()
        return Cached(value, expires_at, hit=joined)

    def _settled(self, key: Hashable, task: asyncio.Task[T]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" warning when every waiter went away

    async def _compute(self, key: Hashable, ttl: float, compute: Callable[[], Awaitable[T]]) -> T:
        value = await compute()
        self.put(key, value, ttl)
        return value
