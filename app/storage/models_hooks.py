"""Webhook tables: the hooks of pipelines and the deliveries they received.

::

    pipelines ─< hooks ─< webhook_deliveries >─ runs

A :class:`Hook` is created when a pipeline is saved with a ``webhook`` trigger. Its id is the secret
part of the hook URL (``POST /v1/hooks/{id}``): 192 random bits, URL-safe. A hook is keyed by
``(pipeline, ordinal)`` (the position among the pipeline's webhook triggers), so a new revision keeps
the URL; a revision without that trigger disables the hook (``enabled = False``) instead of deleting
it, and a later revision that brings the trigger back enables the same URL again.

A :class:`WebhookDelivery` records the ``dedupe_header`` value of a delivery that started a run; it is
inserted in the same transaction as the run, and the unique constraint on ``(hook_id, dedupe_key)``
makes concurrent identical deliveries start exactly one run.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.storage.base import ID_LENGTH, Base, new_id, utcnow
from app.storage.types import UTCDateTime

__all__ = ["HOOK_ID_LENGTH", "MAX_DEDUPE_KEY_LENGTH", "Hook", "WebhookDelivery", "new_hook_id"]

HOOK_ID_BYTES = 24
"""Random bytes of a hook id: 192 bits, unguessable (the id is the capability to start runs)."""
HOOK_ID_LENGTH = 64
"""Width of the hook id column (a new id is 32 URL-safe characters)."""
MAX_DEDUPE_KEY_LENGTH = 255
"""Longest ``dedupe_header`` value kept; longer values are hashed (see the webhook service)."""


def new_hook_id() -> str:
    """A new hook id: 24 random bytes as 32 URL-safe base64 characters."""
    return secrets.token_urlsafe(HOOK_ID_BYTES)


class Hook(Base):
    """The hook URL of one webhook trigger of a pipeline."""

    __tablename__ = "hooks"

    id: Mapped[str] = mapped_column(String(HOOK_ID_LENGTH), primary_key=True, default=new_hook_id)
    account_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )
    pipeline_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False
    )
    ordinal: Mapped[int] = mapped_column(Integer, nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    __table_args__ = (UniqueConstraint("pipeline_id", "ordinal"),)


class WebhookDelivery(Base):
    """A delivery that started a run, by its ``dedupe_header`` value."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    hook_id: Mapped[str] = mapped_column(
        String(HOOK_ID_LENGTH), ForeignKey("hooks.id", ondelete="CASCADE"), nullable=False
    )
    dedupe_key: Mapped[str] = mapped_column(String(MAX_DEDUPE_KEY_LENGTH), nullable=False)
    run_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    __table_args__ = (
        UniqueConstraint("hook_id", "dedupe_key"),
        Index("ix_webhook_deliveries_run_id", "run_id"),  # serves the cascade when runs are pruned
    )
