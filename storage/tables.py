"""The Postgres schema as SQLAlchemy 2 models. Migrations in storage/migrations must match it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names, so that migrations can name what they create and drop.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Json = dict[str, Any]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: DateTime(timezone=True),
        str: Text(),
        Json: JSONB(),
        list[str]: JSONB(),
        bytes: LargeBinary(),
    }


class Message(Base):
    """An input message as received; (tenant, source, message_id) is its dedup key."""

    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("tenant", "source", "message_id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant: Mapped[str]
    source: Mapped[str]
    message_id: Mapped[str]
    entity: Mapped[str | None]
    conversation_id: Mapped[str | None]
    speaker: Mapped[str | None]
    turn: Mapped[int | None] = mapped_column(Integer)
    text: Mapped[str]
    text_sha256: Mapped[str] = mapped_column(String(64))
    ts: Mapped[datetime]
    meta: Mapped[Json]
    origin_topic: Mapped[str]
    origin_partition: Mapped[int] = mapped_column(Integer)
    origin_offset: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Prediction(Base):
    """One model version's verdict on a stored message."""

    __tablename__ = "predictions"
    __table_args__ = (UniqueConstraint("message_pk", "model_version"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    message_pk: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("messages.id", ondelete="CASCADE")
    )
    sentiment: Mapped[str]
    scores: Mapped[Json]
    risks: Mapped[Json]
    model_version: Mapped[str]
    scored_at: Mapped[datetime]


class AlertRow(Base):
    """A recorded alert (the tonewatch.contracts.Alert); dedup_key makes recording idempotent."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    dedup_key: Mapped[str] = mapped_column(unique=True)
    tenant: Mapped[str]
    kind: Mapped[str]
    severity: Mapped[str]
    source: Mapped[str]
    entity: Mapped[str | None]
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    figures: Mapped[Json]
    evidence: Mapped[list[str]]
    summary: Mapped[str]
    model_version: Mapped[str]
    created_at: Mapped[datetime]


# Refilling Redis after an outage asks which tenants had alerts since a time.
Index("ix_alerts_created_at", AlertRow.created_at)
Index("ix_alerts_tenant_created_at", AlertRow.tenant, AlertRow.created_at.desc())
Index(
    "ix_alerts_tenant_source_entity_created_at",
    AlertRow.tenant,
    AlertRow.source,
    AlertRow.entity,
    AlertRow.created_at.desc(),
)


class DeadLetterRow(Base):
    """A record the worker could not process (tonewatch.contracts.DeadLetter), by origin."""

    __tablename__ = "dead_letters"
    __table_args__ = (UniqueConstraint("topic", "partition", "offset"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    reason: Mapped[str]
    error: Mapped[str]
    topic: Mapped[str]
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    key_base64: Mapped[str | None]
    raw: Mapped[bytes]
    raw_size: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime]


Index("ix_dead_letters_received_at", DeadLetterRow.received_at.desc())


class EntityStateRow(Base):
    """What the alert rules remember about one (tenant, source, subject): its open window,
    baseline, cooldowns and conversation turns, as JSON. Written once per micro-batch."""

    __tablename__ = "entity_states"

    tenant: Mapped[str] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(primary_key=True)
    state: Mapped[Json]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ApiKeyRow(Base):
    """An API key of a tenant. Only the SHA-256 of its secret is kept (keys are random, so
    a slow hash adds nothing); `name` is the person or system holding it."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(primary_key=True)
    tenant: Mapped[str]
    name: Mapped[str]
    scopes: Mapped[list[str]]
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    revoked_at: Mapped[datetime | None]


Index("ix_api_keys_tenant", ApiKeyRow.tenant)


class SubscriptionRow(Base):
    """A tenant's rule matching alerts, and where matches go (`sse` or `webhook`).

    Webhook secrets are kept in clear because signing needs them; the API shows a secret
    once, when it is made. While a rotation's grace period runs, both secrets sign."""

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(primary_key=True)
    tenant: Mapped[str]
    name: Mapped[str]
    sources: Mapped[list[str]]
    entities: Mapped[list[str]]
    kinds: Mapped[list[str]]
    min_severity: Mapped[str]
    channel: Mapped[str]
    url: Mapped[str | None]
    secret: Mapped[str | None]
    previous_secret: Mapped[str | None]
    previous_secret_until: Mapped[datetime | None]
    enabled: Mapped[bool] = mapped_column(Boolean, server_default="true")
    disabled_reason: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


Index("ix_subscriptions_tenant", SubscriptionRow.tenant)


class DeliveryRow(Base):
    """One webhook event for one subscription; (subscription_id, event_id) makes fan-out
    idempotent. status: pending, delivered, dead (attempts spent) or gone (HTTP 410)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("subscription_id", "event_id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"))
    tenant: Mapped[str]
    event_id: Mapped[str]
    payload: Mapped[Json]
    status: Mapped[str] = mapped_column(server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    delivered_at: Mapped[datetime | None]


Index("ix_webhook_deliveries_due", DeliveryRow.status, DeliveryRow.next_attempt_at)


class FeedbackRow(Base):
    """A labeller's verdict on a stored message: corrected labels, or "prediction correct".
    One row per (message, labeller); a second verdict replaces the first."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("message_pk", "labeller"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    feedback_id: Mapped[str] = mapped_column(unique=True)
    tenant: Mapped[str]
    message_pk: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("messages.id", ondelete="CASCADE")
    )
    labeller: Mapped[str]
    key_id: Mapped[str]
    sentiment: Mapped[str]
    risks: Mapped[list[str]]
    prediction_correct: Mapped[bool] = mapped_column(Boolean)
    model_version: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


