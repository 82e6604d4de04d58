"""RememberedLookups: values kept for a TTL, one load for concurrent callers, forgetting wins over loads."""

from __future__ import annotations

import asyncio

import pytest

from app.errors import NotFound
from app.runtime.lookups import RememberedLookups


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Loader:
    """Counts its loads; each load waits for `release` and gives `value` (or raises `error`)."""

    def __init__(self) -> None:
        self.loads = 0
        self.value = "v1"
        self.error: Exception | None = None
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> str:
        self.loads += 1
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return self.value


async def test_a_value_is_remembered_for_its_ttl_then_loaded_again() -> None:
    clock, load = Clock(), Loader()
    lookups: RememberedLookups[str, str] = RememberedLookups(2.0, 10, clock=clock)
    assert await lookups.get("k", load) == "v1"
    load.value = "v2"
    clock.now += 1.9
    assert await lookups.get("k", load) == "v1"
    clock.now += 0.2
    assert await lookups.get("k", load) == "v2"
    assert load.loads == 2


async def test_concurrent_callers_share_one_load() -> None:
    load = Loader()
    load.release.clear()
    lookups: RememberedLookups[str, str] = RememberedLookups(1.0, 10)
    callers = [asyncio.create_task(lookups.get("k", load)) for _ in range(50)]
    await asyncio.sleep(0.01)
    load.release.set()
    assert await asyncio.gather(*callers) == ["v1"] * 50
    assert load.loads == 1 == lookups.loads


async def test_a_failed_load_reaches_every_waiting_caller_and_is_not_remembered() -> None:
    load = Loader()
    load.release.clear()
    load.error = NotFound("no such pipeline")
    lookups: RememberedLookups[str, str] = RememberedLookups(1.0, 10)
    callers = [asyncio.create_task(lookups.get("k", load)) for _ in range(3)]
    await asyncio.sleep(0.01)
    load.release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(result, NotFound) for result in results)
    load.error = None
    assert await lookups.get("k", load) == "v1"
    assert load.loads == 2


async def test_a_value_forgotten_while_it_loads_is_used_once_but_not_remembered() -> None:
    load = Loader()
    load.release.clear()
    lookups: RememberedLookups[str, str] = RememberedLookups(60.0, 10)
    first = asyncio.create_task(lookups.get("k", load))
    await asyncio.sleep(0.01)
    lookups.forget("k")  # the pipeline was saved while its old revision was being read
    load.release.set()
    assert await first == "v1"
    load.value = "v2"
    assert await lookups.get("k", load) == "v2"
    assert load.loads == 2


async def test_forget_where_drops_only_the_matching_values() -> None:
    lookups: RememberedLookups[str, str] = RememberedLookups(60.0, 10)
    for key in ("a", "b"):

        async def value(key: str = key) -> str:
            return f"pipeline-{key}"

        await lookups.get(key, value)
    lookups.forget_where(lambda value: value == "pipeline-a")
    load = Loader()
    assert await lookups.get("a", load) == "v1"
    assert await lookups.get("b", load) == "pipeline-b"
    assert load.loads == 1


async def test_when_the_loading_caller_is_cancelled_a_waiting_caller_loads_itself() -> None:
    load = Loader()
    load.release.clear()
    lookups: RememberedLookups[str, str] = RememberedLookups(60.0, 10)
    loading = asyncio.create_task(lookups.get("k", load))
    await asyncio.sleep(0.01)
    waiting = asyncio.create_task(lookups.get("k", load))
    await asyncio.sleep(0.01)
    loading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loading
    load.release.set()
    assert await waiting == "v1"
    assert load.loads == 2


async def test_the_oldest_values_go_beyond_max_entries_and_ttl_zero_remembers_nothing() -> None:
    lookups: RememberedLookups[str, str] = RememberedLookups(60.0, 2)
    load = Loader()
    for key in ("a", "b", "c"):
        await lookups.get(key, load)
    await lookups.get("c", load)
    await lookups.get("a", load)  # dropped as the oldest: loaded again
    assert load.loads == 4
    never: RememberedLookups[str, str] = RememberedLookups(0.0, 2)
    await never.get("k", load)
    await never.get("k", load)
    assert load.loads == 6
