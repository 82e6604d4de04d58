"""Rows holding an encrypted value, read and rewritten for key rotation (any such table).

A table qualifies when it has ``id``, ``account_id``, ``name`` and ``ciphertext`` columns (``secrets``,
``connections``). :meth:`EncryptedRows.swap` is a compare-and-set: it writes the new ciphertext only
if the row still holds the one that was read, so a value written meanwhile (a secret replaced, an OAuth
token refreshed) is never overwritten by the re-encryption of its older self.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True, slots=True)
class EncryptedRow:
    """What re-encrypting a row needs: its id, the binding (account and name) and the ciphertext."""

    id: str
    account_id: str
    name: str
    ciphertext: str


class EncryptedRows:
    """The encrypted rows of one table (a model with id, account_id, name, ciphertext). Never commits."""

    def __init__(self, session: AsyncSession, model: Any) -> None:
        self.session = session
        self.model = model

    async def ids(self) -> builtins.list[str]:
        """Every row id, in a stable order."""
        return builtins.list(await self.session.scalars(select(self.model.id).order_by(self.model.id)))

    async def rows(self, ids: Collection[str]) -> builtins.list[EncryptedRow]:
        """The rows with these ids."""
        if not ids:
            return []
        model = self.model
        statement = (
            select(model.id, model.account_id, model.name, model.ciphertext)
            .where(model.id.in_(sorted(ids)))
            .order_by(model.id)
        )
        return [EncryptedRow(*row) for row in await self.session.execute(statement)]

    async def swap(self, row_id: str, old: str, new: str) -> bool:
        """Replace the ciphertext ``old`` by ``new``; False when the row changed (or vanished) meanwhile."""
        model = self.model
        statement = (
            update(model)
            .where(model.id == row_id, model.ciphertext == old)
            .values(ciphertext=new)
            .returning(model.id)
        )
        return (await self.session.execute(statement)).first() is not None
