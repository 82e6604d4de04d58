"""The ``connections`` and ``oauth_states`` tables: an account's stored connector credentials.

::

    accounts ─< connections (account_id, name) unique ─< oauth_states (state_hash PK)

A connection holds the credentials of one connector (API key, bearer token, basic, or OAuth2 tokens)
as one Fernet ciphertext bound to the account and the connection's name (see
:mod:`app.security.crypto`); nothing secret is stored in clear. ``version`` grows on every write of
the credentials: an OAuth2 refresh claims the row by version (and ``refresh_lease_until``) so two
processes never both rotate the tokens. An ``oauth_states`` row is one pending authorization (the
state's SHA-256, the encrypted PKCE verifier, the redirect URI); it is used once and expires.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.storage.base import ID_LENGTH, Base, new_id, utcnow
from app.storage.types import UTCDateTime

__all__ = [
    "CONNECTION_NAME_MAX_LENGTH",
    "ConnectionRow",
    "ConnectionStatus",
    "OAuthStateRow",
]

CONNECTION_NAME_MAX_LENGTH = 128


class ConnectionStatus:
    """The values of ``connections.status``."""

    ACTIVE = "active"  # credentials usable
    PENDING = "pending"  # OAuth2: waiting for the authorization callback
    NEEDS_REAUTH = "needs_reauth"  # OAuth2: the provider refused the refresh token (invalid_grant)


class ConnectionRow(Base):
    """A named connection of an account to one connector; ``ciphertext`` holds its credentials."""

    __tablename__ = "connections"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(CONNECTION_NAME_MAX_LENGTH), nullable=False)
    connector: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=ConnectionStatus.ACTIVE)
    status_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    ciphertext: Mapped[str] = mapped_column(Text, nullable=False)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    refresh_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    __table_args__ = (UniqueConstraint("account_id", "name"),)


class OAuthStateRow(Base):
    """One pending OAuth2 authorization of a connection: used once by the callback, expires."""

    __tablename__ = "oauth_states"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )
    connection_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("connections.id", ondelete="CASCADE"), nullable=False, index=True
    )
    verifier_ciphertext: Mapped[str] = mapped_column(Text, nullable=False)
    redirect_uri: Mapped[str] = mapped_column(Text, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
