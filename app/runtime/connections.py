"""Stored connections at run time: the connection resolver of :class:`~app.runtime.caller.ConnectorCaller`.

``await connections(account_id, name)`` returns the credentials a connector sees (``{"kind", ...fields}``,
plus ``access_token`` for oauth2), decrypted from the account's connection ``name``, or None when the
account has no such connection. A pending connection (authorization not finished) and one that
``needs_reauth`` fail the step with a message saying what to do.

OAuth2 access tokens are refreshed before they expire (:data:`REFRESH_SKEW` ahead), one refresh at a
time per connection:

* in this process, an ``asyncio.Lock`` per connection: concurrent steps wait for the first refresh and
  then read the tokens it stored;
* across processes, the row's ``version`` and refresh lease (:meth:`ConnectionRepo.claim_refresh`): the
  process that wins the claim refreshes, the others poll the row until the new tokens are there (at
  most :attr:`ConnectionService.lease` long; an abandoned lease expires and can be claimed again).

The new tokens (with a rotated refresh token, when the provider rotates) are written in one
conditional UPDATE. ``invalid_grant`` from the provider marks the connection ``needs_reauth`` (with the
provider's message) and fails the step with that message; other refresh failures (provider down,
egress refused) fail the step, retryable when transient, and leave the connection as it was.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from app.errors import MashpipeError, StepError
from app.security.connection_store import ConnectionStore
from app.security.oauth import OAuthFailure
from app.storage.db import Database
from app.storage.models_connections import ConnectionRow, ConnectionStatus
from app.storage.repositories.connections import ConnectionRepo

logger = logging.getLogger("mashpipe.runtime")

REFRESH_SKEW = timedelta(seconds=60)
"""An access token is refreshed when it expires within this long."""
DEFAULT_LEASE = timedelta(seconds=60)
WAIT_STEP_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What was read of a connection row (plain values: usable after its session closed)."""

    id: str
    account_id: str
    name: str
    connector: str
    kind: str
    status: str
    status_message: str | None
    ciphertext: str
    token_expires_at: datetime | None
    version: int

    @classmethod
    def of(cls, row: ConnectionRow) -> Snapshot:
        return cls(
            id=row.id,
            account_id=row.account_id,
            name=row.name,
            connector=row.connector,
            kind=row.kind,
            status=row.status,
            status_message=row.status_message,
            ciphertext=row.ciphertext,
            token_expires_at=row.token_expires_at,
            version=row.version,
        )


def reauth_message(name: str, reason: str | None) -> str:
    """The message of a step using a connection that needs a new authorization."""
    why = f": {reason}" if reason else ""
    return (
        f"connection {name!r} needs to be authorized again{why} "
        f"(POST /v1/connections/{name}/authorize gives the URL to open)"
    )


