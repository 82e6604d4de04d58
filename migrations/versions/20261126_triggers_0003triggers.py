"""Triggers: the schedule and poll trigger registry, schedule fires and poll state (task H2).

* ``triggers``: one row per schedule or poll trigger of a pipeline, keyed by pipeline, kind,
  position and a hash of its defining parameters, with a schedule's progress;
* ``schedule_fires``: one row per fire time that started a run; its primary key
  ``(trigger_id, fire_time)`` makes a fire time start exactly one run across processes;
* ``poll_state``: a poll trigger's cursor, dedupe window, next poll time, lease and last error.

Revision ID: 0003triggers
Revises: 0002runtime
Create Date: 2026-11-26 12:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003triggers"
down_revision: str | Sequence[str] | None = "0002runtime"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# JSON documents; TEXT on SQLite, whose JSON columns would have NUMERIC affinity (bare numbers altered).
JSON_DOCUMENT = sa.JSON().with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "triggers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("pipeline_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("identity", sa.String(length=64), nullable=False),
        sa.Column("params", JSON_DOCUMENT, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fired_through", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_fire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_fire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_id", sa.String(length=32), nullable=True),
        sa.Column("fires", sa.Integer(), nullable=False),
        sa.Column("skipped_fires", sa.Integer(), nullable=False),
        sa.Column("last_skipped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", JSON_DOCUMENT, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_triggers_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipelines.id"],
            name=op.f("fk_triggers_pipeline_id_pipelines"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_triggers")),
    )
    op.create_index("ix_triggers_pipeline_id_kind", "triggers", ["pipeline_id", "kind"])
    op.create_index("ix_triggers_kind_active_next_fire_at", "triggers", ["kind", "active", "next_fire_at"])

    op.create_table(
        "schedule_fires",
        sa.Column("trigger_id", sa.String(length=32), nullable=False),
        sa.Column("fire_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["trigger_id"],
            ["triggers.id"],
            name=op.f("fk_schedule_fires_trigger_id_triggers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("trigger_id", "fire_time", name=op.f("pk_schedule_fires")),
    )
    op.create_index("ix_schedule_fires_fire_time", "schedule_fires", ["fire_time"])

    op.create_table(
        "poll_state",
        sa.Column("trigger_id", sa.String(length=32), nullable=False),
        sa.Column("cursor", JSON_DOCUMENT, nullable=True),
        sa.Column("seen", JSON_DOCUMENT, nullable=False),
        sa.Column("baselined", sa.Boolean(), nullable=False),
        sa.Column("next_poll_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_token", sa.String(length=32), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("polls", sa.Integer(), nullable=False),
        sa.Column("runs_started", sa.Integer(), nullable=False),
        sa.Column("last_run_id", sa.String(length=32), nullable=True),
        sa.Column("last_polled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", JSON_DOCUMENT, nullable=True),
        sa.ForeignKeyConstraint(
            ["trigger_id"],
            ["triggers.id"],
            name=op.f("fk_poll_state_trigger_id_triggers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("trigger_id", name=op.f("pk_poll_state")),
    )
    op.create_index("ix_poll_state_next_poll_at", "poll_state", ["next_poll_at"])


def downgrade() -> None:
    op.drop_index("ix_poll_state_next_poll_at", table_name="poll_state")
    op.drop_table("poll_state")
    op.drop_index("ix_schedule_fires_fire_time", table_name="schedule_fires")
    op.drop_table("schedule_fires")
    op.drop_index("ix_triggers_kind_active_next_fire_at", table_name="triggers")
    op.drop_index("ix_triggers_pipeline_id_kind", table_name="triggers")
    op.drop_table("triggers")
