"""The webhook worker (`tonewatch webhooks worker`): its own process, so that a slow or
dead receiver never holds up the stream. Two loops:

- **Fan-out**: consumes the alerts topic (consumer group `<worker_app_id>-webhooks`,
  auto-commit off) and writes one delivery row per alert and matching enabled webhook
  subscription, then commits. A crash before the commit re-reads the batch, and the rows'
  unique (subscription, event id) makes that a no-op: at-least-once, without duplicates in
  Postgres. A subscription receives the alerts created after it was made (less a minute of
  clock skew): a new consumer group starts at the topic's beginning, and replaying the
  whole history into new subscriptions is not what anyone subscribed for. Subscriptions are
  read once per polled batch, so one made a moment ago is never missed.
- **Delivery**: claims due rows (storage.deliveries.claim, safe with several workers),
  re-checks each URL with the SSRF guard, signs (with the previous secret too during a
  rotation's grace period) and POSTs at most `CONCURRENCY` at once. 2xx: delivered. 410:
  gone, and the subscription is disabled. Anything else (timeout, connection error, 3xx,
  4xx, 5xx): retried after `uniform(0, min(backoff_max_s, backoff_s * 2**attempts))`
  seconds (full jitter) until `webhook_max_attempts`, then dead (listed by the API, which
  can queue it again). A target the guard refuses is dead at once, without a connection.

Delivery is at-least-once (a worker dying mid-POST repeats it after the lease), so
receivers deduplicate on `webhook-id` (tonewatch/webhook_receiver.py shows how). Postgres
and Kafka outages are waited out; neither loop exits on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Final

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from prometheus_client import Counter, Gauge, Histogram
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import deliveries, subscriptions
from storage.db import create_engine
from storage.exceptions import DatabaseUnavailable
from streams.retry import until_done
from streams.topics import topic_name
from streams.webhooks import (
    UnresolvableTarget,
    UnsafeTarget,
    WebhookEvent,
    check_target,
    headers,
    post,
)
from tonewatch.backoff import backoff_s
from tonewatch.config import Settings
from tonewatch.contracts import Alert

CONCURRENCY: Final = 16
POLL_S: Final = 0.5
FETCH_MAX_RECORDS: Final = 500
PENDING_EVERY_S: Final = 5.0
SHUTDOWN_S: Final = 10.0
SUBSCRIPTION_SKEW: Final = timedelta(minutes=1)
GONE_REASON: Final = "receiver answered 410 Gone"

log = logging.getLogger(__name__)

DELIVERIES = Counter(
    "tonewatch_webhook_deliveries_total",
    "Webhook delivery attempts by outcome (delivered, retry, dead, gone, refused).",
    ["outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "tonewatch_webhook_attempt_seconds", "Time of one webhook POST, whatever its outcome."
)
PENDING = Gauge("tonewatch_webhook_pending", "Webhook deliveries waiting to be delivered.")
FANNED_OUT = Counter(
    "tonewatch_webhook_events_total", "Deliveries queued by the fan-out (new rows only)."
)
BAD_RECORDS = Counter(
    "tonewatch_webhook_bad_records_total", "Alerts-topic records that are not valid alerts."
)


def parse_alerts(values: Sequence[bytes | None]) -> list[Alert]:
    """The valid alerts among raw record values; the others are logged and counted."""
    alerts = []
    for value in values:
        try:
            alerts.append(Alert.model_validate_json(value or b""))
        except ValidationError as exc:
            BAD_RECORDS.inc()
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "record"
            log.warning("skipping a record that is not an alert: %s: %s", where, first["msg"])
    return alerts


def fan_out(
    alerts: Sequence[Alert], candidates: Sequence[subscriptions.Subscription]
) -> list[deliveries.NewDelivery]:
    """A delivery per (alert, subscription) that matches, for alerts made after the
    subscription was (less SUBSCRIPTION_SKEW)."""
    new = []
    for alert in alerts:
        event = None
        for sub in candidates:
            if alert.created_at < sub.created_at - SUBSCRIPTION_SKEW or not sub.matches(alert):
                continue
            event = event or WebhookEvent.of(alert)
            payload = event.model_dump(mode="json")
            new.append(deliveries.NewDelivery(sub.id, sub.tenant, event.id, payload))
    return new


class WebhookWorker:
    """The two loops and what they share: settings, the engine and the HTTP client."""

    def __init__(self, settings: Settings, engine: AsyncEngine, client: httpx.AsyncClient):
        self.settings = settings
        self.engine = engine
        self.client = client
        self.queued = asyncio.Event()  # the fan-out wrote rows: look for due ones now
        # A claim outlives one attempt, so that no other worker takes a row in flight.
        self.lease_s = settings.webhook_timeout_s + 30.0

    # ---- fan-out ----------------------------------------------------------------------

    async def fan_out_loop(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            topic_name(self.settings, "alerts"),
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=f"{self.settings.worker_app_id}-webhooks",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await until_done(consumer.start, what="Kafka consumer start", retry_on=(KafkaError,))
        try:
            while not stop.is_set():
                try:
                    batches = await consumer.getmany(
                        timeout_ms=int(POLL_S * 1000), max_records=FETCH_MAX_RECORDS
                    )
                except KafkaError as exc:
                    log.warning("fetching alerts failed (%s); retrying", exc)
                    await _sleep(stop, 1.0)
                    continue
                records = [r for batch in batches.values() for r in batch]
                if not records:
                    continue
                await self.queue(parse_alerts([r.value for r in records]))
                await self._commit(consumer)
        finally:
            with contextlib.suppress(KafkaError):
                await consumer.stop()

    async def queue(self, alerts: Sequence[Alert]) -> int:
        """Write the deliveries of these alerts; returns how many were new."""
        tenants = {alert.tenant for alert in alerts}

        async def write() -> int:
            candidates = await subscriptions.webhooks(self.engine, tenants)
            return await deliveries.create(self.engine, fan_out(alerts, candidates))

        # An IntegrityError here is a subscription deleted between the two statements (its
        # foreign key): the next round reads the subscriptions again, without it.
        created = await until_done(
            write,
            what="Postgres webhook deliveries",
            retry_on=(DatabaseUnavailable, IntegrityError),
        )
        FANNED_OUT.inc(created)
        if created:
            self.queued.set()
        return created

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        async def commit() -> None:
            try:
                await consumer.commit()
            except (CommitFailedError, IllegalStateError) as exc:
                # A rebalance took the partitions: their new owner re-reads the batch, and
                # the deliveries it writes again are no-ops. Not worth retrying.
                log.warning("offset commit lost to a rebalance (%s)", exc)

        await until_done(commit, what="alerts offset commit", retry_on=(KafkaError,), cap_s=2.0)

    # ---- delivery ---------------------------------------------------------------------

    async def delivery_loop(self, stop: asyncio.Event) -> None:
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while not stop.is_set():
                free = CONCURRENCY - len(in_flight)
                due = await self._claim(free) if free > 0 else []
                for delivery in due:
                    task = asyncio.create_task(self.attempt(delivery))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                if len(due) == free and free > 0:
                    continue  # more may be due
                await self._idle(stop, in_flight)
        finally:
            if in_flight:
                await asyncio.wait(in_flight, timeout=self.settings.webhook_timeout_s + 1)

    async def _claim(self, limit: int) -> list[deliveries.Delivery]:
        return await until_done(
            lambda: deliveries.claim(self.engine, limit, self.lease_s),
            what="Postgres delivery claim",
            retry_on=(DatabaseUnavailable,),
        )

    async def _idle(self, stop: asyncio.Event, in_flight: set[asyncio.Task[None]]) -> None:
        """Until the poll interval ends, a slot frees (when all are taken), new rows are
        queued, or stop."""
        waits: list[asyncio.Future[object]] = [
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self.queued.wait()),
        ]
        if len(in_flight) >= CONCURRENCY:
            slot = asyncio.wait(set(in_flight), return_when=asyncio.FIRST_COMPLETED)
            waits.append(asyncio.ensure_future(slot))
        try:
            await asyncio.wait(waits, timeout=POLL_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        self.queued.clear()

    async def attempt(self, delivery: deliveries.Delivery) -> None:
        """One attempt at one delivery, and its outcome recorded. Never raises (but for
        cancellation): an unexpected error counts as a failed attempt."""
        try:
            await self._attempt(delivery)
        except Exception as exc:
            log.exception("delivery %d failed unexpectedly", delivery.id)
            await self._failed(delivery, None, f"internal error: {type(exc).__name__}: {exc}")

    async def _attempt(self, delivery: deliveries.Delivery) -> None:
        target = await until_done(
            lambda: subscriptions.webhook_target(self.engine, delivery.subscription_id),
            what="Postgres webhook target",
            retry_on=(DatabaseUnavailable,),
        )
        if target is None:
            return  # disabled or deleted since the claim: the row waits or is gone with it
        try:
            checked = await asyncio.to_thread(
                check_target, target.url, self.settings.webhook_allowed_targets
            )
        except UnresolvableTarget as exc:
            await self._failed(delivery, None, f"target unresolvable: {exc.reason}")
            return
        except UnsafeTarget as exc:
            refused = f"target refused: {exc.reason}"
            DELIVERIES.labels("refused").inc()
            log.warning("delivery %d: %s", delivery.id, refused)
            await self._db_write(
                lambda: deliveries.mark_dead(
                    self.engine, delivery.id, None, refused, attempted=False
                )
            )
            return
        body = json.dumps(delivery.payload, separators=(",", ":")).encode()
        signed = headers(target.secrets, delivery.event_id, int(time.time()), body)
        outcome = await post(self.client, checked, signed, body, self.settings.webhook_timeout_s)
        ATTEMPT_SECONDS.observe(outcome.seconds)
        if outcome.delivered:
            assert outcome.status_code is not None
            code = outcome.status_code
            DELIVERIES.labels("delivered").inc()
            await self._db_write(lambda: deliveries.mark_delivered(self.engine, delivery.id, code))
        elif outcome.gone:
            DELIVERIES.labels("gone").inc()
            log.warning("subscription %s disabled: %s", delivery.subscription_id, GONE_REASON)
            await self._db_write(lambda: deliveries.mark_gone(self.engine, delivery.id, 410))
            await self._db_write(
                lambda: subscriptions.disable(self.engine, delivery.subscription_id, GONE_REASON)
            )
        else:
            await self._failed(delivery, outcome.status_code, outcome.error or "failed")

    async def _failed(self, delivery: deliveries.Delivery, code: int | None, error: str) -> None:
        """Retry later with backoff, or dead once the attempts are spent."""
        if delivery.attempts + 1 >= self.settings.webhook_max_attempts:
            DELIVERIES.labels("dead").inc()
            log.warning("delivery %d dead after %d attempts: %s", delivery.id,
                        delivery.attempts + 1, error)  # fmt: skip
            await self._db_write(
                lambda: deliveries.mark_dead(self.engine, delivery.id, code, error)
            )
            return
        DELIVERIES.labels("retry").inc()
        delay = backoff_s(
            delivery.attempts, self.settings.webhook_backoff_s, self.settings.webhook_backoff_max_s
        )
        await self._db_write(
            lambda: deliveries.retry_later(self.engine, delivery.id, delay, code, error)
        )

    async def _db_write(self, write: Callable[[], Awaitable[object]]) -> None:
        await until_done(write, what="Postgres delivery update", retry_on=(DatabaseUnavailable,))

    # ---- gauge ------------------------------------------------------------------------

    async def pending_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                PENDING.set(await deliveries.pending_count(self.engine))
            except DatabaseUnavailable as exc:
                log.warning("counting pending deliveries failed (%s)", exc)
            await _sleep(stop, PENDING_EVERY_S)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def run(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Fan out and deliver until `stop` is set (forever when None)."""
    stop = stop or asyncio.Event()
    engine = create_engine(settings)
    # No proxies from the environment (they would bypass the address check); no pooled
    # connections, so that each delivery's TLS session is verified for its own host name.
    client = httpx.AsyncClient(
        trust_env=False,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=0),
    )
    worker = WebhookWorker(settings, engine, client)
    log.info(
        "webhook worker: topic %s, group %s-webhooks",
        topic_name(settings, "alerts"),
        settings.worker_app_id,
    )
    loops = [
        asyncio.create_task(worker.fan_out_loop(stop)),
        asyncio.create_task(worker.delivery_loop(stop)),
        asyncio.create_task(worker.pending_loop(stop)),
    ]
    try:
        await _until_stopped(loops, stop)
    finally:
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        await client.aclose()
        await engine.dispose()


async def _until_stopped(loops: list[asyncio.Task[None]], stop: asyncio.Event) -> None:
    """Return once `stop` is set and the loops finished their round (or SHUTDOWN_S passed,
    e.g. while one waits out an outage); re-raise a loop's unexpected error."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait([*loops, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    for task in done:
        if task is not stopping:
            task.result()  # raises what ended it
    await asyncio.wait(loops, timeout=SHUTDOWN_S)
