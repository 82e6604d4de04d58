"""Triggers: schedule and poll trigger registry, schedule fires, poll state (task H2).

Revision ID: 0003triggers
Revises: 0002runtime
Create Date: 2026-11-26 12:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0003triggers"
down_revision: str | Sequence[str] | None = "0002runtime"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Placeholder; the tables are added as the models settle."""


def downgrade() -> None:
    """Placeholder; nothing to drop yet."""
