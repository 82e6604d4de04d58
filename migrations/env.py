"""Alembic environment: async, on the Mashpipe metadata.

Two ways in:

* from ``Database.upgrade()``: the caller hands over a connection in
  ``config.attributes["connection"]`` and the migrations run on it;
* from the ``alembic`` command line: the URL comes from ``-x url=...``, ``sqlalchemy.url`` in
  the ini file, or ``MASHPIPE_DATABASE_URL`` (through Settings), and an async engine is made here.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import sqlalchemy as sa
from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection

from app.storage import models  # noqa: F401  (registers every table on the metadata)
from app.storage.base import Base
from app.storage.types import UTCDateTime

config = context.config
target_metadata = Base.metadata


def _render_item(kind: str, obj: Any, _autogen: AutogenContext) -> str | Literal[False]:
    """Migrations stay frozen: render application types as plain SQLAlchemy types."""
    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if kind == "type" and isinstance(obj, sa.JSON):
        return 'sa.JSON().with_variant(sa.Text(), "sqlite")'
    return False


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        render_item=_render_item,
        render_as_batch=True,  # SQLite cannot ALTER most things: batch mode recreates tables
        **kwargs,  # type: ignore[arg-type]
    )


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        from app.settings import Settings

        url = Settings().database_url
    from app.storage.db import normalize_url

    return normalize_url(url).render_as_string(hide_password=False)


def run_migrations_offline() -> None:
    """Emit the SQL to stdout instead of running it (``alembic upgrade head --sql``)."""
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    from app.storage.db import Database

    database = Database(_url())  # creates the SQLite folder and configures its connections
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(_run_on)
    finally:
        await database.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
    else:
        asyncio.run(_run_async())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
