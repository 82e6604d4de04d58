"""The migrated schema is exactly the models' schema, and the database handle behaves."""

from __future__ import annotations

import re

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from app.errors import MashpipeError
from app.storage import Base, Database
from app.storage.db import normalize_url, sqlite_file
from app.storage.migrate import MIGRATIONS_DIR, alembic_config, head_revision

EXPECTED_TABLES = {"accounts", "api_keys", "pipelines", "pipeline_revisions", "runs", "step_runs"}


def _diff(connection):
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return compare_metadata(context, Base.metadata)


async def test_migrated_schema_equals_models(db):
    async with db.engine.connect() as connection:
        diff = await connection.run_sync(_diff)
    assert diff == []


async def test_all_tables_and_stable_constraint_names(db):
    async with db.engine.connect() as connection:
        names, runs_indexes, revision_uniques, step_fks = await connection.run_sync(
            lambda sync: (
                set(inspect(sync).get_table_names()),
                {index["name"] for index in inspect(sync).get_indexes("runs")},
                {item["name"] for item in inspect(sync).get_unique_constraints("pipeline_revisions")},
                {item["name"] for item in inspect(sync).get_foreign_keys("step_runs")},
            )
        )
    assert EXPECTED_TABLES <= names
    assert "alembic_version" in names
    assert {
        "ix_runs_account_id_created_at_id",
        "ix_runs_account_id_pipeline_id_created_at_id_status",
        "ix_runs_account_id_status_created_at_id",
        "ix_runs_status",
    } <= runs_indexes
    assert revision_uniques == {"uq_pipeline_revisions_pipeline_id_number"}
    assert step_fks == {"fk_step_runs_run_id_runs"}


async def test_upgrade_is_idempotent_and_reaches_head(db):
    assert await db.current_revision() == head_revision()
    await db.upgrade()
    assert await db.current_revision() == head_revision()


async def test_downgrade_to_base_and_up_again(db):
    async with db.engine.begin() as connection:
        await connection.run_sync(
            lambda sync: __import__("alembic.command").command.downgrade(
                alembic_config(connection=sync), "base"
            )
        )
    async with db.engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    assert not (EXPECTED_TABLES & tables)
    assert await db.current_revision() is None
    await db.upgrade()
    async with db.engine.connect() as connection:
        assert await connection.run_sync(_diff) == []


async def test_fresh_database_has_no_revision(database_url):
    database = Database(database_url)
    try:
        assert await database.current_revision() is None
    finally:
        await database.dispose()


def test_migration_files_are_dated_and_slugged():
    script = ScriptDirectory.from_config(alembic_config())
    revisions = list(script.walk_revisions())
    assert revisions, "no migration found"
    assert len(script.get_heads()) == 1
    for revision in revisions:
        assert re.fullmatch(r"\d{8}_[a-z0-9_]+_[0-9a-z]+\.py", revision.path.rsplit("/", 1)[-1]), (
            revision.path
        )
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert (MIGRATIONS_DIR / "__init__.py").is_file()


async def test_sqlite_connections_are_configured(tmp_path):
    path = tmp_path / "deep" / "folder" / "m.db"
    database = Database(f"sqlite:///{path}")  # a plain sqlite URL gets the async driver
    try:
        assert database.url.drivername == "sqlite+aiosqlite"
        assert path.parent.is_dir()
        async with database.engine.connect() as connection:
            pragmas = {
                name: (await connection.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
            }
        assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 5000, "synchronous": 1}
    finally:
        await database.dispose()


async def test_in_memory_sqlite_can_be_migrated():
    database = Database("sqlite+aiosqlite://")
    try:
        await database.upgrade()
        async with database.engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
    finally:
        await database.dispose()


def test_url_normalization():
    assert normalize_url("postgresql://u:p@127.0.0.1/db").drivername == "postgresql+asyncpg"
    assert normalize_url("postgres://u:p@127.0.0.1/db").drivername == "postgresql+asyncpg"
    assert normalize_url("sqlite+aiosqlite:///x.db").drivername == "sqlite+aiosqlite"
    assert sqlite_file(normalize_url("sqlite:///:memory:")) is None
    assert sqlite_file(normalize_url("sqlite://")) is None
    assert sqlite_file(normalize_url("postgresql://h/db")) is None
    assert str(sqlite_file(normalize_url("sqlite:////var/lib/m.db"))) == "/var/lib/m.db"


