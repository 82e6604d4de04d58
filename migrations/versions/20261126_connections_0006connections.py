"""Connections: stored connector credentials and OAuth2 authorization states (content pending).

Revision ID: 0006connections
Revises: 0005secrets
Create Date: 2026-11-26 13:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0006connections"
down_revision: str | Sequence[str] | None = "0005secrets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Placeholder: the connections tables are added by task S2."""


def downgrade() -> None:
    """Placeholder: nothing to undo yet."""
