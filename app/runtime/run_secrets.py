"""A run's secrets, resolved at the edge of the run and masked everywhere after.

:meth:`RunSecrets.prepare` is called by the run service when a run starts: it finds the secret names
the revision references (once per revision, cached), decrypts only those the account has, and gives
back the values (for ``RunRequest.secrets``) with the :class:`~app.runtime.masking.Masker` that hides
them in whatever the run records or logs.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from app.runtime.masking import Masker
from app.security.secret_store import SecretStore, referenced_secrets
from app.storage.db import Database

MAX_CACHED_REVISIONS = 1024
NO_SECRETS = Masker()
"""The masker of a run without secrets (masks nothing; a masker never changes once made)."""


@dataclass(frozen=True, slots=True)
class RunSecretValues:
    """The secrets a run may read, and the masker hiding them."""

    values: dict[str, str] = field(default_factory=dict)
    masker: Masker = field(default_factory=Masker)


class RunSecrets:
    """Resolves the secrets of runs (decrypting only what a revision references)."""

    def __init__(self, db: Database, store: SecretStore) -> None:
        self._db = db
        self.store = store
        self._names: OrderedDict[str, frozenset[str]] = OrderedDict()

    def names_of(self, revision_key: str, spec: Any) -> frozenset[str]:
        """The secret names a revision references (``spec``: a PipelineSpec or its stored document)."""
        names = self._names.get(revision_key)
        if names is None:
            document = spec.model_dump(mode="json", by_alias=True) if hasattr(spec, "model_dump") else spec
            names = frozenset(referenced_secrets(document))
            self._names[revision_key] = names
            while len(self._names) > MAX_CACHED_REVISIONS:
                self._names.popitem(last=False)
        else:
            self._names.move_to_end(revision_key)
        return names

    async def prepare(self, account_id: str, revision_key: str, spec: Any) -> RunSecretValues:
        """The decrypted secrets of a run of ``spec`` and their masker (no database read when the
        revision references no secret)."""
        names = self.names_of(revision_key, spec)
        if not names:
            return RunSecretValues(values={}, masker=NO_SECRETS)
        async with self._db.session() as session:
            values = await self.store.resolve(session, account_id, names)
        return RunSecretValues(values=values, masker=Masker(values.values()))
