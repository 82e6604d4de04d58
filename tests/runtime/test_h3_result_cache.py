"""The endpoint result cache: LRU, expiry, single flight, errors not cached, callers that go away."""

from __future__ import annotations

import asyncio

import pytest

from app.runtime.result_cache import ResultCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_value_is_served_until_it_expires() -> None:
    clock = Clock()
    cache: ResultCache[str] = ResultCache(10, clock=clock)
    calls = 0

    async def compute() -> str:
        nonlocal calls
        calls += 1
        return f"value {calls}"

    first = await cache.get_or_compute("k", 30, compute)
    assert (first.value, first.hit, first.remaining(clock())) == ("value 1", False, 30)
    clock.now += 29
    second = await cache.get_or_compute("k", 30, compute)
    assert (second.value, second.hit, second.remaining(clock())) == ("value 1", True, 1)
    clock.now += 1
    third = await cache.get_or_compute("k", 30, compute)
    assert (third.value, third.hit) == ("value 2", False)
    assert calls == 2


async def test_least_recently_used_entries_are_dropped_first() -> None:
    cache: ResultCache[int] = ResultCache(2, clock=Clock())
    cache.put("a", 1, 60)
    cache.put("b", 2, 60)
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", 3, 60)
    assert cache.get("b") is None
    assert [cache.get(key).value for key in ("a", "c")] == [1, 3]  # type: ignore[union-attr]
    assert len(cache) == 2
    cache.put("d", 4, 0)  # a zero ttl keeps nothing
    assert cache.get("d") is None
    cache.clear()
    assert len(cache) == 0


async def test_concurrent_callers_share_one_computation() -> None:
    cache: ResultCache[str] = ResultCache(10)
    release = asyncio.Event()
    calls = 0

    async def compute() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return "shared"

    callers = [asyncio.ensure_future(cache.get_or_compute("k", 60, compute)) for _ in range(25)]
    while cache.waiting("k") < 25:
        await asyncio.sleep(0)
    assert cache.in_flight() == 1
    release.set()
    results = await asyncio.gather(*callers)
    assert {result.value for result in results} == {"shared"}
    assert sorted(result.hit for result in results) == [False] + [True] * 24
    assert calls == 1
    assert cache.in_flight() == 0
    assert cache.waiting() == 0


async def test_an_error_reaches_every_waiter_and_is_not_cached() -> None:
    cache: ResultCache[str] = ResultCache(10)
    release = asyncio.Event()
    attempts = 0

    async def failing() -> str:
        nonlocal attempts
        attempts += 1
        await release.wait()
        raise RuntimeError("upstream down")

    callers = [asyncio.ensure_future(cache.get_or_compute("k", 60, failing)) for _ in range(3)]
    while cache.waiting() < 3:
        await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(result, RuntimeError) for result in results)
    assert attempts == 1
    assert cache.get("k") is None

    async def working() -> str:
        return "fine"

    assert (await cache.get_or_compute("k", 60, working)).value == "fine"


async def test_a_caller_going_away_does_not_cancel_the_shared_computation() -> None:
    cache: ResultCache[str] = ResultCache(10)
    release = asyncio.Event()

    async def compute() -> str:
        await release.wait()
        return "done"

    leaving = asyncio.ensure_future(cache.get_or_compute("k", 60, compute))
    staying = asyncio.ensure_future(cache.get_or_compute("k", 60, compute))
    while cache.waiting() < 2:
        await asyncio.sleep(0)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    release.set()
    assert (await staying).value == "done"
    assert cache.get("k") is not None


def test_max_entries_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ResultCache(0)
