"""`bench e2e`: the generator's stream through Kafka, a worker and Triton into Postgres,
Redis and the `alerts` topic.

Each run gets topics, a consumer group and a tenant of its own, and a fresh worker. All
messages are produced at once, as fast as Kafka takes them, so the worker is the bottleneck;
throughput is messages over the time from the first send to the last commit in Postgres.
Latencies are wall-clock times on this one machine, to Postgres's commit timestamps (not to
the worker's clock):
- alert latency: from sending the message that tipped an alert to the alert's commit;
- message latency: from sending a message to its commit with its prediction.
The ledger (tonewatch.bench.ledger) reconciles what was sent and planted against Postgres,
the tenant's Redis list and the `alerts` topic.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from storage import alerts as alert_store
from storage import messages as message_store
from storage.db import create_engine, migrate
from streams.generator import Workload
from streams.replay import Pacer
from streams.topics import (
    delete_topics,
    ensure_topics,
    message_key,
    new_producer,
    topic_name,
)
from tonewatch.bench.ledger import Ledger, Observed, listed_keys, published_keys, reconcile
from tonewatch.bench.stats import percentile
from tonewatch.config import Settings
from tonewatch.contracts import Alert
from tonewatch.workers import isolated as pipeline_settings
from tonewatch.workers import start_worker

Progress = Callable[[int], None]


@dataclass(frozen=True)
class PipelineFigures:
    model: str
    messages: int
    seconds: float
    throughput_msgs_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    message_p50_ms: float | None
    message_p99_ms: float | None
    ledger: Ledger

    def as_dict(self) -> dict[str, object]:
        figures = asdict(self) | self.ledger.as_dict()
        del figures["ledger"]
        return figures


async def run_pipeline(
    settings: Settings,
    model_name: str,
    workload: Workload,
    on_progress: Progress | None = None,
    rate: float | None = None,
    timeout_s: float = 900.0,
) -> PipelineFigures:
    """One isolated run of the whole pipeline on `workload`, with `model_name` in Triton."""
    isolated = pipeline_settings(settings, model_name, f"bench-{uuid.uuid4().hex[:8]}")
    await ensure_topics(isolated)
    await asyncio.to_thread(migrate, isolated.database_url)
    worker = await asyncio.to_thread(start_worker, isolated, isolated.worker_app_id)
    engine = create_engine(isolated)
    tenant = workload.messages[0].tenant
    try:
        sent_at = await _produce_all(isolated, workload, rate)
        stored = await _wait_stored(engine, tenant, len(workload.messages), timeout_s, on_progress)
        alerts = await _settled_alerts(engine, tenant)
        committed = await alert_store.committed_at(engine, tenant)
        listed = await listed_keys(isolated, tenant)
        published = await published_keys(isolated, tenant)
    finally:
        await asyncio.to_thread(worker.stop)
        await engine.dispose()
        await delete_topics(isolated)
    first_sent = min(sent_at.values())
    last_stored = max(stored.values()).timestamp()
    message_ms = [(stored[i].timestamp() - sent_at[i]) * 1000 for i in stored if i in sent_at]
    alert_ms = [
        (committed[alert.dedup_key].timestamp() - sent_at[alert.evidence[-1]]) * 1000
        for alert in alerts
        if alert.evidence and alert.evidence[-1] in sent_at
    ]
    observed = Observed(
        produced=list(sent_at), stored=list(stored), alerts=alerts, redis=listed,
        topic=published,
    )  # fmt: skip
    seconds = last_stored - first_sent
    return PipelineFigures(
        model=model_name,
        messages=len(stored),
        seconds=round(seconds, 2),
        throughput_msgs_per_s=round(len(stored) / seconds, 1),
        p50_ms=percentile(alert_ms, 50),
        p99_ms=percentile(alert_ms, 99),
        message_p50_ms=percentile(message_ms, 50),
        message_p99_ms=percentile(message_ms, 99),
        ledger=reconcile(workload.expected, observed),
    )


async def _produce_all(
    settings: Settings, workload: Workload, rate: float | None
) -> dict[str, float]:
    """Send every message, at `rate` or as fast as the producer goes; returns send times."""
    producer = new_producer(settings, linger_ms=0)
    await producer.start()
    pacer = Pacer(rate)
    sent_at: dict[str, float] = {}
    try:
        pending = []
        for message in workload.messages:
            await pacer.take()
            sent_at[message.id] = time.time()
            pending.append(
                await producer.send(
                    topic_name(settings, message.source),
                    message.model_dump_json(exclude_none=True).encode(),
                    key=message_key(message.subject),
                )
            )
        for future in pending:
            await future
    finally:
        await producer.stop()
    return sent_at


async def _wait_stored(
    engine: AsyncEngine, tenant: str, total: int, timeout_s: float, on_progress: Progress | None
) -> dict[str, datetime]:
    deadline = time.monotonic() + timeout_s
    while True:
        stored = await message_store.stored_at(engine, tenant)
        if on_progress:
            on_progress(len(stored))
        if len(stored) >= total:
            return stored
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(stored)} of {total} messages stored in {timeout_s:.0f}s")
        await asyncio.sleep(0.5)


async def _settled_alerts(engine: AsyncEngine, tenant: str) -> list[Alert]:
    """The tenant's alerts once no new one has arrived for two seconds."""
    seen = -1
    while True:
        alerts = await alert_store.recent(engine, tenant, limit=None)
        if len(alerts) == seen:
            return alerts
        seen = len(alerts)
        await asyncio.sleep(2.0)
