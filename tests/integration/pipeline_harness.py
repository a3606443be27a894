"""What the pipeline tests share: an isolated pipeline (own topics, consumer group and tenant)
with real workers, and ways to feed it and to read back what it stored."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import alerts as alert_store
from storage import tables
from storage.db import migrate
from streams.generator import Workload
from streams.topics import (
    delete_topics,
    ensure_topics,
    message_key,
    new_producer,
    publish,
    topic_name,
)
from tonewatch import workers
from tonewatch.bench.ledger import planted_as
from tonewatch.config import Settings
from tonewatch.contracts import Alert, Source
from tonewatch.services.process import ManagedProcess
from tonewatch.workers import start_worker

T = TypeVar("T")
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def isolated(settings: Settings, model_name: str, **overrides: Any) -> Settings:
    """Settings for a pipeline of its own on the shared broker, with short batch waits."""
    run = f"t{uuid.uuid4().hex[:8]}"
    return workers.isolated(
        settings, model_name, run, **({"worker_batch_within_s": 0.02} | overrides)
    )


@dataclass
class PipelineUnderTest:
    settings: Settings
    workers: list[ManagedProcess] = field(default_factory=list)

    def start(self) -> None:
        asyncio.run(ensure_topics(self.settings))
        migrate(self.settings.database_url)

    def add_worker(self) -> ManagedProcess:
        name = f"{self.settings.worker_app_id}-{len(self.workers)}"
        worker = start_worker(self.settings, name)
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        asyncio.run(delete_topics(self.settings))


def message(
    tenant: str,
    n: int,
    *,
    source: Source = "news",
    entity: str | None = "$ACME",
    text: str = "ACME shares were flat in quiet trading.",
    seconds: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    ts = T0 + timedelta(seconds=n if seconds is None else seconds)
    body: dict[str, Any] = {
        "id": f"{tenant}-{source}-{n}", "source": source, "text": text, "tenant": tenant,
        "ts": ts.isoformat(), **extra,
    }  # fmt: skip
    if source == "chats":
        body |= {"conversation_id": entity or "conv", "speaker": "customer", "turn": n}
    elif entity is not None:
        body["entity"] = entity
    return body


async def produce(settings: Settings, source: Source, bodies: Iterable[dict[str, Any]]) -> None:
    records = [
        (message_key(b.get("entity") or b.get("conversation_id")), json.dumps(b).encode())
        for b in bodies
    ]
    await produce_raw(settings, source, records)


async def produce_raw(
    settings: Settings, source: Source, records: list[tuple[bytes | None, bytes]]
) -> None:
    producer = new_producer(settings)
    await producer.start()
    try:
        await publish(producer, topic_name(settings, source), records)
    finally:
        await producer.stop()


async def eventually(
    probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], timeout_s: float = 60.0
) -> T:
    """Poll until `ok(probe())`; fails with the last value seen."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout_s}s; last value: {value!r}")
        await asyncio.sleep(0.25)


async def count_messages(engine: AsyncEngine, tenant: str) -> int:
    async with engine.connect() as conn:
        query = (
            select(func.count()).select_from(tables.Message).where(tables.Message.tenant == tenant)
        )
        return int((await conn.execute(query)).scalar_one())


async def predictions(engine: AsyncEngine, tenant: str) -> list[tuple[str, str]]:
    """(message id, model version) of every prediction stored for the tenant."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(tables.Message.message_id, tables.Prediction.model_version)
            .join(tables.Prediction)
            .where(tables.Message.tenant == tenant)
        )
        return [(r[0], r[1]) for r in rows]


async def consume(settings: Settings, topic: str, until: Callable[[list[Any]], bool]) -> list[Any]:
    """Read a topic from the start until `until(records)` holds (at most 30 s)."""
    consumer = AIOKafkaConsumer(
        topic_name(settings, topic),  # type: ignore[arg-type]
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + 30
        while not until(records) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for part in batch.values():
                records += part
    finally:
        await consumer.stop()
    return records


async def settled_alerts(engine: AsyncEngine, workload: Workload) -> list[Alert]:
    """The tenant's alerts once every expected one is in Postgres (or 30 s have passed).

    Alerts of a batch are written just after its messages, so counting messages alone is
    not enough to know that the last alerts have landed.
    """
    tenant = workload.messages[0].tenant

    async def alerts() -> list[Alert]:
        return await alert_store.recent(engine, tenant, limit=None)

    def complete(found: list[Alert]) -> bool:
        return workload.expected <= {planted_as(a) for a in found}

    try:
        return await eventually(alerts, complete, timeout_s=30)
    except AssertionError:
        return await alerts()
