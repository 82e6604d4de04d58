"""Secrets: the per-account encrypted secrets table (content filled in by task S1).

Revision ID: 0005secrets
Revises: 0004hooks
Create Date: 2026-11-26 12:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0005secrets"
down_revision: str | Sequence[str] | None = "0004hooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Placeholder while the secrets table is designed; keeps the revision chain whole."""


def downgrade() -> None:
    """Placeholder while the secrets table is designed; keeps the revision chain whole."""
