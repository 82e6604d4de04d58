"""Rate limits a connector declares (``RateLimit(5000, per="hour")``) and the limiter enforcing them.

The limiter is a token bucket: up to ``requests`` at once, refilled at ``requests / period`` per second.
A request that would wait longer than ``max_wait`` seconds fails at once with :class:`RateLimited`
(retryable, with ``retry_after``) instead of holding a worker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from app.sdk.errors import ConnectorDefinitionError, RateLimited

PERIODS: dict[str, float] = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``requests`` requests ``per`` second / minute / hour / day, per connection."""

    requests: int
    per: Literal["second", "minute", "hour", "day"] = "second"

    def __post_init__(self) -> None:
        if isinstance(self.requests, bool) or not isinstance(self.requests, int) or self.requests < 1:
            raise ConnectorDefinitionError(
                f"RateLimit(requests=...) must be a positive integer, got {self.requests!r}"
            )
        if self.per not in PERIODS:
            raise ConnectorDefinitionError(
                f"RateLimit(per=...) must be one of {', '.join(PERIODS)}, got {self.per!r}"
            )

    @property
    def period(self) -> float:
        """Length of the period in seconds."""
        return PERIODS[self.per]

    def describe(self) -> dict[str, Any]:
        return {"requests": self.requests, "per": self.per}


class RateLimiter:
    """A token bucket for one :class:`RateLimit`; safe to share between concurrent tasks of one loop."""

    def __init__(
        self,
        limit: RateLimit,
        *,
        max_wait: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.limit = limit
        self.max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._rate = limit.requests / limit.period
        self._tokens = float(limit.requests)
        self._updated = clock()

    async def acquire(self, *, what: str = "this connection") -> None:
        """Take one request slot, waiting up to ``max_wait`` seconds; raise :class:`RateLimited` beyond."""
        now = self._clock()
        self._tokens = min(float(self.limit.requests), self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return
        wait = (1.0 - self._tokens) / self._rate
        if wait > self.max_wait:
            raise RateLimited(
                f"the declared rate limit of {self.limit.requests} requests per {self.limit.per} for {what} "
                f"is used up; next slot in {wait:.1f}s",
                retry_after=wait,
            )
        self._tokens -= 1.0  # reserve the slot, then wait for it: later callers queue behind
        await self._sleep(wait)
