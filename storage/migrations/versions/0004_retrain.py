"""The retrain loop: label store, retrain runs and the model registry.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "training_labels",
        sa.Column("feedback_id", sa.Text(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("labeller", sa.Text(), nullable=False),
        sa.Column("sentiment", sa.Text(), nullable=False),
        sa.Column("risks", JSONB(), nullable=False),
        sa.Column("prediction_correct", sa.Boolean(), nullable=False),
        sa.Column("model_version", sa.Text(), nullable=True),
        sa.Column("received_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("feedback_id", name="pk_training_labels"),
    )
    op.create_index("ix_training_labels_received_at", "training_labels", ["received_at"])
    op.create_table(
        "retrain_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("started_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("finished_at", TZ, nullable=True),
        sa.Column("labels_used", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("summary", JSONB(), nullable=False),
        sa.Column("report_dir", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_retrain_runs"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("model_name", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("trained_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("metrics", JSONB(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["retrain_runs.id"],
            name="fk_model_versions_run_id_retrain_runs",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("model_name", "version", name="uq_model_versions_model_name_version"),
    )


def downgrade() -> None:
    for table in ("model_versions", "retrain_runs", "training_labels"):
        op.drop_table(table)
