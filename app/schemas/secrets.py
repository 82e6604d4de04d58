"""API models of secrets: write-only values, listed by name and dates."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from app.schemas.base import APIModel
from app.security.secret_store import MAX_SECRET_BYTES


class SecretWrite(APIModel):
    """The value of a secret (write-only: no endpoint ever returns it)."""

    value: str = Field(
        min_length=1,
        max_length=MAX_SECRET_BYTES,
        description="The secret value; pipelines read it as `${{ secrets.NAME }}`",
    )


class SecretRead(APIModel):
    """A secret as listed: its name and dates, never its value."""

    name: str
    created_at: datetime
    updated_at: datetime
