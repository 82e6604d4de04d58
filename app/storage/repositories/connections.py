"""An account's connections and their pending OAuth2 authorizations. Ciphertexts only: never decrypts.

Encryption and the OAuth2 protocol live in :mod:`app.security`; the refresh of tokens at run time in
:mod:`app.runtime.connections`. Writes of a connection's credentials are conditional on its
``version`` (optimistic concurrency): :meth:`ConnectionRepo.claim_refresh` takes a short lease on the
row so that one process at a time refreshes a token, :meth:`ConnectionRepo.save_credentials` writes
the new ciphertext only while that claim still holds.
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, Unprocessable
from app.storage.base import utcnow
from app.storage.models_connections import (
    CONNECTION_NAME_MAX_LENGTH,
    ConnectionRow,
    ConnectionStatus,
    OAuthStateRow,
)

CONNECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
"""A connection name: letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit."""

CONNECTIONS_PER_ACCOUNT = 1000
"""An account holds at most this many connections."""


def check_connection_name(name: str) -> str:
    """``name`` when it is a valid connection name, else :class:`Unprocessable` explaining the rule."""
    if not CONNECTION_NAME.fullmatch(name) or len(name) > CONNECTION_NAME_MAX_LENGTH:
        raise Unprocessable(
            f"invalid connection name {name[:140]!r}: use letters, digits, '.', '_' and '-', starting with a "
            f"letter or digit, at most {CONNECTION_NAME_MAX_LENGTH} characters (like team-slack)",
            details=[{"path": "name", "message": "invalid connection name"}],
        )
    return name


@dataclass(frozen=True, slots=True)
class TakenState:
    """A pending authorization, removed from the table by :meth:`OAuthStateRepo.take`."""

    account_id: str
    connection_id: str
    verifier_ciphertext: str
    redirect_uri: str
    expires_at: datetime


class ConnectionRepo:
    """Connections of an account, by name. Never commits: the caller does."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, account_id: str, name: str) -> ConnectionRow | None:
        """The account's connection ``name`` (None for another account's)."""
        return await self.session.scalar(
            select(ConnectionRow).where(ConnectionRow.account_id == account_id, ConnectionRow.name == name)
        )

    async def get_by_id(self, account_id: str, connection_id: str) -> ConnectionRow | None:
        """The account's connection with this id (None for another account's)."""
        return await self.session.scalar(
            select(ConnectionRow).where(
                ConnectionRow.account_id == account_id, ConnectionRow.id == connection_id
            )
        )

    async def list(self, account_id: str) -> builtins.list[ConnectionRow]:
        """Every connection of the account, by name."""
        statement = (
            select(ConnectionRow).where(ConnectionRow.account_id == account_id).order_by(ConnectionRow.name)
        )
        return builtins.list(await self.session.scalars(statement))

    async def count(self, account_id: str) -> int:
        """How many connections the account holds."""
        statement = (
            select(func.count()).select_from(ConnectionRow).where(ConnectionRow.account_id == account_id)
        )
        return int(await self.session.scalar(statement) or 0)

    async def add(
        self,
        account_id: str,
        name: str,
        *,
        connector: str,
        kind: str,
        status: str,
        ciphertext: str,
        token_expires_at: datetime | None = None,
        now: datetime | None = None,
    ) -> ConnectionRow:
        """Create a connection; :class:`Conflict` when the name is taken or the account is full."""
        check_connection_name(name)
        now = now or utcnow()
        if await self.get(account_id, name) is not None:
            raise Conflict(
                f"a connection named {name!r} exists already; delete it first (or re-authorize it)",
                details={"name": name},
            )
        if await self.count(account_id) >= CONNECTIONS_PER_ACCOUNT:
            raise Conflict(
                f"the account already holds {CONNECTIONS_PER_ACCOUNT} connections; delete some first",
                details={"limit": CONNECTIONS_PER_ACCOUNT},
            )
        row = ConnectionRow(
            account_id=account_id,
            name=name,
            connector=connector,
            kind=kind,
            status=status,
            ciphertext=ciphertext,
            token_expires_at=token_expires_at,
            version=1,
            created_at=now,
            updated_at=now,
        )
        self.session.add(row)
        try:
            await self.session.flush()
        except IntegrityError:
            raise Conflict(
                f"connection {name!r} was created at the same time; retry", details={"name": name}
            ) from None
        return row

    async def delete(self, account_id: str, name: str) -> bool:
        """Delete the connection (its pending authorizations go with it); True when the account had it."""
        result = await self.session.execute(
            delete(ConnectionRow)
            .where(ConnectionRow.account_id == account_id, ConnectionRow.name == name)
            .returning(ConnectionRow.id)
        )
        return result.first() is not None

    async def claim_refresh(
        self, connection_id: str, version: int, now: datetime, lease_until: datetime
    ) -> bool:
        """Take the refresh lease of a connection still at ``version`` whose lease is free or expired.

        On success the row's version becomes ``version + 1`` (the claim's version): whoever read the
        row before sees it changed. False when another writer was first.
        """
        statement = (
            update(ConnectionRow)
            .where(
                ConnectionRow.id == connection_id,
                ConnectionRow.version == version,
                or_(ConnectionRow.refresh_lease_until.is_(None), ConnectionRow.refresh_lease_until <= now),
            )
            .values(version=ConnectionRow.version + 1, refresh_lease_until=lease_until)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(statement)
        return _rowcount(result) == 1

    async def save_credentials(
        self,
        connection_id: str,
        expected_version: int,
        *,
        ciphertext: str,
        token_expires_at: datetime | None,
        status: str = ConnectionStatus.ACTIVE,
        status_message: str | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Replace the credentials in one statement if the row is still at ``expected_version``.

        The version grows by one and the refresh lease is released. False when the row changed
        (another writer) or is gone.
        """
        statement = (
            update(ConnectionRow)
            .where(ConnectionRow.id == connection_id, ConnectionRow.version == expected_version)
            .values(
                ciphertext=ciphertext,
                token_expires_at=token_expires_at,
                status=status,
                status_message=status_message,
                version=ConnectionRow.version + 1,
                refresh_lease_until=None,
                updated_at=now or utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        return _rowcount(await self.session.execute(statement)) == 1

    async def set_status(
        self,
        connection_id: str,
        expected_version: int,
        status: str,
        message: str | None,
        now: datetime | None = None,
    ) -> bool:
        """Set the status (and message) if the row is still at ``expected_version``; releases the lease."""
        statement = (
            update(ConnectionRow)
            .where(ConnectionRow.id == connection_id, ConnectionRow.version == expected_version)
            .values(
                status=status,
                status_message=message,
                version=ConnectionRow.version + 1,
                refresh_lease_until=None,
                updated_at=now or utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        return _rowcount(await self.session.execute(statement)) == 1

    async def release_lease(self, connection_id: str, expected_version: int) -> bool:
        """Give the refresh lease back without changing the credentials (a failed, retryable refresh)."""
        statement = (
            update(ConnectionRow)
            .where(ConnectionRow.id == connection_id, ConnectionRow.version == expected_version)
            .values(refresh_lease_until=None)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(await self.session.execute(statement)) == 1


class OAuthStateRepo:
    """Pending OAuth2 authorizations, by the SHA-256 of their ``state``. Never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        state_hash: str,
        *,
        account_id: str,
        connection_id: str,
        verifier_ciphertext: str,
        redirect_uri: str,
        expires_at: datetime,
        now: datetime | None = None,
    ) -> None:
        """Record a pending authorization; earlier pending ones of the same connection are dropped."""
        await self.session.execute(delete(OAuthStateRow).where(OAuthStateRow.connection_id == connection_id))
        self.session.add(
            OAuthStateRow(
                state_hash=state_hash,
                account_id=account_id,
                connection_id=connection_id,
                verifier_ciphertext=verifier_ciphertext,
                redirect_uri=redirect_uri,
                expires_at=expires_at,
                created_at=now or utcnow(),
            )
        )
        await self.session.flush()

    async def take(self, state_hash: str) -> TakenState | None:
        """Remove and return the pending authorization (one use: a second take finds nothing)."""
        statement = (
            delete(OAuthStateRow)
            .where(OAuthStateRow.state_hash == state_hash)
            .returning(
                OAuthStateRow.account_id,
                OAuthStateRow.connection_id,
                OAuthStateRow.verifier_ciphertext,
                OAuthStateRow.redirect_uri,
                OAuthStateRow.expires_at,
            )
        )
        row = (await self.session.execute(statement)).first()
        if row is None:
            return None
        account_id, connection_id, verifier, redirect_uri, expires_at = row
        return TakenState(str(account_id), str(connection_id), str(verifier), str(redirect_uri), expires_at)

    async def purge_expired(self, now: datetime) -> int:
        """Delete every expired pending authorization (any account); how many were deleted."""
        result = await self.session.execute(
            delete(OAuthStateRow)
            .where(and_(OAuthStateRow.expires_at <= now))
            .returning(OAuthStateRow.state_hash)
        )
        return len(result.all())


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
