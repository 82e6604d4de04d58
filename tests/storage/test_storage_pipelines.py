"""PipelineRepo: creation, revisions (immutable, identical source), listing, scoping, cascade."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import func, select

from app.engine.types import StepResult, StepStatus
from app.errors import BadRequest, Conflict, NotFound
from app.storage import Pipeline, PipelineRepo, PipelineRevision, Run, RunRepo, StepRun

from .conftest import SOURCE, make_pipeline, must, spec_for


async def test_create_makes_revision_one(session, account):
    source = SOURCE.format(name="digest")
    pipeline, revision = await PipelineRepo(session).create(account.id, "digest", source, spec_for("digest"))
    await session.commit()
    assert pipeline.name == "digest"
    assert pipeline.latest_revision == 1
    assert pipeline.created_at == pipeline.updated_at
    assert revision.number == 1
    assert revision.pipeline_id == pipeline.id
    assert revision.source == source
    assert revision.spec == spec_for("digest")
    assert revision.source_sha256 == hashlib.sha256(source.encode()).hexdigest()


async def test_create_twice_is_a_conflict(session, account):
    await make_pipeline(session, account, "digest")
    with pytest.raises(Conflict, match="already exists"):
        await PipelineRepo(session).create(account.id, "digest", "x", {})


async def test_same_name_in_two_accounts(session, account, other_account):
    mine = await make_pipeline(session, account, "digest")
    theirs = await make_pipeline(session, other_account, "digest")
    assert mine.id != theirs.id


async def test_get_is_scoped_by_account(session, account, other_account):
    pipeline = await make_pipeline(session, account)
    repo = PipelineRepo(session)
    assert must(await repo.get(account.id, "digest")).id == pipeline.id
    assert await repo.get(other_account.id, "digest") is None
    assert must(await repo.get_by_id(account.id, pipeline.id)).name == "digest"
    assert await repo.get_by_id(other_account.id, pipeline.id) is None
    assert await repo.get(account.id, "missing") is None


async def test_add_revision_increments_and_keeps_old_ones(session, account):
    pipeline = await make_pipeline(session, account)
    repo = PipelineRepo(session)
    first_source = SOURCE.format(name="digest")
    second_source = first_source + "# second\n"
    second = await repo.add_revision(pipeline, second_source, {"v": 2})
    await session.commit()
    assert second.number == 2
    assert pipeline.latest_revision == 2
    assert pipeline.updated_at == second.created_at
    assert pipeline.updated_at > pipeline.created_at
    third = await repo.add_revision(pipeline, first_source, {"v": 3})  # going back is a new revision
    await session.commit()
    assert third.number == 3

    session.expunge_all()
    assert must(await repo.get_revision(pipeline.id, 1)).source == first_source
    assert must(await repo.get_revision(pipeline.id, 2)).source == second_source
    assert must(await repo.get_revision(pipeline.id, 2)).spec == {"v": 2}
    assert await repo.get_revision(pipeline.id, 4) is None
    reloaded = await repo.get(account.id, "digest")
    assert (await repo.latest_revision(must(reloaded))).number == 3
    assert [item.number for item in await repo.list_revisions(pipeline.id)] == [3, 2, 1]
    assert must(await repo.get_revision_by_id(second.id)).number == 2


async def test_identical_source_makes_no_revision(session, account):
    pipeline = await make_pipeline(session, account)
    repo = PipelineRepo(session)
    updated_at = pipeline.updated_at
    same = await repo.add_revision(pipeline, SOURCE.format(name="digest"), {"ignored": True})
    await session.commit()
    assert same.number == 1
    assert same.spec == spec_for("digest")
    assert pipeline.latest_revision == 1
    assert pipeline.updated_at == updated_at
    count = await session.scalar(select(func.count()).select_from(PipelineRevision))
    assert count == 1


async def test_whitespace_difference_is_a_new_revision(session, account):
    pipeline = await make_pipeline(session, account)
    revision = await PipelineRepo(session).add_revision(pipeline, SOURCE.format(name="digest") + " ", {})
    assert revision.number == 2


async def test_add_revision_uses_the_stored_number(session, db, account):
    """A stale Pipeline object (another session added a revision) still gets the next number."""
    stale = await make_pipeline(session, account)
    async with db.session() as other:
        fresh = must(await PipelineRepo(other).get(account.id, "digest"))
        await PipelineRepo(other).add_revision(fresh, "version: 1\n# from elsewhere\n", {})
        await other.commit()
    revision = await PipelineRepo(session).add_revision(stale, "version: 1\n# mine\n", {})
    await session.commit()
    assert revision.number == 3
    assert stale.latest_revision == 3


async def test_add_revision_of_deleted_pipeline(session, db, account):
    pipeline = await make_pipeline(session, account)
    async with db.session() as other:
        await PipelineRepo(other).delete(must(await PipelineRepo(other).get(account.id, "digest")))
        await other.commit()
    with pytest.raises(NotFound):
        await PipelineRepo(session).add_revision(pipeline, "version: 1\n", {})


async def test_list_pages_by_name(session, account, other_account):
    names = [f"p-{index:02d}" for index in range(7)]
    for name in reversed(names):
        await make_pipeline(session, account, name)
    await make_pipeline(session, other_account, "p-foreign")
    repo = PipelineRepo(session)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        items, cursor = await repo.list(account.id, limit=3, cursor=cursor)
        seen.extend(item.name for item in items)
        pages += 1
        if cursor is None:
            break
    assert seen == names
    assert pages == 3
    assert await repo.count(account.id) == 7
    everything, last = await repo.list(account.id)
    assert [item.name for item in everything] == names
    assert last is None


async def test_latest_revisions_of_a_page_in_one_go(session, account):
    first = await make_pipeline(session, account, "first")
    second = await make_pipeline(session, account, "second")
    repo = PipelineRepo(session)
    newer = await repo.add_revision(second, "version: 1\n# newer\n", {"v": 2})
    await session.commit()
    latest = await repo.latest_revisions([first, second])
    assert {key: value.number for key, value in latest.items()} == {first.id: 1, second.id: 2}
    assert latest[second.id].id == newer.id
    assert await repo.latest_revisions([]) == {}


async def test_list_with_exact_page_size_has_no_next_cursor(session, account):
    for name in ("a", "b"):
        await make_pipeline(session, account, name)
    items, cursor = await PipelineRepo(session).list(account.id, limit=2)
    assert len(items) == 2
    assert cursor is None


@pytest.mark.parametrize("cursor", ["???", "bm90IGpzb24", "WyJ0IiwiMjAyNSJd", ""])
async def test_list_rejects_bad_cursors(session, account, cursor):
    with pytest.raises(BadRequest, match="invalid cursor"):
        await PipelineRepo(session).list(account.id, cursor=cursor)


@pytest.mark.parametrize("limit", [0, -1, 1001])
async def test_list_rejects_bad_limits(session, account, limit):
    with pytest.raises(BadRequest, match="limit"):
        await PipelineRepo(session).list(account.id, limit=limit)


async def test_delete_cascades_to_revisions_runs_and_steps(session, account):
    pipeline = await make_pipeline(session, account)
    keep = await make_pipeline(session, account, "keep")
    repo = PipelineRepo(session)
    await repo.add_revision(pipeline, "version: 1\n# two\n", {})
    runs = RunRepo(session)
    run = await runs.create(account_id=account.id, pipeline=pipeline, revision=2, inputs={}, trigger={})
    kept_run = await runs.create(account_id=account.id, pipeline=keep, revision=1, inputs={}, trigger={})
    await runs.upsert_step(run.id, StepResult(step_id="a", status=StepStatus.SUCCEEDED, output=1), 1000)
    await runs.upsert_step(kept_run.id, StepResult(step_id="a", status=StepStatus.SUCCEEDED), 1000)
    await session.commit()

    await repo.delete(pipeline)
    await session.commit()
    session.expunge_all()

    assert await repo.get(account.id, "digest") is None
    assert await session.scalar(select(func.count()).select_from(Pipeline)) == 1
    revisions = await session.scalars(select(PipelineRevision.pipeline_id))
    assert set(revisions) == {keep.id}
    assert list(await session.scalars(select(Run.id))) == [kept_run.id]
    assert list(await session.scalars(select(StepRun.run_id))) == [kept_run.id]
