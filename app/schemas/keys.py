"""API models of API keys: create (the key shown once), list, revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from app.schemas.base import APIModel
from app.security.key_admin import MAX_EXPIRY_DAYS


class ApiKeyCreate(APIModel):
    """A new API key for the account of the key making the request."""

    name: str = Field(min_length=1, max_length=100, description="What the key is for, e.g. `ci`")
    expires_in_days: int | None = Field(
        default=None, ge=1, le=MAX_EXPIRY_DAYS, description="Days until the key expires (default: never)"
    )


class ApiKeyRead(APIModel):
    """An API key as listed: never the key itself, only its first characters."""

    id: str
    name: str
    prefix: str = Field(description="The key's first characters, to recognise it (`mp_AbCdEfG`)")
    status: Literal["active", "revoked", "expired"]
    created_at: datetime
    last_used_at: datetime | None = Field(
        default=None, description="Last request made with the key (updated at most once a minute)"
    )
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


class ApiKeyCreated(ApiKeyRead):
    """A new key, with the key itself: shown only in this answer, keep it now."""

    key: str = Field(description="The API key; send it as `Authorization: Bearer <key>`. Shown only once")
