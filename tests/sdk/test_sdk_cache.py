"""Opt-in HTTP caching (hishel): per connector or action, per connection, bounded, in memory."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import httpx
import pytest
import respx
from hishel import Headers, Request, Response
from pydantic import BaseModel, Field

from app.engine.types import OperationCall
from app.registry import Registry
from app.runtime.caller import ConnectorCaller
from app.sdk import BearerToken, Connector, ConnectorDefinitionError, Context, Poll
from app.sdk.cache import CachingGuardTransport, HttpCache, MemoryCacheStorage, from_cache
from app.sdk.http import build_http_client
from app.sdk.testing import settings_for_tests
from app.security.egress import EgressGuardTransport

API = "https://api.rates.test"

rates = Connector(
    key="rates",
    version="1.0.0",
    title="Rates",
    description="Slowly changing rates.",
    base_url=API,
    auth=[BearerToken()],
    test_request=("GET", "/me"),
    cache=HttpCache(ttl=60),
)


class Query(BaseModel):
    path: str = Field(default="/latest", description="Path to read")


@rates.action(title="Latest")
async def latest(ctx: Context, p: Query) -> dict[str, Any]:
    """GET a path; say whether the answer came from the cache."""
    response = await ctx.http.get(p.path)
    return {"status": response.status_code, "cached": from_cache(response), "body": response.text}


@rates.action(title="Live", cache=False)
async def live(ctx: Context, p: Query) -> dict[str, Any]:
    """The same, never cached."""
    response = await ctx.http.get(p.path)
    return {"status": response.status_code, "cached": from_cache(response)}


@rates.action(title="Create")
async def create(ctx: Context, p: Query) -> int:
    """POST to a path (never cached)."""
    return (await ctx.http.post(p.path, json={})).status_code


@rates.poll(title="Changes", dedupe=lambda item: item)
async def changes(ctx: Context, p: Query, cursor: int | None) -> Poll[int]:
    """Polls are never cached."""
    return Poll(items=[], cursor=cursor)


headers_api = Connector(
    key="headers_api",
    version="1.0.0",
    title="Headers",
    description="Caching that follows Cache-Control.",
    base_url=API,
)


@headers_api.action(title="Read", cache=HttpCache(ttl=600, respect_headers=True))
async def read(ctx: Context, p: Query) -> dict[str, Any]:
    """GET a path, following its cache headers."""
    response = await ctx.http.get(p.path)
    return {"cached": from_cache(response), "body": response.text}


async def connections(account_id: str | None, name: str) -> Mapping[str, Any] | None:
    return {
        "one": {"kind": "bearer", "token": "token-one"},
        "two": {"kind": "bearer", "token": "token-two"},
    }.get(name)


@pytest.fixture
async def caller() -> AsyncIterator[ConnectorCaller]:
    settings = settings_for_tests()
    async with build_http_client(settings) as client:
        yield ConnectorCaller(Registry.from_connectors([rates, headers_api]), client, settings, connections)


async def call(caller: ConnectorCaller, uses: str, connection: str | None = "one", **params: Any) -> Any:
    return await caller(
        OperationCall(uses=uses, params=params, connection=connection, run_id="r", step_id="s", attempt=1)
    )


def test_declarations() -> None:
    assert rates.cache_for(rates.operations["latest"]) == HttpCache(ttl=60)
    assert rates.cache_for(rates.operations["live"]) is None
    assert rates.cache_for(rates.operations["changes"]) is None  # polls want fresh data
    assert rates.cache_for(rates.operations["request"]) is None  # the raw request is never cached
    assert headers_api.cache_for(headers_api.operations["read"]) == HttpCache(ttl=600, respect_headers=True)
    with pytest.raises(ConnectorDefinitionError, match="ttl"):
        HttpCache(ttl=0)
    with pytest.raises(ConnectorDefinitionError, match="cache must be an HttpCache"):
        Connector(key="x", version="1.0.0", title="X", description="X.", cache=60)  # type: ignore[arg-type]
    with pytest.raises(ConnectorDefinitionError, match=r"HttpCache\(ttl=\.\.\.\) or False"):
        rates.action(title="Bad", cache=True)  # type: ignore[arg-type]


@respx.mock
async def test_answers_are_served_from_cache_per_connection(caller: ConnectorCaller) -> None:
    route = respx.get(f"{API}/latest").mock(
        side_effect=lambda request: httpx.Response(200, text=request.headers["Authorization"])
    )
    first = await call(caller, "rates.latest")
    second = await call(caller, "rates.latest")
    assert first == {"status": 200, "cached": False, "body": "Bearer token-one"}
    assert second == {"status": 200, "cached": True, "body": "Bearer token-one"}
    assert route.call_count == 1
    other = await call(caller, "rates.latest", connection="two")  # another connection never shares
    assert other == {"status": 200, "cached": False, "body": "Bearer token-two"}
    assert route.call_count == 2
    await call(caller, "rates.latest", path="/latest?base=EUR")  # another URL
    assert route.call_count == 3


@respx.mock
async def test_opt_out_errors_and_posts_are_not_cached(caller: ConnectorCaller) -> None:
    live_route = respx.get(f"{API}/live").respond(200, text="x")
    await call(caller, "rates.live", path="/live")
    assert (await call(caller, "rates.live", path="/live"))["cached"] is False
    assert live_route.call_count == 2

    flaky = respx.get(f"{API}/flaky").mock(side_effect=[httpx.Response(503), httpx.Response(200, text="ok")])
    assert (await call(caller, "rates.latest", path="/flaky"))["status"] == 503
    assert (await call(caller, "rates.latest", path="/flaky")) == {
        "status": 200,
        "cached": False,
        "body": "ok",
    }
    assert (await call(caller, "rates.latest", path="/flaky"))["cached"] is True
    assert flaky.call_count == 2

    posts = respx.post(f"{API}/things").respond(201)
    await call(caller, "rates.create", path="/things")
    await call(caller, "rates.create", path="/things")
    assert posts.call_count == 2


@respx.mock
async def test_respect_headers_follows_cache_control(caller: ConnectorCaller) -> None:
    fresh = respx.get(f"{API}/fresh").respond(200, text="f", headers={"Cache-Control": "max-age=300"})
    no_store = respx.get(f"{API}/secret").respond(200, text="s", headers={"Cache-Control": "no-store"})
    for _ in range(2):
        await call(caller, "headers_api.read", connection=None, path="/fresh")
        await call(caller, "headers_api.read", connection=None, path="/secret")
    assert fresh.call_count == 1
    assert no_store.call_count == 2


async def test_cache_can_be_turned_off() -> None:
    async with build_http_client(settings_for_tests(http_cache_max_bytes=0)) as client:
        assert type(client._transport) is EgressGuardTransport
    async with build_http_client(settings_for_tests()) as client:
        assert isinstance(client._transport, CachingGuardTransport)


@respx.mock
async def test_oversized_answers_fail_and_are_not_kept() -> None:
    respx.get(f"{API}/big").respond(200, content=b"x" * 5000)
    settings = settings_for_tests(response_max_bytes=4096)
    async with build_http_client(settings) as client:
        caller = ConnectorCaller(Registry.from_connectors([rates]), client, settings, connections)
        for _ in range(2):
            with pytest.raises(Exception, match="exceeds 4096 bytes"):
                await call(caller, "rates.latest", path="/big")
        transport = client._transport
        assert isinstance(transport, CachingGuardTransport)
        assert transport.storage.count == 0


# -- the memory storage ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def body(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def answer(chunks: list[bytes]) -> Response:
    return Response(status_code=200, headers=Headers({"content-type": ["text/plain"]}), stream=body(chunks))


async def store(storage: MemoryCacheStorage, key: str, chunks: list[bytes], **limits: Any) -> bytes:
    entry = await storage.create_entry(
        Request(method="GET", url=f"https://x.test/{key}"), answer(chunks), key, **limits
    )
    stream = entry.response.stream
    assert isinstance(stream, AsyncIterator)
    return b"".join([chunk async for chunk in stream])


async def read_back(storage: MemoryCacheStorage, key: str) -> list[bytes]:
    out = []
    for entry in await storage.get_entries(key):
        stream = entry.response.stream
        assert isinstance(stream, AsyncIterator)
        out.append(b"".join([chunk async for chunk in stream]))
    return out


async def test_storage_keeps_complete_bodies_until_their_ttl() -> None:
    clock = Clock()
    storage = MemoryCacheStorage(max_bytes=1000, clock=clock)
    assert await store(storage, "a", [b"he", b"llo"], ttl=10) == b"hello"
    assert await read_back(storage, "a") == [b"hello"]
    assert await read_back(storage, "b") == []
    clock.now += 11
    assert await read_back(storage, "a") == []
    assert storage.count == 0


async def test_storage_drops_partial_and_oversized_bodies() -> None:
    storage = MemoryCacheStorage(max_bytes=1000, max_entry_bytes=4)
    entry = await storage.create_entry(
        Request(method="GET", url="https://x.test/p"), answer([b"ab", b"cd"]), "p"
    )
    stream = entry.response.stream
    assert isinstance(stream, AsyncGenerator)
    assert await anext(stream) == b"ab"
    await stream.aclose()  # the reader gave up half-way
    assert await read_back(storage, "p") == []
    assert await store(storage, "big", [b"abc", b"def"]) == b"abcdef"  # served whole, not kept
    assert await read_back(storage, "big") == []


async def test_storage_evicts_least_recently_used() -> None:
    storage = MemoryCacheStorage(max_bytes=10)
    await store(storage, "a", [b"aaaa"])
    await store(storage, "b", [b"bbbb"])
    await read_back(storage, "a")  # a is now the most recently used
    await store(storage, "c", [b"cccc"])
    assert (await read_back(storage, "a"), await read_back(storage, "b"), await read_back(storage, "c")) == (
        [b"aaaa"],
        [],
        [b"cccc"],
    )
    assert storage.size == 8
    entry = (await storage.get_entries("a"))[0]
    await storage.update_headers(entry.id, Headers({"x": ["1"]}))
    assert (await storage.get_entries("a"))[0].response.headers["x"] == "1"
    await storage.remove_entry(entry.id)
    assert await read_back(storage, "a") == []
