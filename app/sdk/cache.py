"""Opt-in HTTP caching of connector requests, with hishel, kept in memory and per connection.

A connector opts in for all its actions (``Connector(..., cache=HttpCache(ttl=600))``) or one action
at a time (``@connector.action(cache=HttpCache(ttl=60))``; ``cache=False`` opts an action out of
its connector's cache). Polls, webhooks and the built-in ``request`` operation are never cached.

Only ``GET`` and ``HEAD`` answers with a 2xx status (except 206) are stored. Two modes:

* ``HttpCache(ttl=300)`` keeps an answer for ``ttl`` seconds whatever its headers say (for APIs
  that send no cache headers but change slowly: currency rates, geocoding...);
* ``HttpCache(ttl=3600, respect_headers=True)`` follows the answer's ``Cache-Control`` / ``ETag``
  (RFC 9111, as a private cache: ``no-store`` is honoured, stale entries are revalidated), and keeps
  nothing longer than ``ttl``.

An entry serves only requests with the same method, URL and headers (the connection's
``Authorization`` and API-key headers included), so an answer given to one connection is never
served to another. Entries live in process memory (:class:`MemoryCacheStorage`), bounded by
``settings.http_cache_max_bytes`` (least recently used entries go first); ``0`` disables caching.
The cache is part of the outbound client's egress guard (:class:`CachingGuardTransport`): a hit sends
nothing, a miss is guarded and size-capped like any request, and only complete answers are kept.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
from hishel import AsyncBaseStorage, CacheOptions, Entry, Headers, Request, Response
from hishel.httpx import AsyncCacheTransport

from app.sdk.errors import ConnectorDefinitionError
from app.security.egress import EgressGuardTransport, EgressPolicy

CACHE_EXTENSION = "mashpipe.cache"
CACHEABLE_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True, slots=True)
class HttpCache:
    """Cache ``GET``/``HEAD`` answers for ``ttl`` seconds (or by their headers, ``respect_headers=True``)."""

    ttl: float = 300.0
    respect_headers: bool = False

    def __post_init__(self) -> None:
        ttl = self.ttl
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl <= 86_400 * 30:
            raise ConnectorDefinitionError(f"HttpCache(ttl=...) must be seconds in (0, 30 days], got {ttl!r}")
        if not isinstance(self.respect_headers, bool):
            raise ConnectorDefinitionError("HttpCache(respect_headers=...) must be True or False")

    def describe(self) -> dict[str, Any]:
        return {"ttl": self.ttl, "respect_headers": self.respect_headers}


def cache_key(request: httpx.Request) -> str:
    """The entry key of ``request``: its method, URL and every header (credentials included), hashed."""
    digest = hashlib.sha256()
    digest.update(request.method.encode())
    digest.update(b"\0")
    digest.update(str(request.url).encode())
    for name, value in sorted(request.headers.raw):
        digest.update(b"\0" + name.lower() + b":" + value)
    return digest.hexdigest()


@dataclass(slots=True)
class _Stored:
    key: str
    request: Request
    status_code: int
    headers: Headers
    body: bytes
    ttl_deadline: float | None
    tti: float | None
    expires_at: float | None


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def _chunks(source: Iterator[bytes] | AsyncIterator[bytes] | None) -> AsyncIterator[bytes]:
    if isinstance(source, AsyncIterator):
        async for chunk in source:
            yield chunk
    elif source is not None:
        for chunk in source:
            yield chunk


class MemoryCacheStorage(AsyncBaseStorage):
    """A hishel storage in process memory: at most ``max_bytes`` of bodies, least recently used evicted.

    Follows hishel's storage contract: an entry becomes visible once its body was read to the end
    (an answer abandoned half-way is not kept), a body above ``max_entry_bytes`` is served but not
    kept, and entries expire at their TTL (counted from storage) or TTI (counted from last use).
    """

    def __init__(
        self,
        *,
        max_bytes: int,
        max_entry_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        limit = max_bytes if max_entry_bytes is None else min(max_bytes, max_entry_bytes)
        super().__init__(max_stream_size=limit)
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[uuid.UUID, _Stored] = OrderedDict()
        self._size = 0

    @property
    def size(self) -> int:
        """Bytes of bodies held."""
        return self._size

    @property
    def count(self) -> int:
        """Entries held (not a ``__len__``: hishel tests a storage for truth)."""
        return len(self._entries)

    def _drop(self, entry_id: uuid.UUID) -> None:
        stored = self._entries.pop(entry_id, None)
        if stored is not None:
            self._size -= len(stored.body)

    def _keep(self, entry_id: uuid.UUID, stored: _Stored) -> None:
        size = len(stored.body)
        if size > self.max_bytes:
            return
        now = self._clock()
        expired = [i for i, s in self._entries.items() if s.expires_at is not None and s.expires_at <= now]
        for old_id in expired:
            self._drop(old_id)
        while self._entries and self._size + size > self.max_bytes:
            self._drop(next(iter(self._entries)))
        self._entries[entry_id] = stored
        self._size += size

    async def create_entry(
        self,
        request: Request,
        response: Response,
        key: str,
        *,
        ttl: float | None = None,
        tti: float | None = None,
    ) -> Entry:
        now = self._clock()
        ttl_deadline, tti = self._limits(ttl, tti, now)
        entry_id = uuid.uuid4()
        source = response.stream
        limit = self.max_stream_size

        async def saving() -> AsyncIterator[bytes]:
            chunks: list[bytes] = []
            total = 0
            keep = True
            async for chunk in _chunks(source):
                total += len(chunk)
                if keep and limit is not None and total > limit:
                    keep, chunks = False, []  # too big to keep: served, not stored
                if keep:
                    chunks.append(chunk)
                yield chunk
            if keep:
                stored = _Stored(
                    key=key,
                    request=request,
                    status_code=response.status_code,
                    headers=response.headers,
                    body=b"".join(chunks),
                    ttl_deadline=ttl_deadline,
                    tti=tti,
                    expires_at=self._expires_at(ttl_deadline, tti, now),
                )
                self._keep(entry_id, stored)

        return Entry(id=entry_id, request=request, response=replace(response, stream=saving()))

    async def get_entries(self, key: str) -> list[Entry]:
        now = self._clock()
        found: list[Entry] = []
        for entry_id, stored in list(self._entries.items()):
            if stored.key != key:
                continue
            if stored.expires_at is not None and stored.expires_at <= now:
                self._drop(entry_id)
                continue
            stored.expires_at = self._expires_at(stored.ttl_deadline, stored.tti, now)
            self._entries.move_to_end(entry_id)
            response = Response(
                status_code=stored.status_code, headers=stored.headers, stream=_once(stored.body)
            )
            found.append(Entry(id=entry_id, request=stored.request, response=response))
        return found

    async def update_headers(self, id: uuid.UUID, headers: Headers) -> None:
        stored = self._entries.get(id)
        if stored is not None:
            stored.headers = headers

    async def remove_entry(self, id: uuid.UUID) -> None:
        self._drop(id)


class _Guarded(httpx.AsyncBaseTransport):
    """The plain guarded path of a :class:`CachingGuardTransport` (what a cache miss goes through)."""

    def __init__(self, guard: EgressGuardTransport) -> None:
        self.guard = guard

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await EgressGuardTransport.handle_async_request(self.guard, request)


class CachingGuardTransport(EgressGuardTransport):
    """The egress guard, plus an opt-in cache for requests marked with the ``mashpipe.cache`` extension.

    Unmarked requests are guarded exactly as by :class:`EgressGuardTransport`. Marked ``GET``/``HEAD``
    requests go through hishel first: a hit is answered from memory (nothing is sent, so there is no
    egress to check); a miss goes through the guard, and its answer is stored as it is read.
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        policy: EgressPolicy,
        *,
        storage: MemoryCacheStorage,
        max_response_bytes: int | None = None,
    ) -> None:
        super().__init__(inner, policy, max_response_bytes=max_response_bytes)
        self.storage = storage
        self._cache = AsyncCacheTransport(_Guarded(self), storage=storage)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        policy = request.extensions.get(CACHE_EXTENSION)
        if not isinstance(policy, HttpCache) or request.method not in CACHEABLE_METHODS:
            return await super().handle_async_request(request)
        rfc: bool | CacheOptions = CacheOptions(shared=False) if policy.respect_headers else False
        request.extensions = {
            **request.extensions,
            "caching": {"ttl": policy.ttl, "rfc": rfc, "key": cache_key(request)},
        }
        return await self._cache.handle_async_request(request)

    async def aclose(self) -> None:
        await super().aclose()
        await self.storage.close()


def guard_transport(
    inner: httpx.AsyncBaseTransport,
    policy: EgressPolicy,
    *,
    max_response_bytes: int | None,
    cache_bytes: int,
) -> EgressGuardTransport:
    """The egress guard around ``inner``, with an opt-in cache of ``cache_bytes`` (none when 0)."""
    if cache_bytes <= 0:
        return EgressGuardTransport(inner, policy, max_response_bytes=max_response_bytes)
    storage = MemoryCacheStorage(max_bytes=cache_bytes, max_entry_bytes=max_response_bytes)
    return CachingGuardTransport(inner, policy, storage=storage, max_response_bytes=max_response_bytes)


def from_cache(response: httpx.Response) -> bool:
    """Whether ``response`` was served from the cache (without asking the upstream)."""
    status = response.extensions.get("caching")
    return bool(isinstance(status, dict) and status.get("from_cache"))