class ConnectionService:
    """Resolves an account's connections for runs and refreshes their OAuth2 tokens. One per process."""

    def __init__(
        self,
        db: Database,
        store: ConnectionStore,
        *,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        lease: timedelta = DEFAULT_LEASE,
        skew: timedelta = REFRESH_SKEW,
    ) -> None:
        self.db = db
        self.store = store
        self.clock = clock or (lambda: datetime.now(UTC))
        self.sleep = sleep
        self.lease = lease
        self.skew = skew
        self._locks: dict[str, asyncio.Lock] = {}

    async def __call__(self, account_id: str | None, name: str) -> Mapping[str, Any] | None:
        """The credentials of the account's connection ``name`` (a ``ConnectionResolver``)."""
        return await self.resolve(account_id, name)

    async def resolve(self, account_id: str | None, name: str) -> dict[str, Any] | None:
        """See the module docstring; None when the account has no connection ``name``."""
        if account_id is None:
            raise StepError(
                f"connection {name!r} cannot be used here: connections belong to an account on a server",
                code="connection_not_found",
            )
        snapshot = await self._read(account_id, name)
        if snapshot is None:
            return None
        self._check_usable(snapshot)
        payload = self.store.decrypt(account_id, name, snapshot.ciphertext)
        if snapshot.kind != "oauth2" or not self._expiring(snapshot):
            return self.store.runtime_credentials(payload)
        return await self._refreshed(snapshot)

    async def _read(self, account_id: str, name: str) -> Snapshot | None:
        async with self.db.session() as session:
            row = await ConnectionRepo(session).get(account_id, name)
            return None if row is None else Snapshot.of(row)

    def _check_usable(self, snapshot: Snapshot) -> None:
        if snapshot.status == ConnectionStatus.PENDING:
            raise StepError(
                f"connection {snapshot.name!r} is waiting for its OAuth2 authorization: open the "
                f"authorize URL "
                f"(POST /v1/connections/{snapshot.name}/authorize gives a new one)",
                code="connection_pending",
            )
        if snapshot.status == ConnectionStatus.NEEDS_REAUTH:
            raise StepError(
                reauth_message(snapshot.name, snapshot.status_message), code="connection_needs_reauth"
            )

    def _expiring(self, snapshot: Snapshot) -> bool:
        expires = snapshot.token_expires_at
        return expires is not None and expires - self.skew <= self.clock()

    async def _refreshed(self, first: Snapshot) -> dict[str, Any]:
        lock = self._locks.setdefault(first.id, asyncio.Lock())
        async with lock:
            claimed = await self._claim(first)
            if isinstance(claimed, dict):
                return claimed  # refreshed meanwhile, by this process or another one
            return await self._refresh(claimed)

    async def _claim(self, first: Snapshot) -> Snapshot | dict[str, Any]:
        """The row claimed for a refresh (its version is the claim's), or the credentials when another
        writer already refreshed it."""
        polls = max(1, int(self.lease.total_seconds() / WAIT_STEP_SECONDS) + 1)
        for _ in range(polls):
            async with self.db.session() as session:
                repo = ConnectionRepo(session)
                row = await repo.get_by_id(first.account_id, first.id)
                if row is None:
                    raise StepError(f"connection {first.name!r} was deleted", code="connection_not_found")
                snapshot = Snapshot.of(row)
                self._check_usable(snapshot)
                if not self._expiring(snapshot):
                    payload = self.store.decrypt(snapshot.account_id, snapshot.name, snapshot.ciphertext)
                    return self.store.runtime_credentials(payload)
                now = self.clock()
                if await repo.claim_refresh(snapshot.id, snapshot.version, now, now + self.lease):
                    await session.commit()
                    return replace(snapshot, version=snapshot.version + 1)
            await self.sleep(WAIT_STEP_SECONDS)  # another process holds the lease: wait for its tokens
        raise StepError(
            f"connection {first.name!r}: another process is refreshing its token and did not finish",
            code="connection_refresh_failed",
            retry_kind="connection",
        )

    async def _refresh(self, claimed: Snapshot) -> dict[str, Any]:
        payload = self.store.decrypt(claimed.account_id, claimed.name, claimed.ciphertext)
        try:
            tokens = await self.store.refresh(claimed.connector, payload)
        except OAuthFailure as exc:
            if exc.invalid_grant:
                reason = f"the provider refused the refresh token ({exc.error}: {exc.description})".replace(
                    " ()", ""
                )
                await self._set_status(claimed, ConnectionStatus.NEEDS_REAUTH, reason)
                logger.warning(
                    "connection %s of account %s needs re-authorization", claimed.name, claimed.account_id
                )
                raise StepError(
                    reauth_message(claimed.name, reason), code="connection_needs_reauth"
                ) from None
            await self._release(claimed)
            raise StepError(
                f"connection {claimed.name!r}: refreshing the access token failed: {exc.message}",
                code="connection_refresh_failed",
                retry_kind="connection" if exc.transient else None,
            ) from None
        except MashpipeError as exc:
            await self._release(claimed)
            raise StepError(
                f"connection {claimed.name!r}: refreshing the access token failed: {exc.message}",
                code="connection_refresh_failed",
                retry_kind=exc.retry_kind if isinstance(exc, StepError) else None,
            ) from None
        except BaseException:
            await asyncio.shield(self._release(claimed))
            raise
        payload["token"] = tokens.to_json()
        async with self.db.session() as session:
            saved = await ConnectionRepo(session).save_credentials(
                claimed.id,
                claimed.version,
                ciphertext=self.store.encrypt(claimed.account_id, claimed.name, payload),
                token_expires_at=tokens.expires_at,
                now=self.clock(),
            )
            await session.commit()
        if not saved:  # our lease expired and another writer came: its tokens stay, ours are used once
            logger.warning(
                "connection %s: refreshed tokens not saved (the row changed meanwhile)", claimed.name
            )
        return self.store.runtime_credentials(payload)

    async def _set_status(self, claimed: Snapshot, status: str, message: str) -> None:
        async with self.db.session() as session:
            await ConnectionRepo(session).set_status(
                claimed.id, claimed.version, status, message, self.clock()
            )
            await session.commit()

    async def _release(self, claimed: Snapshot) -> None:
        async with self.db.session() as session:
            await ConnectionRepo(session).release_lease(claimed.id, claimed.version)
            await session.commit()
