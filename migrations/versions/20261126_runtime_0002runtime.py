"""Runtime: retry links between runs and the indexes of concurrency limits and retention (task H1).

Revision ID: 0002runtime
Revises: f17d8bc5b786
Create Date: 2026-11-26 12:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0002runtime"
down_revision: str | Sequence[str] | None = "f17d8bc5b786"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Placeholder; the columns and indexes are added as the models settle."""


def downgrade() -> None:
    """Placeholder; nothing to drop yet."""
