"""InProcessQueue: every run handled once, concurrency bounded, errors contained, stop is clean."""

from __future__ import annotations

import asyncio

import pytest

from app.runtime.queue import InProcessQueue, QueueClosed, RunQueue


async def test_every_enqueued_run_is_handled_once_in_order_with_one_worker():
    seen: list[str] = []

    async def handler(run_id: str) -> None:
        seen.append(run_id)

    queue = InProcessQueue(handler, max_concurrent=1)
    for n in range(5):
        await queue.enqueue(f"r{n}")
    await queue.start()
    await queue.join()
    await queue.stop()
    assert seen == ["r0", "r1", "r2", "r3", "r4"]


async def test_concurrency_is_bounded_by_max_concurrent():
    release = asyncio.Event()
    running: set[str] = set()
    peak = 0
    two_running = asyncio.Event()

    async def handler(run_id: str) -> None:
        nonlocal peak
        running.add(run_id)
        peak = max(peak, len(running))
        if len(running) == 2:
            two_running.set()
        await release.wait()
        running.discard(run_id)

    queue = InProcessQueue(handler, max_concurrent=2)
    await queue.start()
    for n in range(6):
        await queue.enqueue(f"r{n}")
    await two_running.wait()
    # let every worker reach its next await: none may start a third run while two are held
    for _ in range(10):
        await asyncio.sleep(0)
    assert queue.active == 2
    assert queue.pending == 4
    release.set()
    await queue.join()
    await queue.stop()
    assert peak == 2
    assert queue.active == 0


async def test_a_failing_handler_does_not_kill_the_worker(caplog):
    seen: list[str] = []

    async def handler(run_id: str) -> None:
        if run_id == "bad":
            raise RuntimeError("boom")
        seen.append(run_id)

    queue = InProcessQueue(handler, max_concurrent=1)
    await queue.start()
    await queue.enqueue("bad")
    await queue.enqueue("good")
    await queue.join()
    await queue.stop()
    assert seen == ["good"]
    assert any("run bad" in record.getMessage() for record in caplog.records)


async def test_stop_cancels_running_handlers_and_refuses_new_runs():
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def handler(run_id: str) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    queue = InProcessQueue(handler, max_concurrent=1)
    await queue.start()
    await queue.enqueue("slow")
    await started.wait()
    await queue.stop()
    assert cancelled.is_set()
    with pytest.raises(QueueClosed):
        await queue.enqueue("late")


def test_in_process_queue_satisfies_the_protocol():
    async def handler(run_id: str) -> None:
        return None

    queue: RunQueue = InProcessQueue(handler, max_concurrent=1)
    assert isinstance(queue, InProcessQueue)
    with pytest.raises(ValueError, match="at least 1"):
        InProcessQueue(handler, max_concurrent=0)