Index("ix_feedback_tenant_labeller", FeedbackRow.tenant, FeedbackRow.labeller)


class LabelLeaseRow(Base):
    """A queued message reserved for one labeller until `expires_at`."""

    __tablename__ = "label_leases"

    message_pk: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    labeller: Mapped[str]
    expires_at: Mapped[datetime]


class GoldLabelRow(Base):
    """The known answer for a message, hidden from labellers; measures them."""

    __tablename__ = "gold_labels"

    message_pk: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    tenant: Mapped[str]
    sentiment: Mapped[str]
    risks: Mapped[list[str]]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class TrainingLabelRow(Base):
    """The retrain worker's label store: the newest version of each feedback record read
    from the `feedback` topic (idempotent by feedback_id; an older updated_at never wins)."""

    __tablename__ = "training_labels"

    feedback_id: Mapped[str] = mapped_column(primary_key=True)
    updated_at: Mapped[datetime]
    tenant: Mapped[str]
    source: Mapped[str]
    message_id: Mapped[str]
    text: Mapped[str]
    labeller: Mapped[str]
    sentiment: Mapped[str]
    risks: Mapped[list[str]]
    prediction_correct: Mapped[bool] = mapped_column(Boolean)
    model_version: Mapped[str | None]
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())


Index("ix_training_labels_received_at", TrainingLabelRow.received_at)


class RetrainRunRow(Base):
    """One retrain round: why it started, what it used, and what the gate decided."""

    __tablename__ = "retrain_runs"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    trigger: Mapped[str]  # labels, schedule or manual
    status: Mapped[str]  # running, promoted, rejected, failed
    started_at: Mapped[datetime] = mapped_column(server_default=func.now())
    finished_at: Mapped[datetime | None]
    labels_used: Mapped[int] = mapped_column(Integer, server_default="0")
    summary: Mapped[Json]
    report_dir: Mapped[str | None]
    error: Mapped[str | None]


class ModelVersionRow(Base):
    """The model registry: every challenger trained, and what became of it. `version` is
    the Triton version number, given only to challengers that passed the gate.
    status: candidate, champion, retired (a former champion) or rejected."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_name", "version"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    model_name: Mapped[str]
    version: Mapped[int | None] = mapped_column(Integer)
    trained_id: Mapped[str]
    status: Mapped[str]
    metrics: Mapped[Json]
    reason: Mapped[str | None]
    run_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("retrain_runs.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
