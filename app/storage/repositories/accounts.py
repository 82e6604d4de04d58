"""Accounts and their API keys."""

from __future__ import annotations

import builtins
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BadRequest, Conflict
from app.storage.models import Account, ApiKey

TOUCH_INTERVAL = timedelta(seconds=60)
"""``ApiKeyRepo.touch`` writes ``last_used_at`` at most this often per key (saves a write per request)."""

MAX_NAME_LENGTH = 100


def _check_name(name: str, what: str) -> str:
    if not name or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise BadRequest(f"{what} name must be 1 to {MAX_NAME_LENGTH} characters", details={"name": name})
    return name


class AccountRepo:
    """Accounts (tenants). Never commits: the caller does."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, name: str) -> Account:
        """A new account; :class:`Conflict` when the name is taken."""
        _check_name(name, "account")
        if await self.get_by_name(name) is not None:
            raise Conflict(f"account {name!r} already exists")
        account = Account(name=name)
        self.session.add(account)
        try:
            await self.session.flush()
        except IntegrityError:
            raise Conflict(f"account {name!r} already exists") from None
        return account

    async def get(self, account_id: str) -> Account | None:
        return await self.session.get(Account, account_id)

    async def get_by_name(self, name: str) -> Account | None:
        return await self.session.scalar(select(Account).where(Account.name == name))

    async def count(self) -> int:
        return await self.session.scalar(select(func.count()).select_from(Account)) or 0


class ApiKeyRepo:
    """API keys, found by their HMAC. Never commits: the caller does."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(
        self,
        account_id: str,
        name: str,
        key_hash: str,
        prefix: str,
        expires_at: datetime | None = None,
    ) -> ApiKey:
        """Record a key by its hash (the key itself is never stored)."""
        _check_name(name, "key")
        key = ApiKey(
            account_id=account_id, name=name, key_hash=key_hash, prefix=prefix, expires_at=expires_at
        )
        self.session.add(key)
        try:
            await self.session.flush()
        except IntegrityError:
            raise Conflict("this API key cannot be registered") from None
        return key

    async def find_active_by_hash(self, key_hash: str, now: datetime) -> tuple[ApiKey, Account] | None:
        """The key with this hash and its account, when it is neither revoked nor expired at ``now``."""
        statement = (
            select(ApiKey, Account)
            .join(Account, Account.id == ApiKey.account_id)
            .where(
                ApiKey.key_hash == key_hash,
                ApiKey.revoked_at.is_(None),
                or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
            )
        )
        row = (await self.session.execute(statement)).first()
        if row is None:
            return None
        return row[0], row[1]

    async def touch(self, key_id: str, now: datetime) -> None:
        """Record that the key was used at ``now`` (skipped when recorded less than a minute ago)."""
        await self.session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - TOUCH_INTERVAL),
            )
            .values(last_used_at=now)
            .returning(ApiKey),
            execution_options={"populate_existing": True},
        )

    async def list(self, account_id: str) -> builtins.list[ApiKey]:
        """Every key of the account, revoked and expired ones included, oldest first."""
        statement = (
            select(ApiKey).where(ApiKey.account_id == account_id).order_by(ApiKey.created_at, ApiKey.id)
        )
        return list(await self.session.scalars(statement))

    async def get(self, account_id: str, key_id: str) -> ApiKey | None:
        """One key of the account (None for another account's key)."""
        return await self.session.scalar(
            select(ApiKey).where(ApiKey.id == key_id, ApiKey.account_id == account_id)
        )

    async def revoke(self, account_id: str, key_id: str, now: datetime) -> bool:
        """Revoke the key; True when the account has such a key (a revoked key keeps its first date)."""
        key = await self.get(account_id, key_id)
        if key is None:
            return False
        if key.revoked_at is None:
            key.revoked_at = now
            await self.session.flush()
        return True
