"""Re-encrypting everything stored encrypted under the newest key (``mashpipe keys rotate-secrets``).

Each kind of encrypted value has a *rotator*: ``async def rotate(db, encryptor) -> RotationCount``
that re-encrypts its rows under the newest key of the :class:`~app.security.crypto.Encryptor`
(skipping rows already under it). :data:`ROTATORS` lists them as ``"module:function"`` paths, imported
when a rotation runs; a new encrypted table adds its line there (:func:`rotate_table` does the work
for any table with ``id``, ``account_id``, ``name`` and ``ciphertext`` columns).

Rotation, step by step (see the README's Security section):

1. put a new key first in ``MASHPIPE_SECRET_KEYS`` (keep the old ones after it) and restart;
2. run ``mashpipe keys rotate-secrets`` (idempotent; safe to run again after an interruption, and
   while the server runs: a value written meanwhile is left as written, see
   :class:`~app.storage.repositories.encrypted.EncryptedRows`);
3. remove the old keys from ``MASHPIPE_SECRET_KEYS`` and restart.

Pending OAuth2 authorizations (their PKCE verifier, valid 10 minutes) are not rotated: one started
before step 3 and completed after it must be started again.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app.security.crypto import Encryptor
from app.storage.db import Database
from app.storage.repositories.encrypted import EncryptedRows

logger = logging.getLogger("mashpipe.security")

ROTATION_BATCH = 200
"""Rows re-encrypted per transaction."""


@dataclass(frozen=True, slots=True)
class RotationCount:
    """What a re-encryption pass did to one kind of stored value."""

    kind: str
    total: int
    rotated: int  # re-encrypted now
    current: int  # already under the newest key
    changed: int = 0  # rewritten by someone else meanwhile (so already under the newest key)


Rotator = Callable[[Database, Encryptor], Awaitable[RotationCount]]

ROTATORS: tuple[str, ...] = (
    "app.security.rotation:rotate_secrets",
    "app.security.rotation:rotate_connections",
)
"""Every rotator, as ``"module:function"``, run in this order."""


async def rotate_table(
    db: Database, encryptor: Encryptor, model: Any, *, kind: str, label: str, batch: int = ROTATION_BATCH
) -> RotationCount:
    """Re-encrypt every row of ``model`` (bound as ``kind``) under the newest key, ``batch`` per transaction.

    A value that cannot be decrypted stops the pass with
    :class:`~app.security.crypto.DecryptionFailed` (its batch is not written; earlier ones are).
    """
    async with db.session() as session:
        ids = await EncryptedRows(session, model).ids()
    rotated = current = changed = 0
    for start in range(0, len(ids), batch):
        async with db.session() as session:
            rows = EncryptedRows(session, model)
            for row in await rows.rows(ids[start : start + batch]):
                if encryptor.is_current(row.ciphertext):
                    current += 1
                    continue
                new = encryptor.rotate(row.ciphertext, account_id=row.account_id, name=row.name, kind=kind)
                if await rows.swap(row.id, row.ciphertext, new):
                    rotated += 1
                else:
                    changed += 1
            await session.commit()
    logger.info(
        "%s: %d re-encrypted, %d already current, %d changed meanwhile", label, rotated, current, changed
    )
    return RotationCount(kind=label, total=len(ids), rotated=rotated, current=current, changed=changed)


async def rotate_secrets(db: Database, encryptor: Encryptor) -> RotationCount:
    """Re-encrypt every secret (``secrets`` table)."""
    from app.storage.models_secrets import Secret

    return await rotate_table(db, encryptor, Secret, kind="secret", label="secrets")


async def rotate_connections(db: Database, encryptor: Encryptor) -> RotationCount:
    """Re-encrypt every connection's credentials (``connections`` table)."""
    from app.storage.models_connections import ConnectionRow

    return await rotate_table(db, encryptor, ConnectionRow, kind="connection", label="connections")


def load_rotator(path: str) -> Rotator:
    """The function a ``"module:function"`` path names."""
    module_name, _, attribute = path.partition(":")
    rotator: Rotator = getattr(importlib.import_module(module_name), attribute)
    return rotator


async def rotate_all(db: Database, encryptor: Encryptor) -> list[RotationCount]:
    """Run every rotator in order; what each did."""
    return [await load_rotator(path)(db, encryptor) for path in ROTATORS]
