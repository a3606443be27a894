"""Where alerts go: Postgres first (the record), then Redis (the live feed), then Kafka.

Every step is idempotent on the alert's dedup key, so the same alert emitted twice (after a
crash, a rebalance or a re-sent message) is one row, one list entry and one live event.
Postgres and Kafka outages are waited out (backpressure). A Redis outage is not: Redis is a
cache, so alerts keep reaching Postgres, and the Redis lists are rebuilt from Postgres once
Redis answers again (`refill`, run on a timer).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import alerts as alert_store
from storage.cache import AlertCache
from storage.exceptions import CacheUnavailable, DatabaseUnavailable
from streams import metrics
from streams.retry import until_done
from streams.topics import Producer, publish
from tonewatch.contracts import Alert

log = logging.getLogger(__name__)

REBUILD_DAYS = 30


class AlertSink:
    def __init__(
        self,
        topic: str,
        producer: Producer,
        engine: AsyncEngine,
        cache: AlertCache,
        recent_cap: int,
    ) -> None:
        self.topic = topic
        self.producer = producer
        self.engine = engine
        self.cache = cache
        self.recent_cap = recent_cap
        self.stale_since: datetime | None = None
        self.redis_run_id: str | None = None
        # Refill reads Postgres then rewrites the lists; pushes wait, so none is overwritten.
        self._cache_lock = asyncio.Lock()

    async def emit(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Record, cache and publish the alerts; returns those that were new in Postgres."""
        if not alerts:
            return []
        new = await until_done(
            lambda: alert_store.record(self.engine, alerts),
            what="Postgres alerts",
            retry_on=(DatabaseUnavailable,),
        )
        for alert in new:
            metrics.ALERTS.labels(alert.kind).inc()
            log.info("alert %s [%s] %s", alert.kind, alert.severity, alert.summary)
        await self._cache(alerts)
        await until_done(
            lambda: publish(
                self.producer,
                self.topic,
                [(a.dedup_key.encode(), a.model_dump_json().encode()) for a in alerts],
            ),
            what="alerts topic",
            retry_on=(KafkaError,),
        )
        return new

    async def refill(self) -> bool:
        """If Redis missed alerts, rebuild its lists from Postgres once it answers.

        Returns True when the cache is (again) in step with Postgres.
        """
        await self._notice_restart()
        if self.stale_since is None:
            return True
        if not await self.cache.ping():
            return False
        async with self._cache_lock:
            since = self.stale_since - timedelta(seconds=5)
            try:
                tenants = await alert_store.tenants_since(self.engine, since)
                for tenant in tenants:
                    recent = await alert_store.recent(self.engine, tenant, limit=self.recent_cap)
                    await self.cache.rebuild(tenant, recent)
            except (CacheUnavailable, DatabaseUnavailable) as exc:
                log.warning("refilling Redis failed (%s); will try again", exc)
                return False
            log.warning(
                "Redis is back: rebuilt the recent alerts of %d tenants from Postgres", len(tenants)
            )
            self.stale_since = None
            metrics.CACHE_STALE.set(0)
            return True

    async def _notice_restart(self) -> None:
        """A Redis that restarted empty between two writes missed no write of ours, yet lost
        every list: rebuild the lists of every tenant with alerts in the last REBUILD_DAYS."""
        run_id = await self.cache.run_id()
        if run_id is None:
            return
        if self.redis_run_id is not None and run_id != self.redis_run_id:
            log.warning("Redis restarted (run id %s -> %s); rebuilding its lists",
                        self.redis_run_id, run_id)  # fmt: skip
            self.stale_since = datetime.now(UTC) - timedelta(days=REBUILD_DAYS)
            metrics.CACHE_STALE.set(1)
        self.redis_run_id = run_id

    async def _cache(self, alerts: Sequence[Alert]) -> None:
        async with self._cache_lock:
            if self.stale_since is not None:
                return  # Redis is down or behind: the refill brings it up to date
            try:
                await self.cache.push(alerts)
            except CacheUnavailable as exc:
                log.warning(
                    "Redis unavailable (%s): alerts go to Postgres only until it returns", exc
                )
                self.stale_since = datetime.now(UTC)
                metrics.CACHE_STALE.set(1)
