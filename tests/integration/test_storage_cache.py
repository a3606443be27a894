"""storage.cache against the real Redis: idempotent pushes, caps, live channel, rebuilds."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio.client import PubSub

from storage.cache import (
    AlertCache,
    cooldown_key,
    entity_key,
    live_channel,
    seen_key,
    tenant_key,
)
from storage.exceptions import CacheUnavailable
from tests.integration.storage_fixtures import CLOSED_PORT_REDIS, alert, new_tenant
from tonewatch.config import Settings
from tonewatch.contracts import Alert

pytestmark = pytest.mark.integration


@pytest.fixture
def tenant() -> str:
    return new_tenant()


@pytest_asyncio.fixture(loop_scope="function")
async def cache(settings: Settings, tenant: str) -> AsyncIterator[AlertCache]:
    cache = AlertCache.from_settings(settings.model_copy(update={"alert_cooldown_s": 60}))
    yield cache
    # Leave nothing behind: the tenant's keys, and the seen marks of its alerts.
    async for key in cache.client.scan_iter(f"tw:{tenant}:*"):
        await cache.client.delete(key)
    async for key in cache.client.scan_iter(f"tw:seen:{tenant}:*"):
        await cache.client.delete(key)
    await cache.close()


def small(cache: AlertCache, *, recent_cap: int = 3, cooldown_s: int = 60) -> AlertCache:
    """The same client with other limits."""
    return AlertCache(cache.client, recent_cap=recent_cap, cooldown_s=cooldown_s)


async def test_push_is_idempotent_and_newest_first(cache: AlertCache, tenant: str) -> None:
    a, b, c = (alert(tenant, n) for n in range(3))
    assert await cache.push([b, a]) == 2
    assert await cache.push([a, b]) == 0
    assert await cache.push([c, c]) == 1
    assert await cache.push([]) == 0

    assert await cache.recent(tenant) == [c, b, a]
    assert await cache.recent(tenant, source="news", entity="acme") == [c, b, a]
    assert await cache.recent(tenant, limit=2) == [c, b]
    assert await cache.client.exists(seen_key(a.dedup_key)) == 1


async def test_lists_are_capped(cache: AlertCache, tenant: str) -> None:
    capped = small(cache, recent_cap=3)
    alerts = [alert(tenant, n) for n in range(5)]
    assert await capped.push(alerts[:2]) == 2
    assert await capped.push(alerts[2:]) == 3

    newest = [alerts[4], alerts[3], alerts[2]]
    assert await capped.recent(tenant, limit=None) == newest
    assert await capped.client.llen(tenant_key(tenant)) == 3
    assert await capped.client.llen(entity_key(tenant, "news", "acme")) == 3


async def test_recent_filters_by_source_or_entity(cache: AlertCache, tenant: str) -> None:
    news = alert(tenant, 1)
    review = alert(tenant, 2, source="reviews", entity="kettle-9")
    other = alert(tenant, 3, source="reviews", entity="acme")
    sourceless = alert(tenant, 4, kind="volume_spike", entity=None)
    await cache.push([news, review, other, sourceless])

    assert await cache.recent(tenant, source="reviews") == [other, review]
    assert await cache.recent(tenant, entity="acme") == [other, news]
    assert await cache.recent(tenant, entity="acme", limit=1) == [other]
    assert await cache.recent(tenant, source="reviews", entity="kettle-9") == [review]
    assert await cache.client.lrange(entity_key(tenant, "news", None), 0, -1) == [
        sourceless.model_dump_json().encode()
    ]
    assert await cache.recent(new_tenant()) == []


async def test_new_alerts_are_published_once(cache: AlertCache, tenant: str) -> None:
    first = alert(tenant, 1)
    async with _subscribed(cache, tenant) as pubsub:
        await cache.push([first])
        await cache.push([first])
        message = await _next(pubsub, wait_s=2)
        assert message is not None
        assert Alert.model_validate_json(message["data"]) == first
        assert await _next(pubsub, wait_s=0.3) is None


@asynccontextmanager
async def _subscribed(cache: AlertCache, tenant: str) -> AsyncIterator[PubSub]:
    """A subscription to the tenant's live channel, confirmed."""
    pubsub = cache.client.pubsub()
    try:
        await pubsub.subscribe(live_channel(tenant))
        assert await pubsub.get_message(timeout=2) is not None  # the confirmation
        yield pubsub
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def _next(pubsub: PubSub, wait_s: float) -> dict[str, Any] | None:
    """The next message on the subscription, or None after `wait_s` seconds."""
    message: dict[str, Any] | None = await pubsub.get_message(timeout=wait_s)
    return message


async def test_push_starts_the_cooldown(cache: AlertCache, tenant: str) -> None:
    first = alert(tenant, 1, kind="message_risk")
    await cache.push([first])
    key = cooldown_key(tenant, "news", "acme", "message_risk")
    assert 55 <= await cache.client.ttl(key) <= 60
    assert await cache.client.get(key) == first.dedup_key.encode()

    await small(cache, cooldown_s=0).push([alert(tenant, 2, kind="escalation")])
    assert await cache.client.exists(cooldown_key(tenant, "news", "acme", "escalation")) == 0


async def test_rebuild_replaces_the_lists(cache: AlertCache, tenant: str) -> None:
    stale = [alert(tenant, n) for n in range(3)]
    await cache.push(stale)
    record = [alert(tenant, 12, source="reviews", entity="kettle-9"), alert(tenant, 11)]
    async with _subscribed(cache, tenant) as pubsub:
        await cache.rebuild(tenant, record)
        assert await _next(pubsub, wait_s=0.3) is None

    assert await cache.recent(tenant) == record
    assert await cache.recent(tenant, source="news", entity="acme") == [record[1]]
    assert await cache.recent(tenant, source="reviews", entity="kettle-9") == [record[0]]
    assert await cache.push(record) == 0  # marked seen
    await cache.rebuild(tenant, [])
    assert await cache.recent(tenant) == []


async def test_rebuild_keeps_the_cap(cache: AlertCache, tenant: str) -> None:
    capped = small(cache, recent_cap=2)
    await capped.rebuild(tenant, [alert(tenant, n) for n in (9, 8, 7)])
    assert [a.dedup_key for a in await capped.recent(tenant, limit=None)] == [
        alert(tenant, 9).dedup_key,
        alert(tenant, 8).dedup_key,
    ]


async def test_a_dead_redis_fails_fast(settings: Settings) -> None:
    dead = AlertCache.from_settings(settings.model_copy(update={"redis_url": CLOSED_PORT_REDIS}))
    tenant = new_tenant()
    began = time.monotonic()
    try:
        assert await dead.ping() is False
        with pytest.raises(CacheUnavailable) as caught:
            await dead.push([alert(tenant, 1)])
        assert caught.value.__cause__ is not None
        with pytest.raises(CacheUnavailable):
            await dead.recent(tenant)
        with pytest.raises(CacheUnavailable):
            await dead.rebuild(tenant, [alert(tenant, 1)])
    finally:
        await dead.close()
    assert time.monotonic() - began < 5


async def test_ping(cache: AlertCache) -> None:
    assert await cache.ping() is True
