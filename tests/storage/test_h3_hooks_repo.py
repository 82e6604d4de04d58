"""HookRepo: one hook per webhook trigger, ids kept across revisions; deliveries unique per dedupe value."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from app.errors import Conflict
from app.storage.repositories import HookRepo, PublishedRepo, RunRepo

from .conftest import make_pipeline, must


async def test_sync_keeps_ids_disables_and_enables_again(db, session, account):
    pipeline = await make_pipeline(session, account)
    repo = HookRepo(session)
    first = [hook.id for hook in await repo.sync(pipeline, 2)]
    await session.commit()
    assert len(set(first)) == 2
    assert all(len(hook_id) >= 32 for hook_id in first)

    assert [hook.id for hook in await repo.sync(pipeline, 2)] == first  # a new revision keeps them
    assert [hook.id for hook in await repo.sync(pipeline, 1)] == first[:1]
    await session.commit()
    assert [hook.id for hook in await repo.list(pipeline.id)] == first[:1]
    assert await repo.target(first[1]) is None  # disabled
    third = [hook.id for hook in await repo.sync(pipeline, 3)]
    await session.commit()
    assert third[:2] == first  # the disabled hook is enabled again, same URL
    assert third[2] not in first
    assert [hook.id for hook in await repo.list(pipeline.id)] == third
    assert await repo.target(first[1]) is not None


async def test_target_gives_the_hook_and_its_pipeline(session, account):
    pipeline = await make_pipeline(session, account)
    [hook] = await HookRepo(session).sync(pipeline, 1)
    await session.commit()
    found = must(await HookRepo(session).target(hook.id))
    assert (found[0].id, found[1].id, found[1].name) == (hook.id, pipeline.id, "digest")
    assert await HookRepo(session).target("") is None
    assert await HookRepo(session).target("x" * 100) is None
    assert await HookRepo(session).target("unknown") is None


async def test_a_delivery_value_is_unique_per_hook(session, account):
    pipeline = await make_pipeline(session, account)
    [hook] = await HookRepo(session).sync(pipeline, 1)
    run = await RunRepo(session).create(
        account_id=account.id, pipeline=pipeline, revision=1, inputs={}, trigger={"kind": "webhook"}
    )
    repo = HookRepo(session)
    await repo.add_delivery(hook.id, "delivery-1", run.id)
    await session.commit()
    assert await repo.delivery_run(hook.id, "delivery-1") == run.id
    assert await repo.delivery_run(hook.id, "delivery-2") is None
    with pytest.raises(IntegrityError):
        await repo.add_delivery(hook.id, "delivery-1", run.id)
    await session.rollback()


async def test_concurrent_first_syncs_conflict_instead_of_failing(db, account, session):
    pipeline = await make_pipeline(session, account)
    async with db.session() as first, db.session() as second:
        await HookRepo(first).sync(pipeline, 1)
        await first.commit()
        # `second` decided to create the hook before `first` committed it (simulated by a stale list)
        repo = HookRepo(second)

        async def nothing_yet(pipeline_id: str) -> list:
            return []

        repo._all = nothing_yet  # type: ignore[method-assign]
        with pytest.raises(Conflict):
            await repo.sync(pipeline, 1)


async def test_published_repo_finds_by_account_and_pipeline_name(session, account, other_account):
    pipeline = await make_pipeline(session, account)
    await make_pipeline(session, other_account, "digest")
    found = must(await PublishedRepo(session).find("acme", "digest"))
    assert found.id == pipeline.id
    assert await PublishedRepo(session).find("acme", "other") is None
    assert await PublishedRepo(session).find("nobody", "digest") is None
