"""The alert rules' state per (tenant, source, subject), as JSON in Postgres.

One read and one write per micro-batch. A subject's messages share a Kafka partition, and a
partition has one owner in the consumer group, so one worker at a time writes a subject.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import connection_errors
from storage.tables import EntityStateRow

Key = tuple[str, str, str]


async def load(engine: AsyncEngine, keys: Collection[Key]) -> dict[Key, dict[str, Any]]:
    """The stored states of these (tenant, source, subject) keys; absent keys have none."""
    if not keys:
        return {}
    row = EntityStateRow
    query = select(row.tenant, row.source, row.subject, row.state).where(
        tuple_(row.tenant, row.source, row.subject).in_(list(keys))
    )
    with connection_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
    return {(tenant, source, subject): state for tenant, source, subject, state in rows}


async def save(engine: AsyncEngine, states: Mapping[Key, dict[str, Any]]) -> None:
    """Insert or replace these states in one transaction."""
    if not states:
        return
    values = [
        {"tenant": key[0], "source": key[1], "subject": key[2], "state": state}
        for key, state in sorted(states.items())  # one lock order for every writer
    ]
    statement = insert(EntityStateRow)
    upsert = statement.on_conflict_do_update(
        index_elements=["tenant", "source", "subject"],
        set_={"state": statement.excluded.state, "updated_at": func.now()},
    )
    with connection_errors():
        async with engine.begin() as conn:
            await conn.execute(upsert, values)
