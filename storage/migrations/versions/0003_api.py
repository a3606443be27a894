"""API keys, subscriptions, webhook deliveries, feedback, label leases and gold labels.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def _now() -> sa.Column[object]:
    return sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("scopes", JSONB(), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        _now(),
        sa.Column("revoked_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_api_keys"),
    )
    op.create_index("ix_api_keys_tenant", "api_keys", ["tenant"])

    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("sources", JSONB(), nullable=False),
        sa.Column("entities", JSONB(), nullable=False),
        sa.Column("kinds", JSONB(), nullable=False),
        sa.Column("min_severity", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("previous_secret", sa.Text(), nullable=True),
        sa.Column("previous_secret_until", TZ, nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default="true"),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        _now(),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_subscriptions"),
    )
    op.create_index("ix_subscriptions_tenant", "subscriptions", ["tenant"])

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("subscription_id", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("payload", JSONB(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _now(),
        sa.Column("delivered_at", TZ, nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name="fk_webhook_deliveries_subscription_id_subscriptions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
        sa.UniqueConstraint(
            "subscription_id", "event_id", name="uq_webhook_deliveries_subscription_id_event_id"
        ),
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"]
    )

    op.create_table(
        "feedback",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("feedback_id", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("message_pk", sa.BigInteger(), nullable=False),
        sa.Column("labeller", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("sentiment", sa.Text(), nullable=False),
        sa.Column("risks", JSONB(), nullable=False),
        sa.Column("prediction_correct", sa.Boolean(), nullable=False),
        sa.Column("model_version", sa.Text(), nullable=True),
        _now(),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["messages.id"],
            name="fk_feedback_message_pk_messages",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
        sa.UniqueConstraint("feedback_id", name="uq_feedback_feedback_id"),
        sa.UniqueConstraint("message_pk", "labeller", name="uq_feedback_message_pk_labeller"),
    )
    op.create_index("ix_feedback_tenant_labeller", "feedback", ["tenant", "labeller"])

    op.create_table(
        "label_leases",
        sa.Column("message_pk", sa.BigInteger(), nullable=False),
        sa.Column("labeller", sa.Text(), nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["messages.id"],
            name="fk_label_leases_message_pk_messages",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_pk", name="pk_label_leases"),
    )

    op.create_table(
        "gold_labels",
        sa.Column("message_pk", sa.BigInteger(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("sentiment", sa.Text(), nullable=False),
        sa.Column("risks", JSONB(), nullable=False),
        _now(),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["messages.id"],
            name="fk_gold_labels_message_pk_messages",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_pk", name="pk_gold_labels"),
    )


def downgrade() -> None:
    for table in (
        "gold_labels", "label_leases", "feedback", "webhook_deliveries", "subscriptions",
        "api_keys",
    ):  # fmt: skip
        op.drop_table(table)
