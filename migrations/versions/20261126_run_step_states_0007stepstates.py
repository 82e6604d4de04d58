"""Runs: ``step_states``, the steps' final states of a run recorded in one piece.

A succeeded published-endpoint run is recorded with its steps in this column instead of one
``step_runs`` row per step (see ``app/storage/repositories/run_writes.py``); NULL for every other run.

Revision ID: 0007stepstates
Revises: 0006connections
Create Date: 2026-11-26 09:20:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007stepstates"
down_revision: str | Sequence[str] | None = "0006connections"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# JSON documents; TEXT on SQLite, whose JSON columns would have NUMERIC affinity (bare numbers altered).
JSON_DOCUMENT = sa.JSON().with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("step_states", JSON_DOCUMENT, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("step_states")
