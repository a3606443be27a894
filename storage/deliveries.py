"""Webhook deliveries in Postgres: one row per (subscription, event), worked off by the
webhook workers.

- **Idempotent fan-out**: (subscription_id, event_id) is unique, so an alert fanned out
  twice (a re-published alert, a consumer redelivery) is one delivery.
- **Claims**: a worker takes due rows with `FOR UPDATE SKIP LOCKED` and, in the same
  transaction, pushes their `next_attempt_at` forward by a lease. Two workers never take
  the same row at once, and a row whose worker died comes due again when the lease ends
  (at-least-once: receivers deduplicate on the event id). Only rows of enabled
  subscriptions are claimed: a disabled subscription's deliveries wait for it.
- **States**: `pending` -> `delivered` | `dead` (attempts spent, or the target refused) |
  `gone` (the receiver answered 410); `redeliver` puts a dead or gone row back to pending.
  Time is Postgres' clock throughout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal, get_args

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import connection_errors
from storage.tables import DeliveryRow, SubscriptionRow

Status = Literal["pending", "delivered", "dead", "gone"]
STATUSES: Final[tuple[Status, ...]] = get_args(Status)
MAX_ERROR_CHARS: Final = 500

_COLUMNS: Final = tuple(DeliveryRow.__table__.c)


@dataclass(frozen=True)
class Delivery:
    id: int
    subscription_id: str
    tenant: str
    event_id: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True)
class NewDelivery:
    subscription_id: str
    tenant: str
    event_id: str
    payload: dict[str, Any]


def _delivery(row: Any) -> Delivery:
    return Delivery(**{c.name: row[c.name] for c in _COLUMNS})


async def create(engine: AsyncEngine, new: Sequence[NewDelivery]) -> int:
    """Queue deliveries, due now; those already queued are left alone. Returns how many
    were new."""
    if not new:
        return 0
    rows = sorted(
        (
            {"subscription_id": d.subscription_id, "tenant": d.tenant,
             "event_id": d.event_id, "payload": d.payload}
            for d in new
        ),
        key=lambda row: (row["subscription_id"], row["event_id"]),
    )  # fmt: skip
    query = (
        insert(DeliveryRow)
        .on_conflict_do_nothing(index_elements=["subscription_id", "event_id"])
        .returning(DeliveryRow.id)
    )
    with connection_errors():
        async with engine.begin() as conn:
            return len((await conn.execute(query, rows)).all())


async def claim(engine: AsyncEngine, limit: int, lease_s: float) -> list[Delivery]:
    """Take up to `limit` due deliveries of enabled subscriptions for `lease_s` seconds."""
    due = (
        sa.select(DeliveryRow.id)
        .join(SubscriptionRow, SubscriptionRow.id == DeliveryRow.subscription_id)
        .where(
            DeliveryRow.status == "pending",
            DeliveryRow.next_attempt_at <= sa.func.now(),
            SubscriptionRow.enabled.is_(True),
        )
        .order_by(DeliveryRow.next_attempt_at)
        .limit(limit)
        .with_for_update(of=DeliveryRow, skip_locked=True)
    )
    query = (
        sa.update(DeliveryRow)
        .where(DeliveryRow.id.in_(due.scalar_subquery()))
        .values(next_attempt_at=sa.func.now() + timedelta(seconds=lease_s))
        .returning(*_COLUMNS)
    )
    with connection_errors():
        async with engine.begin() as conn:
            rows = (await conn.execute(query)).mappings().all()
    return sorted((_delivery(row) for row in rows), key=lambda d: d.id)


async def _finish(engine: AsyncEngine, delivery_id: int, **values: Any) -> bool:
    if values.get("last_error"):
        values["last_error"] = values["last_error"][:MAX_ERROR_CHARS]
    query = (
        sa.update(DeliveryRow)
        .where(DeliveryRow.id == delivery_id, DeliveryRow.status == "pending")
        .values({"attempts": DeliveryRow.attempts + 1} | values)
    )
    with connection_errors():
        async with engine.begin() as conn:
            return (await conn.execute(query)).rowcount == 1


async def mark_delivered(engine: AsyncEngine, delivery_id: int, status_code: int) -> bool:
    """The receiver answered 2xx. False if the row was no longer pending."""
    return await _finish(
        engine, delivery_id, status="delivered", last_status_code=status_code,
        last_error=None, delivered_at=sa.func.now(),
    )  # fmt: skip


async def retry_later(
    engine: AsyncEngine, delivery_id: int, delay_s: float, status_code: int | None, error: str
) -> bool:
    """A failed attempt: try again in `delay_s` seconds."""
    return await _finish(
        engine, delivery_id, last_status_code=status_code, last_error=error,
        next_attempt_at=sa.func.now() + timedelta(seconds=delay_s),
    )  # fmt: skip


async def mark_dead(
    engine: AsyncEngine,
    delivery_id: int,
    status_code: int | None,
    error: str,
    *,
    attempted: bool = True,
) -> bool:
    """No more attempts: spent, or a target refused before connecting (`attempted` False:
    the attempt count stays as it was)."""
    values: dict[str, Any] = {"status": "dead", "last_status_code": status_code,
                              "last_error": error}  # fmt: skip
    if not attempted:
        values["attempts"] = DeliveryRow.attempts
    return await _finish(engine, delivery_id, **values)


async def mark_gone(engine: AsyncEngine, delivery_id: int, status_code: int) -> bool:
    """The receiver answered 410 Gone."""
    return await _finish(
        engine, delivery_id, status="gone", last_status_code=status_code,
        last_error="receiver answered 410 Gone",
    )  # fmt: skip


async def listed(
    engine: AsyncEngine,
    tenant: str,
    subscription_id: str,
    status: str | None = None,
    limit: int = 100,
) -> list[Delivery]:
    """A subscription's deliveries, newest first; one status's when given."""
    query = sa.select(*_COLUMNS).where(
        DeliveryRow.tenant == tenant, DeliveryRow.subscription_id == subscription_id
    )
    if status is not None:
        query = query.where(DeliveryRow.status == status)
    query = query.order_by(DeliveryRow.id.desc()).limit(limit)
    with connection_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
    return [_delivery(row) for row in rows]


async def get(
    engine: AsyncEngine, tenant: str, subscription_id: str, delivery_id: int
) -> Delivery | None:
    query = sa.select(*_COLUMNS).where(
        DeliveryRow.id == delivery_id,
        DeliveryRow.tenant == tenant,
        DeliveryRow.subscription_id == subscription_id,
    )
    with connection_errors():
        async with engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
    return None if row is None else _delivery(row)


async def redeliver(
    engine: AsyncEngine, tenant: str, subscription_id: str, delivery_id: int
) -> Delivery | None:
    """Put a dead or gone delivery back in the queue, due now, with fresh attempts. None if
    there is no such delivery in that state."""
    query = (
        sa.update(DeliveryRow)
        .where(
            DeliveryRow.id == delivery_id,
            DeliveryRow.tenant == tenant,
            DeliveryRow.subscription_id == subscription_id,
            DeliveryRow.status.in_(("dead", "gone")),
        )
        .values(status="pending", attempts=0, next_attempt_at=sa.func.now())
        .returning(*_COLUMNS)
    )
    with connection_errors():
        async with engine.begin() as conn:
            row = (await conn.execute(query)).mappings().first()
    return None if row is None else _delivery(row)


async def pending_count(engine: AsyncEngine) -> int:
    """Deliveries not yet delivered, dead or gone (all tenants)."""
    query = sa.select(sa.func.count()).where(DeliveryRow.status == "pending")
    with connection_errors():
        async with engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())
