"""The data contracts every part of tonewatch shares: a leaf module that anything may import.

Keep these stable; version them when they change.
"""

from __future__ import annotations

import base64
import hashlib
import unicodedata
from datetime import UTC, datetime
from typing import Final, Literal, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
    model_validator,
)

Sentiment = Literal["negative", "neutral", "positive"]
Risk = Literal[
    "fraud",
    "legal_regulatory",
    "financial_distress",
    "service_outage",
    "product_safety",
    "churn",
    "toxicity",
]
Source = Literal["news", "reviews", "chats"]
Speaker = Literal["customer", "agent"]
AlertKind = Literal[
    "message_risk", "negative_spike", "volume_spike", "sentiment_shift", "escalation"
]
# Ordered from least to most urgent (subscriptions filter on a minimum severity).
Severity = Literal["low", "medium", "high", "critical"]

# Order matters: it is the order of the model's output vectors (sentiment_probs[3], risk_probs[7]).
SENTIMENT_LABELS: Final[tuple[Sentiment, ...]] = get_args(Sentiment)
RISK_LABELS: Final[tuple[Risk, ...]] = get_args(Risk)
SOURCES: Final[tuple[Source, ...]] = get_args(Source)
ALERT_KINDS: Final[tuple[AlertKind, ...]] = get_args(AlertKind)
SEVERITIES: Final[tuple[Severity, ...]] = get_args(Severity)

# Longer texts are rejected, never silently cut (the model itself truncates to its tokens).
MAX_TEXT_CHARS: Final = 20_000
MAX_ID_CHARS: Final = 256
# A dead letter keeps at most this much of the raw payload (the size is always recorded).
MAX_DEAD_LETTER_RAW_BYTES: Final = 64 * 1024
CONTRACT_VERSION: Final = 1


class ClassifyRequest(BaseModel):
    """One line of `tonewatch classify` input."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=256)
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    source: Source | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Classification(BaseModel):
    """What the model says about one text, and which model version said it."""

    id: str
    sentiment: Sentiment
    scores: dict[Sentiment, float]
    risks: dict[Risk, float]
    model_version: str


def normalise_text(text: str) -> str:
    """NFC, so that the same words typed in NFC or NFD hash, dedup and store alike."""
    return unicodedata.normalize("NFC", text)


class InputMessage(BaseModel):
    """One message on a source topic (`news`, `reviews`, `chats`), contract version 1.

    Unknown fields are rejected rather than dropped: a producer that misspells `entity`
    learns it from the dead-letter topic instead of losing its alerts. Texts are stored in
    NFC; a text over MAX_TEXT_CHARS, or holding NUL (Postgres refuses it), is rejected.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    source: Source
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    tenant: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    entity: str | None = Field(None, min_length=1, max_length=MAX_ID_CHARS)
    ts: AwareDatetime
    meta: dict[str, JsonValue] = Field(default_factory=dict)
    conversation_id: str | None = Field(None, min_length=1, max_length=MAX_ID_CHARS)
    speaker: Speaker | None = None
    turn: int | None = Field(None, ge=0)

    @field_validator("text")
    @classmethod
    def _clean_text(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("text contains a NUL character")
        value = normalise_text(value)
        if not value.strip():
            raise ValueError("text is blank")
        return value

    @field_validator("ts")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _chat_fields(self) -> InputMessage:
        chat_fields = (self.conversation_id, self.speaker, self.turn)
        if self.source == "chats":
            if None in chat_fields:
                raise ValueError("a chat message needs conversation_id, speaker and turn")
            if self.entity is not None and self.entity != self.conversation_id:
                raise ValueError("a chat message's entity, if given, is its conversation_id")
        elif any(f is not None for f in chat_fields):
            raise ValueError("conversation_id, speaker and turn belong to chat messages only")
        return self

    @property
    def subject(self) -> str | None:
        """What windows and alerts are about: the entity, or the conversation of a chat."""
        return self.conversation_id if self.source == "chats" else self.entity

    @property
    def key(self) -> tuple[str, str, str]:
        """Message identity for deduplication: a producer's ids are unique per source."""
        return (self.tenant, self.source, self.id)

    @property
    def text_sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


class Origin(BaseModel):
    """Where a record was read: Kafka topic, partition and offset."""

    model_config = ConfigDict(frozen=True)

    topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)


