"""Alerts in Postgres, the record: recorded once per dedup key, read newest first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import commit_time, connection_errors
from storage.tables import AlertRow
from tonewatch.contracts import SEVERITIES, Alert

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


async def committed_at(engine: AsyncEngine, tenant: str) -> dict[str, datetime]:
    """When each of a tenant's alerts was committed (dedup key -> time); for benchmarks."""
    query = select(AlertRow.dedup_key, commit_time(AlertRow.__tablename__)).where(
        AlertRow.tenant == tenant
    )
    with connection_errors():
        async with engine.connect() as conn:
            return {key: at for key, at in (await conn.execute(query)).all()}


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


@dataclass(frozen=True)
class AlertFilter:
    """What a history query or a live stream keeps; None means any."""

    source: str | None = None
    entity: str | None = None
    kind: str | None = None
    min_severity: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def where(self) -> list[sa.ColumnElement[bool]]:
        clauses: list[sa.ColumnElement[bool]] = []
        if self.source is not None:
            clauses.append(AlertRow.source == self.source)
        if self.entity is not None:
            clauses.append(AlertRow.entity == self.entity)
        if self.kind is not None:
            clauses.append(AlertRow.kind == self.kind)
        if self.min_severity is not None:
            at_least = SEVERITIES[SEVERITIES.index(self.min_severity) :]
            clauses.append(AlertRow.severity.in_(at_least))
        if self.since is not None:
            clauses.append(AlertRow.created_at >= self.since)
        if self.until is not None:
            clauses.append(AlertRow.created_at < self.until)
        return clauses

    def keeps(self, alert: Alert) -> bool:
        """The same test in Python, for alerts already read (the live stream)."""
        return (
            (self.source is None or alert.source == self.source)
            and (self.entity is None or alert.entity == self.entity)
            and (self.kind is None or alert.kind == self.kind)
            and (
                self.min_severity is None
                or SEVERITIES.index(alert.severity) >= SEVERITIES.index(self.min_severity)
            )
            and (self.since is None or alert.created_at >= self.since)
            and (self.until is None or alert.created_at < self.until)
        )


# Keyset position of a row in "newest first" order.
Position = tuple[datetime, int]


async def page(
    engine: AsyncEngine,
    tenant: str,
    where: AlertFilter,
    limit: int,
    before: Position | None = None,
) -> list[tuple[Position, Alert]]:
    """One page of history, newest first, strictly after `before` in that order."""
    query = (
        select(AlertRow.created_at, AlertRow.id, *(getattr(AlertRow, n) for n in _FIELDS))
        .where(AlertRow.tenant == tenant, *where.where())
        .order_by(AlertRow.created_at.desc(), AlertRow.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(sa.tuple_(AlertRow.created_at, AlertRow.id) < sa.tuple_(*before))
    with connection_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
    return [((row[0], row[1]), _alert(row[2:])) for row in rows]


async def after_id(
    engine: AsyncEngine, tenant: str, after: int, limit: int = 500
) -> list[tuple[int, Alert]]:
    """The tenant's alerts recorded with a row id above `after`, oldest first (the live
    stream's catch-up; ids follow insertion)."""
    query = (
        select(AlertRow.id, *(getattr(AlertRow, n) for n in _FIELDS))
        .where(AlertRow.tenant == tenant, AlertRow.id > after)
        .order_by(AlertRow.id)
        .limit(limit)
    )
    with connection_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
    return [(row[0], _alert(row[1:])) for row in rows]


async def last_id(engine: AsyncEngine, tenant: str) -> int:
    """The newest row id of the tenant's alerts (0 when none)."""
    query = select(sa.func.coalesce(sa.func.max(AlertRow.id), 0)).where(AlertRow.tenant == tenant)
    with connection_errors():
        async with engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())


def _alert(values: Sequence[Any]) -> Alert:
    return Alert.model_validate(dict(zip(_FIELDS, values, strict=True)))
