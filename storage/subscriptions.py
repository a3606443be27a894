"""Subscriptions: a tenant's rules that pick alerts, and the channel they go to.

An empty `sources`, `entities` or `kinds` matches everything. Entities are exact names or
glob patterns (`*`, `?`, `[...]`, case-sensitive, as `fnmatch.fnmatchcase`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import connection_errors
from storage.tables import SubscriptionRow
from tonewatch.contracts import SEVERITIES, Alert


@dataclass(frozen=True)
class Subscription:
    id: str
    tenant: str
    name: str
    sources: tuple[str, ...]
    entities: tuple[str, ...]
    kinds: tuple[str, ...]
    min_severity: str
    channel: str  # "sse" or "webhook"
    url: str | None
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime

    def matches(self, alert: Alert) -> bool:
        return (
            alert.tenant == self.tenant
            and (not self.sources or alert.source in self.sources)
            and (not self.kinds or alert.kind in self.kinds)
            and SEVERITIES.index(alert.severity) >= SEVERITIES.index(self.min_severity)
            and (
                not self.entities
                or (
                    alert.entity is not None
                    and any(fnmatchcase(alert.entity, pattern) for pattern in self.entities)
                )
            )
        )


def subscription(row: Any) -> Subscription:
    """A Subscription from a subscriptions row (mapping or ORM object); secrets stay behind."""
    get = row.__getitem__ if hasattr(row, "__getitem__") else lambda name: getattr(row, name)
    return Subscription(
        id=get("id"), tenant=get("tenant"), name=get("name"), sources=tuple(get("sources")),
        entities=tuple(get("entities")), kinds=tuple(get("kinds")),
        min_severity=get("min_severity"), channel=get("channel"), url=get("url"),
        enabled=get("enabled"), disabled_reason=get("disabled_reason"),
        created_at=get("created_at"), updated_at=get("updated_at"),
    )  # fmt: skip


async def get(engine: AsyncEngine, tenant: str, subscription_id: str) -> Subscription | None:
    """The tenant's subscription, or None (also when it belongs to another tenant)."""
    query = select(SubscriptionRow.__table__).where(
        SubscriptionRow.id == subscription_id, SubscriptionRow.tenant == tenant
    )
    with connection_errors():
        async with engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
    return None if row is None else subscription(row)