class ScoredMessage(BaseModel):
    """A message with the model's verdict on it: what the worker writes to `scored`."""

    model_config = ConfigDict(frozen=True)

    message: InputMessage
    origin: Origin
    sentiment: Sentiment
    scores: dict[Sentiment, float]
    risks: dict[Risk, float]
    model_version: str
    scored_at: AwareDatetime


class Alert(BaseModel):
    """Something worth a person's attention, with the figures and messages behind it.

    `dedup_key` is derived from what triggered the alert, never from when it was computed,
    so reprocessing the same messages yields the same key and the sinks ignore the copy.
    """

    model_config = ConfigDict(frozen=True)

    dedup_key: str = Field(min_length=1, max_length=512)
    tenant: str
    kind: AlertKind
    severity: Severity
    source: Source
    entity: str | None
    window_start: AwareDatetime
    window_end: AwareDatetime
    figures: dict[str, float]
    evidence: list[str] = Field(description="ids of the messages behind the alert")
    summary: str
    model_version: str
    created_at: AwareDatetime


class DeadLetter(BaseModel):
    """A record the worker could not process, with why and where it came from."""

    model_config = ConfigDict(frozen=True)

    reason: str = Field(description="a short machine-readable cause, e.g. invalid_json")
    error: str = Field(description="the human-readable detail")
    origin: Origin
    key_base64: str | None
    raw_base64: str = Field(description=f"the payload, cut to {MAX_DEAD_LETTER_RAW_BYTES} bytes")
    raw_size: int = Field(ge=0)
    received_at: AwareDatetime

    @classmethod
    def of(
        cls, reason: str, error: str, origin: Origin, raw: bytes | None, key: bytes | None
    ) -> DeadLetter:
        raw = raw or b""
        return cls(
            reason=reason,
            error=error,
            origin=origin,
            key_base64=None if key is None else base64.b64encode(key).decode(),
            raw_base64=base64.b64encode(raw[:MAX_DEAD_LETTER_RAW_BYTES]).decode(),
            raw_size=len(raw),
            received_at=datetime.now(UTC),
        )

    @property
    def raw(self) -> bytes:
        return base64.b64decode(self.raw_base64)


class Feedback(BaseModel):
    """A labeller's verdict on a stored message: the record on the `feedback` topic
    (key: the message id), contract version 1.

    There is one verdict per (message, labeller): `feedback_id` stays the same when the
    labeller changes their mind, and `updated_at` moves. Delivery is at-least-once, so
    consumers dedup by (feedback_id, updated_at) and keep the newest per feedback_id.
    "Prediction correct" arrives as the prediction's labels, with `prediction_correct` set.
    """

    model_config = ConfigDict(frozen=True)

    feedback_id: str
    tenant: str
    source: Source
    message_id: str
    text: str
    labeller: str = Field(description="the name of the API key that gave the verdict")
    sentiment: Sentiment
    risks: list[Risk] = Field(description="the risks that apply; the others do not")
    prediction_correct: bool
    model_version: str = Field(description="the version whose prediction was judged")
    created_at: AwareDatetime
    updated_at: AwareDatetime
    version: int = 1


ModelEventKind = Literal["promoted", "rolled_back", "rejected"]


class ModelEvent(BaseModel):
    """A change of the served model, or a challenger turned down: the record on the
    `model-events` topic (key: the model name), contract version 1.

    `version` is the Triton version served from now on (for `rejected`: none, the champion
    keeps serving); `previous_version` the one served before.
    """

    model_config = ConfigDict(frozen=True)

    event: ModelEventKind
    model_name: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    version: int | None = Field(default=None, ge=1)
    previous_version: int | None = Field(default=None, ge=1)
    trained_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    reason: str | None = None
    at: AwareDatetime
    contract_version: int = CONTRACT_VERSION
