"""Feedback labelling: the queue of uncertain predictions, verdicts, gold labels and the
labellers' figures.

A verdict is written to Postgres (the record) and then published on the `feedback` topic
for the retrain worker. When Kafka is down the answer is 503 with Retry-After and the row
stays: the client's retry finds the same verdict (same feedback_id and updated_at) and
publishes it, and consumers dedup by (feedback_id, updated_at).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Final

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Body, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from storage import labeling
from streams.topics import ensure_topics, publish, topic_name
from tonewatch.api.auth import Admin, Labeller
from tonewatch.api.state import ApiState, api_state
from tonewatch.contracts import MAX_ID_CHARS, RISK_LABELS, Risk, Sentiment, Source

router = APIRouter(prefix="/v1", tags=["labeling"])
log = logging.getLogger(__name__)

MAX_QUEUE: Final = 50
MAX_GOLD_ITEMS: Final = 1000
MAX_LISTED: Final = 500
# Bounds the whole publish (producer start, topic check, send) while Kafka is down.
PUBLISH_TIMEOUT_S: Final = 15.0
RETRY_AFTER_S: Final = 5
# (bootstrap servers, topic) pairs known to exist: ensure_topics runs once per process.
_topics_ready: set[tuple[str, str]] = set()


class PredictionOut(BaseModel):
    sentiment: Sentiment
    scores: dict[str, float]
    risks: dict[str, float]
    model_version: str


class QueueItemOut(BaseModel):
    message_id: str
    source: Source
    entity: str | None
    text: str
    ts: datetime
    prediction: PredictionOut
    confidence: float = Field(description="The prediction's weakest decision, 0 to 1.")
    lease_expires_at: datetime


def _unique_risks(risks: list[Risk] | None) -> list[Risk] | None:
    if risks is not None and len(set(risks)) != len(risks):
        raise ValueError("risks must be unique")
    return risks


class FeedbackIn(BaseModel):
    """Either `correct: true` (the prediction's labels stand) or a `sentiment`, with the
    `risks` that apply (omitted: none)."""

    model_config = ConfigDict(extra="forbid")
    message_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    source: Source
    sentiment: Sentiment | None = None
    risks: list[Risk] | None = Field(None, max_length=len(RISK_LABELS))
    correct: bool | None = None

    _unique = field_validator("risks")(_unique_risks)

    @model_validator(mode="after")
    def _one_verdict(self) -> FeedbackIn:
        if self.correct:
            if self.sentiment is not None or self.risks is not None:
                raise ValueError("`correct: true` takes no sentiment or risks")
        elif self.sentiment is None:
            raise ValueError("give `correct: true` or a sentiment")
        return self


class FeedbackOut(BaseModel):
    feedback_id: str = Field(description="Stable per (message, labeller).")
    message_id: str
    source: Source
    text: str
    labeller: str
    sentiment: Sentiment
    risks: list[Risk]
    prediction_correct: bool
    model_version: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: labeling.FeedbackRecord) -> FeedbackOut:
        return cls.model_validate(record.contract().model_dump(exclude={"tenant", "version"}))


class GoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    source: Source
    sentiment: Sentiment
    risks: list[Risk] = Field(default_factory=list, max_length=len(RISK_LABELS))

    _unique = field_validator("risks")(_unique_risks)


class LabellerStatsOut(BaseModel):
    labeller: str
    labels: int
    share: float = Field(description="Of the tenant's labels.")
    agreement_with_others: float | None = Field(
        description="How often the labeller matches the majority of the others; None: no overlap."
    )
    agreement_items: int
    gold_accuracy: float | None
    gold_labels: int
    flags: list[str] = Field(description="Reasons to weight down or leave out the labeller.")


@router.get("/labeling/queue")
async def queue(
    caller: Labeller, request: Request, limit: Annotated[int, Query(ge=1, le=MAX_QUEUE)] = 10
) -> list[QueueItemOut]:
    """Lease up to `limit` of the least confident predictions to the caller (renewing their
    own leases first) for `label_lease_s` seconds; no two labellers get the same item."""
    state = api_state(request)
    items = await labeling.claim_queue(
        state.engine, caller.tenant, caller.name, limit, state.settings.label_lease_s
    )
    return [QueueItemOut.model_validate(asdict(item)) for item in items]


@router.post("/feedback", status_code=201)
async def give_feedback(body: FeedbackIn, caller: Labeller, request: Request) -> FeedbackOut:
    """Record the caller's verdict on a message (replacing an earlier one), then publish it
    on the feedback topic; 503 when Kafka is down (retry: the verdict is kept)."""
    state = api_state(request)
    try:
        record = await labeling.record_feedback(
            state.engine, caller.tenant, caller.name, caller.key_id, body.message_id,
            body.source, body.sentiment, body.risks, bool(body.correct),
        )  # fmt: skip
    except labeling.MessageNotFound:
        raise HTTPException(404, "no such scored message") from None
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_S):
            await _publish(state, record)
    except (KafkaError, OSError, TimeoutError) as exc:
        log.warning("feedback %s kept, not published: %r", record.feedback_id, exc)
        raise HTTPException(
            503,
            "the verdict is saved but could not be published; retry shortly",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from None
    return FeedbackOut.of(record)


async def _publish(state: ApiState, record: labeling.FeedbackRecord) -> None:
    topic = topic_name(state.settings, "feedback")
    ready = (state.settings.kafka_bootstrap, topic)
    if ready not in _topics_ready:
        await ensure_topics(state.settings)
        _topics_ready.add(ready)
    producer = await state.producer()
    value = record.contract().model_dump_json().encode()
    await publish(producer, topic, [(record.message_id.encode(), value)])


@router.get("/feedback")
async def list_feedback(
    caller: Labeller,
    request: Request,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = 100,
) -> list[FeedbackOut]:
    """The tenant's verdicts changed after `since` (exclusive), oldest change first; page
    on with the last one's updated_at. A time without a zone is UTC."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    records = await labeling.feedback_since(api_state(request).engine, caller.tenant, since, limit)
    return [FeedbackOut.of(r) for r in records]


@router.post("/labeling/gold")
async def set_gold(
    body: Annotated[list[GoldIn], Body(min_length=1, max_length=MAX_GOLD_ITEMS)],
    caller: Admin,
    request: Request,
) -> dict[str, int]:
    """Mark messages as gold (their known labels; hidden from labellers, used to measure
    them). All or nothing: 404 naming the unknown messages."""
    items = [labeling.GoldItem(g.message_id, g.source, g.sentiment, tuple(g.risks)) for g in body]
    try:
        count = await labeling.set_gold(api_state(request).engine, caller.tenant, items)
    except labeling.MessageNotFound as exc:
        unknown = [f"{source}/{message_id}" for source, message_id in exc.keys[:20]]
        raise HTTPException(
            404, {"message": "no such scored messages", "unknown": unknown}
        ) from None
    return {"gold": count}


@router.get("/labelers")
async def labelers(caller: Admin, request: Request) -> list[LabellerStatsOut]:
    """Per labeller of the tenant: counts, agreement with the others, gold accuracy and
    flags (the retrain worker reads the same figures)."""
    stats = await labeling.labeller_stats(api_state(request).engine, caller.tenant)
    return [LabellerStatsOut.model_validate(s, from_attributes=True) for s in stats]
