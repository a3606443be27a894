"""Messages, predictions, alerts and dead letters.

Revision ID: 0001
Revises:
Create Date: 2026-01-05
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False)


def _timestamp(name: str, server_default: sa.TextClause | None = None) -> sa.Column[datetime]:
    return sa.Column(
        name, sa.DateTime(timezone=True), nullable=False, server_default=server_default
    )


def upgrade() -> None:
    op.create_table(
        "messages",
        _id(),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("entity", sa.Text(), nullable=True),
        sa.Column("conversation_id", sa.Text(), nullable=True),
        sa.Column("speaker", sa.Text(), nullable=True),
        sa.Column("turn", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("text_sha256", sa.String(64), nullable=False),
        _timestamp("ts"),
        sa.Column("meta", JSONB(), nullable=False),
        sa.Column("origin_topic", sa.Text(), nullable=False),
        sa.Column("origin_partition", sa.Integer(), nullable=False),
        sa.Column("origin_offset", sa.BigInteger(), nullable=False),
        _timestamp("received_at", server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.UniqueConstraint(
            "tenant", "source", "message_id", name="uq_messages_tenant_source_message_id"
        ),
    )
    op.create_table(
        "predictions",
        _id(),
        sa.Column("message_pk", sa.BigInteger(), nullable=False),
        sa.Column("sentiment", sa.Text(), nullable=False),
        sa.Column("scores", JSONB(), nullable=False),
        sa.Column("risks", JSONB(), nullable=False),
        sa.Column("model_version", sa.Text(), nullable=False),
        _timestamp("scored_at"),
        sa.PrimaryKeyConstraint("id", name="pk_predictions"),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["messages.id"],
            name="fk_predictions_message_pk_messages",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "message_pk", "model_version", name="uq_predictions_message_pk_model_version"
        ),
    )
    op.create_table(
        "alerts",
        _id(),
        sa.Column("dedup_key", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("entity", sa.Text(), nullable=True),
        _timestamp("window_start"),
        _timestamp("window_end"),
        sa.Column("figures", JSONB(), nullable=False),
        sa.Column("evidence", JSONB(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("model_version", sa.Text(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.UniqueConstraint("dedup_key", name="uq_alerts_dedup_key"),
    )
    op.create_index("ix_alerts_created_at", "alerts", ["created_at"])
    op.create_index("ix_alerts_tenant_created_at", "alerts", ["tenant", sa.text("created_at DESC")])
    op.create_index(
        "ix_alerts_tenant_source_entity_created_at",
        "alerts",
        ["tenant", "source", "entity", sa.text("created_at DESC")],
    )
    op.create_table(
        "dead_letters",
        _id(),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("key_base64", sa.Text(), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("raw_size", sa.Integer(), nullable=False),
        _timestamp("received_at"),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
        sa.UniqueConstraint(
            "topic", "partition", "offset", name="uq_dead_letters_topic_partition_offset"
        ),
    )
    op.create_index("ix_dead_letters_received_at", "dead_letters", [sa.text("received_at DESC")])


def downgrade() -> None:
    op.drop_table("dead_letters")
    op.drop_table("alerts")
    op.drop_table("predictions")
    op.drop_table("messages")
