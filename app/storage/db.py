"""The database handle: one async engine and its session factory, built by whoever starts the process.

::

    db = Database(settings.database_url)
    await db.upgrade()                      # alembic upgrade head
    async with db.session() as session:     # the caller commits
        ...
        await session.commit()
    await db.dispose()

SQLite connections get WAL, ``foreign_keys=ON``, a busy timeout and ``synchronous=NORMAL``.
Plain ``sqlite://`` and ``postgresql://`` URLs are mapped to their async drivers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from app.errors import MashpipeError
from app.storage.migrate import alembic_config, alembic_lock
from app.storage.types import dumps_json, loads_json

SQLITE_BUSY_TIMEOUT_MS = 5000
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}
_MIGRATION_LOCK_ID = 0x6D61736870697065  # "mashpipe": serializes concurrent upgrades on PostgreSQL


def normalize_url(url: str) -> URL:
    """Parse a database URL and give it an async driver when it names none.

    Raises :class:`~app.errors.MashpipeError` for a URL that cannot be parsed.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise MashpipeError(f"invalid database URL: {exc}") from None
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    if driver is not None:
        parsed = parsed.set(drivername=driver)
    return parsed


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for in-memory databases and other backends."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or url.query.get("mode") == "memory":
        return None
    return Path(database).expanduser()


def configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    """Connection hook: WAL, foreign keys, busy timeout and synchronous=NORMAL on every SQLite connection."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


class Database:
    """An async engine plus session factory for one database URL. No module-level state."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url: URL = normalize_url(url)
        self.backend: str = self.url.get_backend_name()
        path = sqlite_file(self.url)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise MashpipeError(f"cannot create the database folder {path.parent}: {exc}") from None
        options: dict[str, Any] = {
            "echo": echo,
            "json_serializer": dumps_json,
            "json_deserializer": loads_json,
        }
        if self.backend == "postgresql":
            options["pool_pre_ping"] = True
        try:
            self.engine: AsyncEngine = create_async_engine(self.url, **options)
        except (ArgumentError, ImportError) as exc:
            raise MashpipeError(f"cannot use database URL {self.url.render_as_string()}: {exc}") from None
        if self.backend == "sqlite":
            event.listen(self.engine.sync_engine, "connect", configure_sqlite_connection)
        self.sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session (``expire_on_commit=False``). The caller commits; anything else is rolled back."""
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session that commits when the block ends normally and rolls back on an exception."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def upgrade(self, revision: str = "head") -> None:
        """Run ``alembic upgrade`` (to ``head`` by default) on this database."""
        async with alembic_lock(), self.engine.begin() as connection:
            await connection.run_sync(self._upgrade_sync, revision)

    def _upgrade_sync(self, connection: Connection, revision: str) -> None:
        # Processes starting together (server, worker) must not migrate at the same time: take the
        # database's write lock (SQLite) or an advisory lock (PostgreSQL) for the whole upgrade,
        # which also makes it atomic.
        if self.backend == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        elif self.backend == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_ID})
        command.upgrade(alembic_config(connection=connection), revision)

    async def current_revision(self) -> str | None:
        """The migration revision the database is at (None when it was never migrated)."""
        async with self.engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
