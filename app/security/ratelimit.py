"""Rate limits of the API, with the ``limits`` package (moving window).

Two limits, both configured in ``limits`` notation (``600/minute``, ``10/second;600/minute``):

* ``api_rate_limit`` applies per **API key**: every authenticated request of a key counts;
* ``public_rate_limit`` applies per **client IP and route** on the endpoints that take no API key
  (``/v1/hooks/{id}``, ``/v1/apps/{account}/{name}``): one caller hammering one hook or app does not
  starve other callers or other hooks.

Counters live in memory by default (per process: N server processes allow N times the rate);
``rate_limit_storage`` may name a shared store that ``limits`` supports (``redis://host:6379``...).
A refused request raises :class:`~app.errors.RateLimited` carrying ``retry_after`` (seconds until the
oldest hit of the window expires); the API answers 429 with a ``Retry-After`` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Sequence

from limits import RateLimitItem, parse_many
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from app.errors import MashpipeError, RateLimited
from app.settings import Settings


class RateLimitConfigError(MashpipeError):
    """A rate limit setting is not in ``limits`` notation, or its storage cannot be used."""

    code = "invalid_rate_limit"


def parse_limits(text: str, setting: str) -> tuple[RateLimitItem, ...]:
    """The limits of a setting (empty text: no limit); :class:`RateLimitConfigError` when malformed."""
    if not text.strip():
        return ()
    try:
        return tuple(parse_many(text))
    except ValueError:
        raise RateLimitConfigError(
            f"{setting} {text!r} is not a rate limit: write it like 600/minute or 10/second;600/minute"
        ) from None


def _async_uri(uri: str) -> str:
    return uri if uri.startswith("async+") else f"async+{uri}"


class RateLimits:
    """The API's rate limiters: per API key and per (client IP, public route)."""

    def __init__(
        self,
        api: Sequence[RateLimitItem] = (),
        public: Sequence[RateLimitItem] = (),
        *,
        storage_uri: str = "memory://",
    ) -> None:
        self.api = tuple(api)
        self.public = tuple(public)
        try:
            self._storage = storage_from_string(_async_uri(storage_uri))
        except Exception as exc:  # limits raises ConfigurationError, ValueError... for bad URIs
            raise RateLimitConfigError(f"cannot use the rate limit storage {storage_uri!r}: {exc}") from None
        self._limiter = MovingWindowRateLimiter(self._storage)

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        """The limiters of ``api_rate_limit``, ``public_rate_limit`` and ``rate_limit_storage``."""
        return cls(
            parse_limits(settings.api_rate_limit, "MASHPIPE_API_RATE_LIMIT"),
            parse_limits(settings.public_rate_limit, "MASHPIPE_PUBLIC_RATE_LIMIT"),
            storage_uri=settings.rate_limit_storage,
        )

    async def hit_key(self, key_id: str) -> None:
        """Count one request of the API key ``key_id``; :class:`RateLimited` when over its limit."""
        await self._hit(self.api, ("key", key_id), "this API key")

    async def hit_public(self, client: str, route: str) -> None:
        """Count one request of ``client`` (an IP) to a public ``route``; :class:`RateLimited` when over."""
        await self._hit(self.public, ("public", client, route), "this client on this endpoint")

    async def _hit(self, items: tuple[RateLimitItem, ...], identifiers: tuple[str, ...], who: str) -> None:
        for item in items:
            if await self._limiter.hit(item, *identifiers):
                continue
            stats = await self._limiter.get_window_stats(item, *identifiers)
            retry_after = max(1, math.ceil(stats.reset_time - time.time()))
            raise RateLimited(
                f"rate limit of {item} exceeded for {who}; retry in {retry_after} s",
                retry_after=retry_after,
                details={"limit": str(item), "retry_after": retry_after},
            )

    async def aclose(self) -> None:
        """Stop the in-memory storage's expiry task, if it runs (the app's lifespan calls this)."""
        timer = getattr(self._storage, "timer", None)
        if isinstance(timer, asyncio.Task) and not timer.done():
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
