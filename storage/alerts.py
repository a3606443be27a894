"""Alerts in Postgres, the record: recorded once per dedup key, read newest first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import connection_errors
from storage.tables import AlertRow
from tonewatch.contracts import Alert

# Alert fields and AlertRow columns share their names.
_FIELDS = tuple(Alert.model_fields)


async def record(engine: AsyncEngine, alerts: Sequence[Alert]) -> list[Alert]:
    """Store the alerts; returns those that were new, in the order given (a copy of an
    alert already recorded, or repeated in `alerts`, is left out)."""
    if not alerts:
        return []
    # One order for every writer, so that concurrent batches cannot deadlock on the keys.
    rows = sorted((_row(a) for a in alerts), key=lambda row: str(row["dedup_key"]))
    query = (
        insert(AlertRow)
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(AlertRow.dedup_key)
    )
    with connection_errors():
        async with engine.begin() as conn:
            new = set((await conn.execute(query, rows)).scalars())
    fresh = []
    for alert in alerts:
        if alert.dedup_key in new:
            new.discard(alert.dedup_key)
            fresh.append(alert)
    return fresh


async def recent(
    engine: AsyncEngine,
    tenant: str,
    *,
    source: str | None = None,
    entity: str | None = None,
    limit: int | None = 100,
) -> list[Alert]:
    """The tenant's alerts, newest first; optionally only one source's and/or entity's."""
    query = select(*(getattr(AlertRow, name) for name in _FIELDS)).where(AlertRow.tenant == tenant)
    if source is not None:
        query = query.where(AlertRow.source == source)
    if entity is not None:
        query = query.where(AlertRow.entity == entity)
    query = query.order_by(AlertRow.created_at.desc(), AlertRow.id.desc()).limit(limit)
    with connection_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
    return [Alert.model_validate(dict(row)) for row in rows]


async def tenants_since(engine: AsyncEngine, since: datetime) -> list[str]:
    """The tenants with an alert created at or after `since`, sorted."""
    query = (
        select(AlertRow.tenant)
        .where(AlertRow.created_at >= since)
        .distinct()
        .order_by(AlertRow.tenant)
    )
    with connection_errors():
        async with engine.connect() as conn:
            return list((await conn.execute(query)).scalars())


def _row(alert: Alert) -> dict[str, Any]:
    return alert.model_dump(mode="python")
