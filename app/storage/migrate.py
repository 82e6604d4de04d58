"""Alembic, driven from code: the migration scripts ship inside the ``migrations`` package.

``alembic.ini`` at the repository root is only for developers running the ``alembic``
command; the server builds its configuration here, so migrations also work when Mashpipe is
installed as a (non-editable) package.
"""

from __future__ import annotations

import asyncio
import weakref
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent
"""Folder holding ``env.py``, ``script.py.mako`` and ``versions/``."""

_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def alembic_lock() -> asyncio.Lock:
    """The lock of the running event loop around Alembic commands.

    Alembic keeps its migration context in module globals, so two upgrades interleaving on one
    event loop (e.g. of two databases) would mix them up.
    """
    loop = asyncio.get_running_loop()
    lock = _LOCKS.get(loop)
    if lock is None:
        lock = _LOCKS[loop] = asyncio.Lock()
    return lock


FILE_TEMPLATE = "%%(year)d%%(month).2d%%(day).2d_%%(slug)s_%%(rev)s"
"""New migration files are named ``YYYYMMDD_slug_rev.py``."""


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """An Alembic configuration pointing at the packaged migrations.

    ``connection``, when given, is the (sync) connection ``env.py`` runs the migrations on;
    otherwise ``env.py`` connects to ``url`` itself (or to ``MASHPIPE_DATABASE_URL``).
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.set_main_option("file_template", FILE_TEMPLATE)
    config.set_main_option("timezone", "UTC")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest migration revision shipped with this version of Mashpipe."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
