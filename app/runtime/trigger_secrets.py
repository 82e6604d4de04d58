"""The secrets a trigger reads before any run exists: a hook's ``verify`` secret, a poll's ``with``.

:class:`StoreSecrets` resolves an account's secrets by name through the secret store (one session per
call); :func:`read_secrets` gives the values of the ``secrets.NAME`` a compiled value reads, and the
names the account does not have.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.pipelines.expressions import CompiledValue, iter_expressions
from app.storage.db import Database


class SecretsResolver(Protocol):
    """Gives the values of an account's secrets by name (names the account lacks are left out)."""

    async def __call__(self, account_id: str, names: Collection[str]) -> dict[str, str]: ...


class SecretSource(Protocol):
    """What stores secrets (``app.security.secret_store.SecretStore``): values by name, in a session."""

    async def resolve(
        self, session: AsyncSession, account_id: str, names: Collection[str]
    ) -> dict[str, str]: ...


class StoreSecrets:
    """The default :class:`SecretsResolver`: the account's stored secrets, through a secret store.

    ``store`` is the store, or a function giving it when a call needs it (the run service's, which may
    be configured after this resolver is built). Without a store every name is unknown, so a hook whose
    ``verify`` reads a secret refuses every call (401) instead of accepting unsigned ones.
    """

    def __init__(self, db: Database, store: SecretSource | Callable[[], SecretSource | None] | None) -> None:
        self._db = db
        self._store = store

    async def __call__(self, account_id: str, names: Collection[str]) -> dict[str, str]:
        store = self._store() if callable(self._store) else self._store
        if store is None or not names:
            return {}
        async with self._db.session() as session:
            return await store.resolve(session, account_id, names)


async def read_secrets(
    value: CompiledValue, account_id: str, secrets: SecretsResolver | None
) -> tuple[dict[str, str], list[str]]:
    """``(values, missing names)`` of the secrets ``value`` reads, resolved for ``account_id`` (every name
    is missing without a resolver)."""
    names: set[str] = set()
    for expression in iter_expressions([value]):
        names |= expression.secret_refs()
    resolved = await secrets(account_id, names) if names and secrets is not None else {}
    return resolved, sorted(names - resolved.keys())


__all__ = ["SecretSource", "SecretsResolver", "StoreSecrets", "read_secrets"]
