"""`mashpipe prune`: deletes old finished runs now, with the settings' rules or the options'."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.cli import cli
from app.runtime.pipelines import check_source, create_pipeline
from app.storage.db import Database
from app.storage.models import Run
from app.storage.repositories import AccountRepo, RunRepo

SOURCE = "version: 1\nname: old\nsteps:\n  - {id: a, uses: core.set, with: {value: 1}}\n"


def seed(url: str, ages_days: list[int]) -> None:
    async def go() -> None:
        db = Database(url)
        try:
            await db.upgrade()
            async with db.session() as session:
                account = await AccountRepo(session).create("acme")
                saved = await create_pipeline(
                    session, account.id, SOURCE, check_source(SOURCE, None, max_bytes=10_000)
                )
                now = datetime.now(UTC)
                for age in ages_days:
                    run = await RunRepo(session).create(
                        account_id=account.id,
                        pipeline=saved.pipeline,
                        revision=1,
                        inputs={},
                        trigger={"kind": "manual"},
                    )
                    run.created_at = now - timedelta(days=age)
                    run.status = "succeeded"
                await session.commit()
        finally:
            await db.dispose()

    asyncio.run(go())


def count(url: str) -> int:
    async def go() -> int:
        db = Database(url)
        try:
            async with db.session() as session:
                return len(list(await session.scalars(select(Run.id))))
        finally:
            await db.dispose()

    return asyncio.run(go())


def test_prune_with_the_settings_and_with_options(runner, cli_env, monkeypatch):
    url = f"sqlite+aiosqlite:///{cli_env}"
    seed(url, [100, 45, 20, 10, 1])
    monkeypatch.setenv("MASHPIPE_RUN_RETENTION_DAYS", "30")
    result = runner.invoke(cli, ["prune"])
    assert result.exit_code == 0, result.output
    expected = "pruned 2 run(s): 2 older than 30 day(s), 0 beyond the newest 10000 of their pipeline"
    assert expected in result.output
    assert count(url) == 3

    result = runner.invoke(cli, ["prune", "--days", "0", "--max-per-pipeline", "1"])
    assert result.exit_code == 0, result.output
    assert "pruned 2 run(s): 0 older than 0 day(s), 2 beyond the newest 1 of their pipeline" in result.output
    assert count(url) == 1


def test_prune_refuses_negative_options(runner, cli_env):
    result = runner.invoke(cli, ["prune", "--days", "-3"])
    assert result.exit_code == 2
    assert "must not be negative" in result.output
