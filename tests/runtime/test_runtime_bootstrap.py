"""First start: the `default` account and its key, example pipelines, and the app lifespan doing both."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from app.errors import MashpipeError
from app.runtime.bootstrap import ensure_default_account, load_examples
from app.security.apikeys import hash_api_key
from app.storage.repositories import ApiKeyRepo, PipelineRepo

SECRET = b"bootstrap-test-secret-0123456789"
REPO_EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

VALID = """\
version: 1
name: {name}
steps:
  - id: v
    uses: core.set
    with: {{value: 1}}
"""


async def key_account(db, key: str):
    async with db.session() as session:
        found = await ApiKeyRepo(session).find_active_by_hash(hash_api_key(key, SECRET), datetime.now(UTC))
        return None if found is None else found[1]


async def test_bootstrap_key_is_used_exactly(db, make_settings):
    key = "mp_dev_exactly-this-key-1234567890"
    result = await ensure_default_account(db, make_settings(bootstrap_key=key), SECRET)
    assert result.created is True
    assert result.generated_key is None
    account = await key_account(db, key)
    assert account is not None
    assert account.name == "default"
    assert account.id == result.account_id


async def test_a_key_is_generated_once_when_none_is_given(db, make_settings):
    settings = make_settings(bootstrap_key=None)
    first = await ensure_default_account(db, settings, SECRET)
    assert first.generated_key is not None
    assert first.generated_key.startswith("mp_")
    assert (await key_account(db, first.generated_key)).name == "default"
    second = await ensure_default_account(db, settings, SECRET)
    assert second.created is False
    assert second.generated_key is None
    assert second.account_id == first.account_id


async def test_nothing_is_created_when_an_account_exists(db, account_id, make_settings):
    result = await ensure_default_account(
        db, make_settings(bootstrap_key="mp_another-key-abcdefghijkl"), SECRET
    )
    assert result == type(result)(None, created=False, generated_key=None)
    assert await key_account(db, "mp_another-key-abcdefghijkl") is None


@pytest.mark.parametrize("key", ["short", "has spaces in the key 1234567"])
async def test_a_weak_bootstrap_key_is_refused(db, make_settings, key):
    with pytest.raises(MashpipeError, match="MASHPIPE_BOOTSTRAP_KEY"):
        await ensure_default_account(db, make_settings(bootstrap_key=key), SECRET)


async def test_examples_are_loaded_once_and_invalid_ones_skipped(db, account_id, tmp_path, caplog):
    folder = tmp_path / "examples"
    folder.mkdir()
    (folder / "one.yaml").write_text(VALID.format(name="one"))
    (folder / "two.yml").write_text(VALID.format(name="two"))
    (folder / "broken.yaml").write_text("version: 1\nname: broken\nsteps: nope\n")
    (folder / "binary.yaml").write_bytes(b"\xff\xfe\x00")
    (folder / "notes.txt").write_text("not a pipeline")

    with caplog.at_level(logging.WARNING):
        report = await load_examples(db, None, folder, account_id, max_bytes=262_144)
    assert sorted(report.loaded) == ["one.yaml", "two.yml"]
    assert sorted(report.invalid) == ["binary.yaml", "broken.yaml"]
    assert any("broken.yaml" in r.getMessage() for r in caplog.records)

    again = await load_examples(db, None, folder, account_id, max_bytes=262_144)
    assert again.loaded == []
    assert sorted(again.kept) == ["one.yaml", "two.yml"]
    async with db.session() as session:
        pipelines, _ = await PipelineRepo(session).list(account_id)
        assert [p.name for p in pipelines] == ["one", "two"]
        assert all(p.latest_revision == 1 for p in pipelines)

    missing = await load_examples(db, None, tmp_path / "nope", account_id, max_bytes=262_144)
    assert missing.loaded == missing.invalid == []


async def test_the_app_bootstraps_and_loads_the_repository_examples(make_settings, app_runner, api_key):
    # trigger loops off: the examples' polls would call public APIs (tests stay off the internet)
    settings = make_settings(examples_dir=str(REPO_EXAMPLES), triggers_enabled=False)
    expected = sorted(p.stem for p in REPO_EXAMPLES.glob("*.yaml"))
    async with app_runner(settings) as (app, state):
        assert state.bootstrap.created is True
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            listed = await client.get("/v1/pipelines", headers={"Authorization": f"Bearer {api_key}"})
            assert listed.status_code == 200
            assert sorted(p["name"] for p in listed.json()["items"]) == expected
    # a second start does not duplicate anything
    async with app_runner(settings) as (app, state):
        assert state.bootstrap.created is False
        async with state.db.session() as session:
            pipelines, _ = await PipelineRepo(session).list(state.bootstrap.account_id)
            assert sorted(p.name for p in pipelines) == expected
            assert all(p.latest_revision == 1 for p in pipelines)


async def test_the_app_logs_a_generated_key_once(make_settings, app_runner, caplog):
    settings = make_settings(bootstrap_key=None)
    with caplog.at_level(logging.WARNING, logger="mashpipe"):
        async with app_runner(settings) as (_, state):
            key = state.bootstrap.generated_key
    assert key is not None
    assert sum(key in r.getMessage() for r in caplog.records) == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mashpipe"):
        async with app_runner(settings) as (_, state):
            assert state.bootstrap.generated_key is None
    assert not any("API key" in r.getMessage() for r in caplog.records)


async def test_a_restart_runs_queued_runs_and_resumes_interrupted_ones(make_settings, app_runner):
    from app.runtime.pipelines import check_source, create_pipeline
    from app.storage.repositories import RunRepo

    settings = make_settings()
    async with app_runner(settings) as (_, state):
        account_id = state.bootstrap.account_id
        source = VALID.format(name="again")
        async with state.db.session() as session:
            await create_pipeline(session, account_id, source, check_source(source, None, max_bytes=10_000))
            await session.commit()
        # recorded but never handed to the queue, as when a process dies right after recording
        queued = await state.runs.create_run(account_id=account_id, pipeline_name="again", inputs={})
        running = await state.runs.create_run(account_id=account_id, pipeline_name="again", inputs={})
        async with state.db.session() as session:
            await RunRepo(session).mark_running(running.id, datetime.now(UTC))
            await session.commit()

    async with app_runner(settings) as (_, state):
        assert await state.runs.wait(queued.id, 30)
        # left running with no step recorded and no heartbeat: resumed (its steps run), see H1 tests
        assert await state.runs.wait(running.id, 30)
        async with state.db.session() as session:
            runs = RunRepo(session)
            done = await runs.get_any(queued.id)
            assert done.status == "succeeded"
            assert done.outputs == {}
            resumed = await runs.get_any(running.id)
            assert resumed.status == "succeeded"
