"""Subscriptions: a tenant's rules that pick alerts, and the channel they go to.

An empty `sources`, `entities` or `kinds` matches everything. Entities are exact names or
glob patterns (`*`, `?`, `[...]`, case-sensitive, as `fnmatch.fnmatchcase`).

Webhook secrets are kept in clear in Postgres, because HMAC signing needs the secret
itself (a hash would not do); the API shows a secret once, when it is made or rotated, and
`Subscription` never carries it. A rotation keeps the previous secret signing until
`previous_secret_until` (one previous secret: rotating again drops the older one).
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import connection_errors
from storage.tables import SubscriptionRow
from tonewatch.contracts import SEVERITIES, Alert

# Columns a caller may change with `update`; secrets change only through rotate_secret.
EDITABLE: Final = frozenset({"name", "sources", "entities", "kinds", "min_severity", "url"})
_PUBLIC: Final = tuple(
    c for c in SubscriptionRow.__table__.c if c.name not in {"secret", "previous_secret"}
)


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


@dataclass(frozen=True)
class WebhookTarget:
    """Where an enabled webhook subscription's deliveries go, and the secrets that sign
    them now: the current one, and the previous one during its grace period."""

    subscription_id: str
    url: str
    secrets: tuple[str, ...]


def _mine(tenant: str, subscription_id: str) -> Any:
    return (SubscriptionRow.id == subscription_id) & (SubscriptionRow.tenant == tenant)


async def create(
    engine: AsyncEngine,
    tenant: str,
    *,
    name: str,
    sources: Sequence[str],
    entities: Sequence[str],
    kinds: Sequence[str],
    min_severity: str,
    channel: str,
    url: str | None = None,
    secret: str | None = None,
) -> Subscription:
    """Store a new subscription (a webhook one with its signing secret)."""
    now = datetime.now(UTC)
    values = {
        "id": f"sub_{secrets.token_hex(8)}", "tenant": tenant, "name": name,
        "sources": list(sources), "entities": list(entities), "kinds": list(kinds),
        "min_severity": min_severity, "channel": channel, "url": url, "secret": secret,
        "enabled": True, "disabled_reason": None, "created_at": now, "updated_at": now,
    }  # fmt: skip
    query = insert(SubscriptionRow).values(**values).returning(*_PUBLIC)
    with connection_errors():
        async with engine.begin() as conn:
            row = (await conn.execute(query)).mappings().one()
    return subscription(row)


async def listed(engine: AsyncEngine, tenant: str) -> list[Subscription]:
    """The tenant's subscriptions, oldest first."""
    query = (
        select(*_PUBLIC)
        .where(SubscriptionRow.tenant == tenant)
        .order_by(SubscriptionRow.created_at, SubscriptionRow.id)
    )
    with connection_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
    return [subscription(row) for row in rows]


async def update(
    engine: AsyncEngine,
    tenant: str,
    subscription_id: str,
    changes: Mapping[str, Any],
    *,
    enabled: bool | None = None,
) -> Subscription | None:
    """Change EDITABLE fields, and enable (clearing the reason) or disable it; None if the
    tenant has no such subscription."""
    unknown = set(changes) - EDITABLE
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    values: dict[str, Any] = {k: list(v) if isinstance(v, list | tuple) else v
                              for k, v in changes.items()}  # fmt: skip
    if enabled is not None:
        values |= {
            "enabled": enabled,
            "disabled_reason": None if enabled else "disabled through the API",
        }
    values["updated_at"] = datetime.now(UTC)
    query = (
        sa.update(SubscriptionRow)
        .where(_mine(tenant, subscription_id))
        .values(**values)
        .returning(*_PUBLIC)
    )
    with connection_errors():
        async with engine.begin() as conn:
            row = (await conn.execute(query)).mappings().first()
    return None if row is None else subscription(row)


async def delete(engine: AsyncEngine, tenant: str, subscription_id: str) -> bool:
    """Delete it and its deliveries; False if the tenant has no such subscription."""
    query = sa.delete(SubscriptionRow).where(_mine(tenant, subscription_id))
    with connection_errors():
        async with engine.begin() as conn:
            return (await conn.execute(query)).rowcount == 1


async def rotate_secret(
    engine: AsyncEngine, tenant: str, subscription_id: str, new_secret: str, grace_s: int
) -> datetime | None:
    """Make `new_secret` current; the old one keeps signing for `grace_s` seconds. Returns
    the end of the grace period, or None if the tenant has no such webhook subscription."""
    until = datetime.now(UTC) + timedelta(seconds=grace_s)
    query = (
        sa.update(SubscriptionRow)
        .where(_mine(tenant, subscription_id), SubscriptionRow.channel == "webhook")
        .values(
            previous_secret=SubscriptionRow.secret,
            previous_secret_until=until,
            secret=new_secret,
            updated_at=datetime.now(UTC),
        )
    )
    with connection_errors():
        async with engine.begin() as conn:
            rotated = (await conn.execute(query)).rowcount == 1
    return until if rotated else None


async def disable(engine: AsyncEngine, subscription_id: str, reason: str) -> None:
    """Stop a subscription (its pending deliveries wait until it is enabled again)."""
    query = (
        sa.update(SubscriptionRow)
        .where(SubscriptionRow.id == subscription_id)
        .values(enabled=False, disabled_reason=reason, updated_at=datetime.now(UTC))
    )
    with connection_errors():
        async with engine.begin() as conn:
            await conn.execute(query)


async def webhooks(engine: AsyncEngine, tenants: Collection[str]) -> list[Subscription]:
    """The enabled webhook subscriptions of these tenants (what an alert fans out to)."""
    if not tenants:
        return []
    query = select(*_PUBLIC).where(
        SubscriptionRow.tenant.in_(sorted(tenants)),
        SubscriptionRow.channel == "webhook",
        SubscriptionRow.enabled.is_(True),
    )
    with connection_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
    return [subscription(row) for row in rows]


async def webhook_target(engine: AsyncEngine, subscription_id: str) -> WebhookTarget | None:
    """URL and signing secrets of an enabled webhook subscription; None if it is gone,
    disabled or not a webhook. The grace period is judged by Postgres' clock."""
    in_grace = SubscriptionRow.previous_secret_until > func.now()
    query = select(
        SubscriptionRow.url,
        SubscriptionRow.secret,
        SubscriptionRow.previous_secret,
        in_grace.label("in_grace"),
    ).where(
        SubscriptionRow.id == subscription_id,
        SubscriptionRow.channel == "webhook",
        SubscriptionRow.enabled.is_(True),
    )
    with connection_errors():
        async with engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
    if row is None or not row["url"] or not row["secret"]:
        return None
    signing = [row["secret"]]
    if row["in_grace"] and row["previous_secret"]:
        signing.append(row["previous_secret"])
    return WebhookTarget(subscription_id, row["url"], tuple(signing))