def test_bad_urls_are_clear_errors():
    with pytest.raises(MashpipeError, match="invalid database URL"):
        Database("not a url")
    with pytest.raises(MashpipeError, match="cannot use database URL"):
        Database("nosuchdb+nodriver://x/y")


def test_unusable_sqlite_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(MashpipeError, match="cannot create the database folder"):
        Database(f"sqlite:///{blocker / 'sub' / 'm.db'}")


def test_repr_hides_password():
    database = Database("postgresql://user:hunter2@127.0.0.1/db")
    assert "hunter2" not in repr(database)


async def test_transaction_commits_and_rolls_back(db):
    from app.storage import AccountRepo

    async with db.transaction() as session:
        await AccountRepo(session).create("committed")

    async def fail_inside() -> None:
        async with db.transaction() as session:
            await AccountRepo(session).create("rolled-back")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await fail_inside()
    async with db.session() as session:
        repo = AccountRepo(session)
        assert await repo.get_by_name("committed") is not None
        assert await repo.get_by_name("rolled-back") is None


async def test_schema_comparison_notices_drift():
    """The schema test above is meaningful: a changed column type or a missing index is reported."""
    import sqlalchemy as sa

    drifted = sa.MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(drifted)
    drifted.tables["step_runs"].c.output.type = sa.JSON()  # NUMERIC affinity on SQLite
    runs = drifted.tables["runs"]
    runs.indexes.discard(next(index for index in runs.indexes if index.name == "ix_runs_status"))
    database = Database("sqlite+aiosqlite://")
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(drifted.create_all)
            diff = await connection.run_sync(_diff)
    finally:
        await database.dispose()
    flat = [item[0] if isinstance(item, tuple) else item[0][0] for item in diff]
    assert "modify_type" in flat
    assert "add_index" in flat


def _alembic(*argv: str) -> str:
    """Run the ``alembic`` command line with the repository's alembic.ini; return what it printed."""
    import io

    from alembic.config import CommandLine, Config

    command_line = CommandLine()
    options = command_line.parser.parse_args(["-c", str(MIGRATIONS_DIR.parent / "alembic.ini"), *argv])
    output = io.StringIO()
    config = Config(file_=options.config[0], cmd_opts=options, stdout=output, output_buffer=output)
    command_line.run_cmd(config, options)
    return output.getvalue()


def test_alembic_command_line_uses_the_ini_file(tmp_path):
    """Developers run ``alembic`` from the repository root; the same migrations apply."""
    import asyncio

    url = f"sqlite:///{tmp_path / 'cli' / 'm.db'}"
    _alembic("-x", f"url={url}", "upgrade", "head")
    assert head_revision() in _alembic("-x", f"url={url}", "current")

    async def check() -> list[object]:
        database = Database(url)
        try:
            async with database.engine.connect() as connection:
                return list(await connection.run_sync(_diff))
        finally:
            await database.dispose()

    assert asyncio.run(check()) == []
    sql = _alembic("-x", f"url={url}", "upgrade", f"base:{head_revision()}", "--sql")
    assert "CREATE TABLE runs" in sql
    assert "CREATE INDEX ix_runs_account_id_created_at_id" in sql


async def test_concurrent_upgrades_in_one_process(database_url, tmp_path):
    import asyncio

    same = [Database(database_url) for _ in range(3)]
    others = [Database(f"sqlite+aiosqlite:///{tmp_path / 'other' / f'{index}.db'}") for index in range(2)]
    try:
        await asyncio.gather(*(database.upgrade() for database in same + others))
        for database in same + others:
            assert await database.current_revision() == head_revision()
    finally:
        for database in same + others:
            await database.dispose()


@pytest.mark.slow
def test_concurrent_upgrades_from_several_processes(database_url):
    """Server and worker starting together: one migrates, the others wait and find it done."""
    import subprocess
    import sys

    script = (
        "import asyncio, sys\n"
        "from app.storage import Database\n"
        "async def main():\n"
        "    database = Database(sys.argv[1])\n"
        "    await database.upgrade()\n"
        "    print(await database.current_revision())\n"
        "    await database.dispose()\n"
        "asyncio.run(main())\n"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, database_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0, 0], [err for _, err in results]
    assert {out.strip() for out, _ in results} == {head_revision()}
