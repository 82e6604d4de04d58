"""Re-encrypting everything stored encrypted under the newest key (``mashpipe keys rotate-secrets``).

Each kind of encrypted value has a *rotator*: ``async def rotate(db, encryptor) -> RotationCount``
that re-encrypts its rows under the newest key of the :class:`~app.security.crypto.Encryptor`
(skipping rows already under it). :data:`ROTATORS` lists them as ``"module:function"`` paths, imported
when a rotation runs; a new encrypted table adds its line there.

Rotation, step by step (see the README's SECURITY section):

1. put a new key first in ``MASHPIPE_SECRET_KEYS`` (keep the old ones after it) and restart;
2. run ``mashpipe keys rotate-secrets`` (idempotent; safe to run again after an interruption);
3. remove the old keys from ``MASHPIPE_SECRET_KEYS`` and restart.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable

from app.security.crypto import Encryptor
from app.security.secret_store import RotationCount
from app.storage.db import Database

Rotator = Callable[[Database, Encryptor], Awaitable[RotationCount]]

ROTATORS: tuple[str, ...] = ("app.security.secret_store:rotate_secrets",)
"""Every rotator, as ``"module:function"``; connection credentials add theirs here."""


def load_rotator(path: str) -> Rotator:
    """The function a ``"module:function"`` path names."""
    module_name, _, attribute = path.partition(":")
    rotator: Rotator = getattr(importlib.import_module(module_name), attribute)
    return rotator


async def rotate_all(db: Database, encryptor: Encryptor) -> list[RotationCount]:
    """Run every rotator in order; what each did."""
    return [await load_rotator(path)(db, encryptor) for path in ROTATORS]
