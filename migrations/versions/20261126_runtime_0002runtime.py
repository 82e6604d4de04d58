"""Runtime: retry links between runs, run heartbeats, and the per-pipeline status index (task H1).

* ``runs.retry_of``: the run a retry re-runs (no foreign key: retention may prune the original);
* ``runs.heartbeat_at``: refreshed while a process executes the run, so a ``running`` run left by a
  dead process is recognised (recovery);
* ``ix_runs_pipeline_id`` becomes ``ix_runs_pipeline_id_status``: it still serves the cascade from
  ``pipelines`` and also counts a pipeline's running / in-progress runs for its concurrency limit
  without reading rows.

Revision ID: 0002runtime
Revises: f17d8bc5b786
Create Date: 2026-11-26 12:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002runtime"
down_revision: str | Sequence[str] | None = "f17d8bc5b786"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (nullable, no default): no table rebuild, instant even with millions of runs.
    op.add_column("runs", sa.Column("retry_of", sa.String(length=32), nullable=True))
    op.add_column("runs", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_runs_pipeline_id_status", "runs", ["pipeline_id", "status"])
    op.drop_index("ix_runs_pipeline_id", table_name="runs")


def downgrade() -> None:
    op.create_index("ix_runs_pipeline_id", "runs", ["pipeline_id"])
    op.drop_index("ix_runs_pipeline_id_status", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("retry_of")
