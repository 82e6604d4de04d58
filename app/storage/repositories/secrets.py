"""An account's encrypted secrets. The repository stores and reads ciphertexts; it never decrypts.

Encryption lives in :mod:`app.security.crypto` and the service above (:mod:`app.runtime.secrets`)
decides what to encrypt or decrypt, so SQL stays here and keys stay there.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BadRequest, Conflict
from app.storage.base import utcnow
from app.storage.models_secrets import SECRET_NAME_MAX_LENGTH, Secret

SECRET_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
"""What a secret name looks like: upper-case letters, digits and ``_``, not starting with a digit."""

SECRETS_PER_ACCOUNT = 1000
"""An account holds at most this many secrets (a bound on what a run may decrypt and a listing returns)."""


def check_secret_name(name: str) -> str:
    """``name`` when it is a valid secret name, else :class:`BadRequest` explaining the rule."""
    if not SECRET_NAME.fullmatch(name) or len(name) > SECRET_NAME_MAX_LENGTH:
        raise BadRequest(
            f"invalid secret name {name[:120]!r}: use upper-case letters, digits and _, not starting with a "
            f"digit, at most {SECRET_NAME_MAX_LENGTH} characters (like API_TOKEN)",
            details={"name": name[:120]},
        )
    return name


class SecretRepo:
    """Secrets of an account, by name. Never commits: the caller does."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, account_id: str, name: str) -> Secret | None:
        """The account's secret ``name`` (None for another account's)."""
        return await self.session.scalar(
            select(Secret).where(Secret.account_id == account_id, Secret.name == name)
        )

    async def list(self, account_id: str) -> builtins.list[Secret]:
        """Every secret of the account, by name."""
        statement = select(Secret).where(Secret.account_id == account_id).order_by(Secret.name)
        return builtins.list(await self.session.scalars(statement))

    async def names(self, account_id: str) -> set[str]:
        """The names of the account's secrets (no ciphertext read)."""
        statement = select(Secret.name).where(Secret.account_id == account_id)
        return set(await self.session.scalars(statement))

    async def ciphertexts(self, account_id: str, names: Collection[str]) -> dict[str, str]:
        """The ciphertexts of the named secrets the account has (missing names are left out)."""
        if not names:
            return {}
        statement = select(Secret.name, Secret.ciphertext).where(
            Secret.account_id == account_id, Secret.name.in_(sorted(names))
        )
        rows = await self.session.execute(statement)
        return {str(name): str(ciphertext) for name, ciphertext in rows}

    async def put(
        self, account_id: str, name: str, ciphertext: str, now: datetime | None = None
    ) -> tuple[Secret, bool]:
        """Create or replace the secret; returns it and True when it was created.

        :class:`Conflict` when the account already holds :data:`SECRETS_PER_ACCOUNT` secrets.
        """
        check_secret_name(name)
        now = now or utcnow()
        secret = await self.get(account_id, name)
        if secret is not None:
            secret.ciphertext = ciphertext
            secret.updated_at = now
            await self.session.flush()
            return secret, False
        if len(await self.names(account_id)) >= SECRETS_PER_ACCOUNT:
            raise Conflict(
                f"the account already holds {SECRETS_PER_ACCOUNT} secrets; delete some first",
                details={"limit": SECRETS_PER_ACCOUNT},
            )
        secret = Secret(
            account_id=account_id, name=name, ciphertext=ciphertext, created_at=now, updated_at=now
        )
        self.session.add(secret)
        try:
            await self.session.flush()
        except IntegrityError:
            raise Conflict(
                f"secret {name!r} was created at the same time; retry", details={"name": name}
            ) from None
        return secret, True

    async def delete(self, account_id: str, name: str) -> bool:
        """Delete the secret; True when the account had it."""
        result = await self.session.execute(
            delete(Secret).where(Secret.account_id == account_id, Secret.name == name).returning(Secret.id)
        )
        return result.first() is not None
