"""Scored messages in Postgres: a message row per (tenant, source, message id), and its
predictions, one per model version."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Row, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import commit_time, connection_errors
from storage.tables import Message, Prediction
from tonewatch.contracts import InputMessage, Origin, ScoredMessage

Key = tuple[str, str, str]

_MESSAGE_COLUMNS = (
    Message.tenant,
    Message.source,
    Message.message_id,
    Message.entity,
    Message.conversation_id,
    Message.speaker,
    Message.turn,
    Message.text,
    Message.ts,
    Message.meta,
    Message.origin_topic,
    Message.origin_partition,
    Message.origin_offset,
)


async def find(engine: AsyncEngine, keys: Collection[Key]) -> dict[Key, ScoredMessage]:
    """The messages stored under these (tenant, source, message id) keys, each as it was
    received, with its newest prediction."""
    if not keys:
        return {}
    newest = (
        select(
            Prediction.sentiment,
            Prediction.scores,
            Prediction.risks,
            Prediction.model_version,
            Prediction.scored_at,
        )
        .where(Prediction.message_pk == Message.id)
        .order_by(Prediction.scored_at.desc(), Prediction.id.desc())
        .limit(1)
        .lateral()
    )
    query = select(*_MESSAGE_COLUMNS, newest).join(newest, sa.true()).where(_key_in(keys))
    with connection_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
    return {scored.message.key: scored for scored in map(_scored, rows)}


async def stored_at(engine: AsyncEngine, tenant: str) -> dict[str, datetime]:
    """When each of a tenant's messages was committed (message id -> time); for benchmarks."""
    query = select(Message.message_id, commit_time(Message.__tablename__)).where(
        Message.tenant == tenant
    )
    with connection_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
    return {message_id: at for message_id, at in rows}


async def record(engine: AsyncEngine, scored: Sequence[ScoredMessage]) -> int:
    """Store the messages and their predictions in one transaction; returns how many
    messages were new.

    Idempotent: a message already stored keeps its row. A prediction is added only for the
    text that was stored under that key, at most one per model version.
    """
    if not scored:
        return 0
    # One order for every writer, so that concurrent batches cannot deadlock on the keys.
    ordered = sorted(scored, key=lambda s: (s.message.key, s.model_version))
    new_messages = (
        insert(Message)
        .on_conflict_do_nothing(index_elements=["tenant", "source", "message_id"])
        .returning(Message.id)
    )
    stored = select(
        Message.id, Message.tenant, Message.source, Message.message_id, Message.text_sha256
    ).where(_key_in({s.message.key for s in ordered}))
    with connection_errors():
        async with engine.begin() as conn:
            inserted = (await conn.execute(new_messages, [_message_row(s) for s in ordered])).all()
            found = await conn.execute(stored)
            pks = {(r.tenant, r.source, r.message_id, r.text_sha256): r.id for r in found}
            predictions = [
                _prediction_row(s, pk)
                for s in ordered
                if (pk := pks.get((*s.message.key, s.message.text_sha256))) is not None
            ]
            if predictions:
                await conn.execute(
                    insert(Prediction).on_conflict_do_nothing(
                        index_elements=["message_pk", "model_version"]
                    ),
                    predictions,
                )
    return len(inserted)


def _key_in(keys: Collection[Key]) -> sa.ColumnElement[bool]:
    return tuple_(Message.tenant, Message.source, Message.message_id).in_(list(keys))


def _message_row(scored: ScoredMessage) -> dict[str, Any]:
    message, origin = scored.message, scored.origin
    return {
        "tenant": message.tenant,
        "source": message.source,
        "message_id": message.id,
        "entity": message.entity,
        "conversation_id": message.conversation_id,
        "speaker": message.speaker,
        "turn": message.turn,
        "text": message.text,
        "text_sha256": message.text_sha256,
        "ts": message.ts,
        "meta": message.meta,
        "origin_topic": origin.topic,
        "origin_partition": origin.partition,
        "origin_offset": origin.offset,
    }


def _prediction_row(scored: ScoredMessage, message_pk: int) -> dict[str, Any]:
    return {
        "message_pk": message_pk,
        "sentiment": scored.sentiment,
        "scores": scored.scores,
        "risks": scored.risks,
        "model_version": scored.model_version,
        "scored_at": scored.scored_at,
    }


def _scored(row: Row[*tuple[Any, ...]]) -> ScoredMessage:
    return ScoredMessage(
        message=InputMessage(
            id=row.message_id,
            source=row.source,
            text=row.text,
            tenant=row.tenant,
            entity=row.entity,
            ts=row.ts,
            meta=row.meta,
            conversation_id=row.conversation_id,
            speaker=row.speaker,
            turn=row.turn,
        ),
        origin=Origin(
            topic=row.origin_topic, partition=row.origin_partition, offset=row.origin_offset
        ),
        sentiment=row.sentiment,
        scores=row.scores,
        risks=row.risks,
        model_version=row.model_version,
        scored_at=row.scored_at,
    )
