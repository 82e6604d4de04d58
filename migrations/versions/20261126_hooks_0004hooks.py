"""Webhooks: the hooks of pipelines and the deliveries they received (content filled in by task H3).

Revision ID: 0004hooks
Revises: 0003triggers
Create Date: 2026-11-26 12:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0004hooks"
down_revision: str | Sequence[str] | None = "0003triggers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Placeholder while the hook tables are designed; keeps the revision chain whole."""


def downgrade() -> None:
    """Placeholder while the hook tables are designed; keeps the revision chain whole."""
