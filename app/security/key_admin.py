"""Issuing, listing and revoking API keys (the API's ``/v1/keys`` and the ``mashpipe keys`` commands).

A key is generated here, shown once to whoever asked for it, and stored only as its HMAC
(:func:`~app.security.apikeys.hash_api_key`) with its first characters (:func:`key_prefix`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BadRequest
from app.security.apikeys import generate_api_key, hash_api_key, key_prefix
from app.storage.base import utcnow
from app.storage.models import ApiKey
from app.storage.repositories import ApiKeyRepo

MAX_EXPIRY_DAYS = 3650
KeyStatus = Literal["active", "revoked", "expired"]


def expiry(expires_in_days: int | None, now: datetime) -> datetime | None:
    """When a key made at ``now`` expires (None: never); 400 outside 1..MAX_EXPIRY_DAYS days."""
    if expires_in_days is None:
        return None
    if not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
        raise BadRequest(
            f"expires_in_days must be between 1 and {MAX_EXPIRY_DAYS}",
            details={"expires_in_days": expires_in_days},
        )
    return now + timedelta(days=expires_in_days)


async def issue_key(
    session: AsyncSession,
    secret: bytes,
    account_id: str,
    name: str,
    *,
    expires_in_days: int | None = None,
    now: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key of the account: the stored row and the key itself (to show once). Does not commit."""
    now = now or utcnow()
    key = generate_api_key()
    row = await ApiKeyRepo(session).create(
        account_id, name, hash_api_key(key, secret), key_prefix(key), expires_at=expiry(expires_in_days, now)
    )
    return row, key


def key_status(key: ApiKey, now: datetime) -> KeyStatus:
    """Whether the key works at ``now``, or why not."""
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"
