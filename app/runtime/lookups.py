"""Lookups remembered for a few seconds, loaded once however many callers want them at the same time.

Published endpoints and webhooks find their pipeline by name or hook id on every request; reading
the database each time would cost more than a small run. :class:`RememberedLookups` keeps each found
value for ``ttl`` seconds in a bounded LRU, and when a value is missing or stale, concurrent callers
wait for ONE load (under load, an expired entry would otherwise send every request in flight to the
database at the same moment). A value forgotten while it loads (the pipeline was saved meanwhile) is
given to the callers of that load but not remembered. Failed loads (e.g. ``NotFound``) are never
remembered.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class RememberedLookups(Generic[K, V]):
    """Values by key, remembered ``ttl`` seconds (0: never), at most ``max_entries`` of them."""

    def __init__(self, ttl: float, max_entries: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max(1, max_entries)
        self.clock = clock
        self._values: OrderedDict[K, tuple[V, float]] = OrderedDict()
        self._loading: dict[K, asyncio.Future[V]] = {}
        self._generation = 0  # bumped by every forget: a load begun before it is not remembered
        self.loads = 0  # loads started so far (for tests and measurements)

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The remembered value of ``key``, or the value ``load()`` gives (one load at a time per key)."""
        found = self._values.get(key)
        if found is not None and found[1] > self.clock():
            return found[0]
        pending = self._loading.get(key)
        while pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not pending.cancelled() or (task is not None and task.cancelling()):
                    raise
            # The caller that was loading it was cancelled: load it here (or join a newer load).
            pending = self._loading.get(key)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        generation = self._generation
        self.loads += 1
        try:
            value = await load()
        except BaseException as exc:
            if isinstance(exc, Exception):
                future.set_exception(exc)
                future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
            else:
                future.cancel()
            raise
        finally:
            self._loading.pop(key, None)
        future.set_result(value)
        if self.ttl > 0 and generation == self._generation:
            self._values[key] = (value, self.clock() + self.ttl)
            self._values.move_to_end(key)
            while len(self._values) > self.max_entries:
                self._values.popitem(last=False)
        return value

    def forget(self, key: K) -> None:
        """Forget ``key`` (and any value being loaded now: it is used once, not remembered)."""
        self._generation += 1
        self._values.pop(key, None)

    def forget_where(self, stale: Callable[[V], bool]) -> None:
        """Forget every remembered value for which ``stale(value)`` is true (and loads in flight)."""
        self._generation += 1
        for key in [key for key, (value, _) in self._values.items() if stale(value)]:
            del self._values[key]


__all__ = ["RememberedLookups"]
