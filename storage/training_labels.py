"""The retrain worker's label store in Postgres (`training_labels`): the newest version of
each feedback record read from the `feedback` topic, and the gold answers the API keeps.

The topic is consumed at least once and a labeller may change their mind, so a record is
keyed by its feedback id and only a newer `updated_at` replaces the stored one: replaying
the topic, or reading an older version after a newer one, changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import connection_errors
from storage.tables import GoldLabelRow, Message, TrainingLabelRow
from tonewatch.contracts import Feedback, Risk, Sentiment, Source

MessageKey = tuple[str, str, str]  # (tenant, source, message id)


@dataclass(frozen=True)
class TrainingLabel:
    """One labeller's newest verdict on one message, as stored."""

    feedback_id: str
    tenant: str
    source: Source
    message_id: str
    text: str
    labeller: str
    sentiment: Sentiment
    risks: tuple[Risk, ...]
    prediction_correct: bool
    model_version: str | None
    updated_at: datetime
    received_at: datetime  # when the store got this version of the record

    @property
    def key(self) -> MessageKey:
        return (self.tenant, self.source, self.message_id)


@dataclass(frozen=True)
class GoldAnswer:
    """The known labels of a gold message (set by a tenant's admin through the API)."""

    sentiment: Sentiment
    risks: tuple[Risk, ...]


async def upsert(engine: AsyncEngine, records: Sequence[Feedback]) -> int:
    """Store the records; returns how many rows were inserted or changed.

    A record replaces the stored one only when its `updated_at` is newer, so a redelivered
    record counts 0 and an older one never overwrites a newer one. `received_at` moves
    with each change: a changed verdict is a new label for the retrain trigger.
    """
    newest: dict[str, Feedback] = {}
    for record in records:
        # One row per feedback id per statement: ON CONFLICT cannot touch a row twice.
        held = newest.get(record.feedback_id)
        if held is None or record.updated_at > held.updated_at:
            newest[record.feedback_id] = record
    if not newest:
        return 0
    # Key order for every writer, so that concurrent batches cannot deadlock.
    rows = [_row(newest[feedback_id]) for feedback_id in sorted(newest)]
    new = insert(TrainingLabelRow)
    columns = [c for c in rows[0] if c != "feedback_id"]
    query = new.on_conflict_do_update(
        index_elements=[TrainingLabelRow.feedback_id],
        set_={**{c: new.excluded[c] for c in columns}, "received_at": func.now()},
        where=new.excluded.updated_at > TrainingLabelRow.updated_at,
    ).returning(TrainingLabelRow.feedback_id)
    with connection_errors():
        async with engine.begin() as conn:
            changed = (await conn.execute(query, rows)).all()
    return len(changed)


async def count_since(
    engine: AsyncEngine, since: datetime | None, tenant: str | None = None
) -> int:
    """How many labels were received (or changed) after `since` (all when None), in every
    tenant or in `tenant` only."""
    query = select(func.count()).select_from(TrainingLabelRow)
    if since is not None:
        query = query.where(TrainingLabelRow.received_at > since)
    if tenant is not None:
        query = query.where(TrainingLabelRow.tenant == tenant)
    with connection_errors():
        async with engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())


async def load(engine: AsyncEngine, tenant: str | None = None) -> list[TrainingLabel]:
    """Every stored label (of `tenant` only, when given), oldest change first."""
    query = select(
        TrainingLabelRow.feedback_id, TrainingLabelRow.tenant, TrainingLabelRow.source,
        TrainingLabelRow.message_id, TrainingLabelRow.text, TrainingLabelRow.labeller,
        TrainingLabelRow.sentiment, TrainingLabelRow.risks, TrainingLabelRow.prediction_correct,
        TrainingLabelRow.model_version, TrainingLabelRow.updated_at, TrainingLabelRow.received_at,
    ).order_by(TrainingLabelRow.updated_at, TrainingLabelRow.feedback_id)  # fmt: skip
    if tenant is not None:
        query = query.where(TrainingLabelRow.tenant == tenant)
    with connection_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
    # The columns are named as TrainingLabel's fields; the stored labels were validated
    # against the Feedback contract on the way in.
    return [TrainingLabel(**{**row, "risks": tuple(row["risks"])}) for row in rows]


async def gold(engine: AsyncEngine, tenant: str | None = None) -> dict[MessageKey, GoldAnswer]:
    """The gold answers of the API's `gold_labels`, by (tenant, source, message id)."""
    query = select(
        Message.tenant, Message.source, Message.message_id, GoldLabelRow.sentiment,
        GoldLabelRow.risks,
    ).join(Message, Message.id == GoldLabelRow.message_pk)  # fmt: skip
    if tenant is not None:
        query = query.where(GoldLabelRow.tenant == tenant)
    with connection_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
    return {
        (t, s, m): GoldAnswer(cast(Sentiment, sentiment), tuple(cast(list[Risk], risks)))
        for t, s, m, sentiment, risks in rows
    }


def _row(record: Feedback) -> dict[str, Any]:
    return {
        "feedback_id": record.feedback_id,
        "updated_at": record.updated_at,
        "tenant": record.tenant,
        "source": record.source,
        "message_id": record.message_id,
        "text": record.text,
        "labeller": record.labeller,
        "sentiment": record.sentiment,
        "risks": list(record.risks),
        "prediction_correct": record.prediction_correct,
        "model_version": record.model_version,
    }
