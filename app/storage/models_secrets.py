"""The ``secrets`` table: an account's named secrets, encrypted (see :mod:`app.security.crypto`).

::

    accounts ─< secrets (account_id, name) unique

Only the ciphertext is stored; it binds the account id and the name (a row copied to another account
or renamed does not decrypt). Values never leave the server through the API.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.storage.base import ID_LENGTH, Base, new_id, utcnow
from app.storage.types import UTCDateTime

__all__ = ["SECRET_NAME_MAX_LENGTH", "Secret"]

SECRET_NAME_MAX_LENGTH = 100


class Secret(Base):
    """A named secret of an account (``${{ secrets.NAME }}``); ``ciphertext`` is a Fernet token."""

    __tablename__ = "secrets"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(SECRET_NAME_MAX_LENGTH), nullable=False)
    ciphertext: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    __table_args__ = (UniqueConstraint("account_id", "name"),)
