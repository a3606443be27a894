"""Dead letters in Postgres, one per origin (topic, partition, offset), for people and the API."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import connection_errors
from storage.tables import DeadLetterRow
from tonewatch.contracts import DeadLetter, Origin


async def record(engine: AsyncEngine, letters: Sequence[DeadLetter]) -> int:
    """Store the dead letters; returns how many were new (a letter's origin identifies it)."""
    if not letters:
        return 0
    # One order for every writer, so that concurrent batches cannot deadlock on the keys.
    rows = sorted(
        (_row(letter) for letter in letters),
        key=lambda row: (row["topic"], row["partition"], row["offset"]),
    )
    query = (
        insert(DeadLetterRow)
        .on_conflict_do_nothing(index_elements=["topic", "partition", "offset"])
        .returning(DeadLetterRow.id)
    )
    with connection_errors():
        async with engine.begin() as conn:
            return len((await conn.execute(query, rows)).all())


async def recent(engine: AsyncEngine, limit: int | None = 100) -> list[DeadLetter]:
    """The newest dead letters first."""
    query = (
        select(DeadLetterRow.__table__)
        .order_by(DeadLetterRow.received_at.desc(), DeadLetterRow.id.desc())
        .limit(limit)
    )
    with connection_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
    return [_letter(row) for row in rows]


def _row(letter: DeadLetter) -> dict[str, Any]:
    return {
        "reason": _storable(letter.reason),
        "error": _storable(letter.error),
        "topic": letter.origin.topic,
        "partition": letter.origin.partition,
        "offset": letter.origin.offset,
        "key_base64": letter.key_base64,
        "raw": letter.raw,
        "raw_size": letter.raw_size,
        "received_at": letter.received_at,
    }


def _storable(text: str) -> str:
    # An error message may quote the bad input: Postgres text takes neither NUL nor a lone
    # surrogate, and the dead-letter path must not fail on what it is reporting.
    escaped = text.replace("\x00", "\\x00")
    return escaped.encode("utf-8", "backslashreplace").decode("utf-8")


def _letter(row: Row[Any]) -> DeadLetter:
    return DeadLetter(
        reason=row.reason,
        error=row.error,
        origin=Origin(topic=row.topic, partition=row.partition, offset=row.offset),
        key_base64=row.key_base64,
        raw_base64=base64.b64encode(row.raw).decode(),
        raw_size=row.raw_size,
        received_at=row.received_at,
    )
