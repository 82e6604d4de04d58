"""The webhook delivery batcher: group commit, dedupe within a batch and against the table, flush at close."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from app.runtime.delivery_batcher import BatcherClosed, DeliveryBatcher, NewDelivery
from app.storage.db import Database
from app.storage.models import Pipeline, Run
from app.storage.models_hooks import WebhookDelivery
from app.storage.repositories import HookRepo

HOOKED = """\
version: 1
name: hooked
triggers:
  - webhook: {dedupe_header: X-Id}
steps:
  - id: a
    uses: core.set
    with: {value: 1}
"""


@pytest.fixture
async def target(db: Database, account_id: str, save_pipeline: Any) -> dict[str, Any]:
    await save_pipeline(HOOKED)
    async with db.session() as session:
        pipeline = await session.scalar(select(Pipeline).where(Pipeline.name == "hooked"))
        assert pipeline is not None
        hooks = await HookRepo(session).sync(pipeline, 1)
        await session.commit()
        return {
            "hook_id": hooks[0].id,
            "account_id": account_id,
            "pipeline_id": pipeline.id,
            "pipeline_name": pipeline.name,
            "revision": pipeline.latest_revision,
        }


def delivery(target: dict[str, Any], key: str | None, n: int = 0) -> NewDelivery:
    return NewDelivery(trigger={"kind": "webhook", "body": {"n": n}}, inputs={}, dedupe_key=key, **target)


async def counts(db: Database) -> tuple[int, int]:
    async with db.session() as session:
        runs = await session.scalar(select(func.count()).select_from(Run))
        deliveries = await session.scalar(select(func.count()).select_from(WebhookDelivery))
        return int(runs or 0), int(deliveries or 0)


async def test_deliveries_arriving_together_are_one_transaction(db: Database, target: dict[str, Any]) -> None:
    batcher = DeliveryBatcher(db, max_batch=64, delay=0.05)
    results = await asyncio.gather(*(batcher.record(delivery(target, None, n)) for n in range(20)))
    assert batcher.batches == 1
    assert len({result.run_id for result in results}) == 20
    assert not any(result.duplicate for result in results)
    assert await counts(db) == (20, 0)
    async with db.session() as session:
        run = await session.get(Run, results[3].run_id)
        assert run is not None
        assert run.status == "queued"
        assert run.trigger == {"kind": "webhook", "body": {"n": 3}}
        assert run.trigger_kind == "webhook"
        assert run.attempt == 1


async def test_a_duplicate_within_a_batch_gets_the_first_run(db: Database, target: dict[str, Any]) -> None:
    batcher = DeliveryBatcher(db, max_batch=64, delay=0.05)
    results = await asyncio.gather(
        batcher.record(delivery(target, "a", 1)),
        batcher.record(delivery(target, "b", 2)),
        batcher.record(delivery(target, "a", 3)),
        batcher.record(delivery(target, None, 4)),
    )
    assert batcher.batches == 1
    assert results[2].run_id == results[0].run_id
    assert results[2].duplicate
    assert not results[0].duplicate
    assert not results[1].duplicate
    assert not results[3].duplicate
    assert await counts(db) == (3, 2)


async def test_a_redelivery_affects_only_itself(db: Database, target: dict[str, Any]) -> None:
    batcher = DeliveryBatcher(db, max_batch=64, delay=0.05)
    first = await batcher.record(delivery(target, "k", 1))
    again, fresh = await asyncio.gather(
        batcher.record(delivery(target, "k", 2)), batcher.record(delivery(target, "new", 3))
    )
    assert again.run_id == first.run_id
    assert again.duplicate
    assert not fresh.duplicate
    assert fresh.run_id != first.run_id
    assert await counts(db) == (2, 2)  # the redelivery's run was not kept


async def test_a_full_buffer_flushes_at_once(db: Database, target: dict[str, Any]) -> None:
    batcher = DeliveryBatcher(db, max_batch=5, delay=60.0)  # only a full batch can flush before a minute
    results = await asyncio.wait_for(
        asyncio.gather(*(batcher.record(delivery(target, None, n)) for n in range(10))), 30
    )
    assert len({result.run_id for result in results}) == 10
    assert batcher.batches == 2
    assert await counts(db) == (10, 0)


async def test_close_writes_the_pending_deliveries_then_refuses(db: Database, target: dict[str, Any]) -> None:
    batcher = DeliveryBatcher(db, max_batch=64, delay=60.0)
    waiting = [asyncio.ensure_future(batcher.record(delivery(target, f"k{n}", n))) for n in range(7)]
    await asyncio.sleep(0)
    await asyncio.wait_for(batcher.close(), 30)
    results = await asyncio.gather(*waiting)
    assert len({result.run_id for result in results}) == 7
    assert await counts(db) == (7, 7)
    with pytest.raises(BatcherClosed):
        await batcher.record(delivery(target, "late"))


async def test_a_failed_batch_fails_each_waiter(db: Database, target: dict[str, Any]) -> None:
    batcher = DeliveryBatcher(db, max_batch=64, delay=0.05)
    gone = dict(target, pipeline_id="no-such-pipeline")
    results = await asyncio.gather(
        batcher.record(delivery(gone, None)), batcher.record(delivery(target, None)), return_exceptions=True
    )
    assert all(isinstance(result, Exception) for result in results)
    assert await counts(db) == (0, 0)  # nothing of the batch was kept
    recorded = await batcher.record(delivery(target, None))  # the batcher goes on
    assert not recorded.duplicate


async def test_the_new_runs_of_a_batch_are_handed_on_after_its_commit(
    db: Database, target: dict[str, Any]
) -> None:
    handed: list[list[str]] = []

    async def on_commit(run_ids: list[str]) -> None:
        assert (await counts(db))[0] >= len(run_ids)  # committed before they are handed on
        handed.append(run_ids)

    batcher = DeliveryBatcher(db, max_batch=64, delay=0.05, on_commit=on_commit)
    results = await asyncio.gather(
        batcher.record(delivery(target, "x", 1)),
        batcher.record(delivery(target, "x", 2)),
        batcher.record(delivery(target, None, 3)),
    )
    assert handed == [[results[0].run_id, results[2].run_id]]  # the duplicate starts nothing
