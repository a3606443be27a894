"""The Kafka topics of the pipeline, created explicitly (the broker never auto-creates them)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Final, Literal, get_args

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, OutOfOrderSequenceNumber, TopicAlreadyExistsError
from aiokafka.structs import RecordMetadata

from tonewatch.config import Settings
from tonewatch.contracts import SOURCES, Source

Output = Literal["scored", "alerts", "deadletter", "feedback", "model-events"]
OUTPUTS: Final[tuple[Output, ...]] = get_args(Output)

log = logging.getLogger(__name__)

# Kafka's own default cap (message.max.bytes) rounded: a bigger record is refused at produce,
# anything up to it reaches the worker, which dead-letters texts over MAX_TEXT_CHARS.
MAX_MESSAGE_BYTES: Final = 1_048_576


def topic_name(settings: Settings, base: Source | Output) -> str:
    return f"{settings.kafka_topic_prefix}{base}"


def source_topics(settings: Settings) -> dict[Source, str]:
    return {source: topic_name(settings, source) for source in SOURCES}


def message_key(entity: str | None) -> bytes | None:
    """The Kafka key of an input message: its entity (or conversation), so that all of an
    entity's messages share a partition, in order, with the table state about them."""
    return None if entity is None else entity.encode()


async def ensure_topics(settings: Settings) -> list[str]:
    """Create every topic that is missing, with `kafka_partitions` partitions; returns the new."""
    names = [topic_name(settings, base) for base in (*SOURCES, *OUTPUTS)]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        missing = [name for name in names if name not in set(await admin.list_topics())]
        created = []
        for name in missing:
            topic = NewTopic(
                name,
                num_partitions=settings.kafka_partitions,
                replication_factor=1,
                topic_configs={"max.message.bytes": str(MAX_MESSAGE_BYTES)},
            )
            try:
                await admin.create_topics([topic])
                created.append(name)
            except TopicAlreadyExistsError:  # another worker won the race
                pass
        return created
    finally:
        await admin.close()


class Producer:
    """A Kafka producer with the settings every tonewatch producer uses (acks from all in-sync
    replicas, idempotence, so that retries never write a record twice) that renews itself
    after a fatal sequence error.

    aiokafka's idempotent producer does not recover from OutOfOrderSequenceNumber: after a
    broker restart every send to the partition fails until the process restarts
    (aio-libs/aiokafka#1017, open; seen here in the F3 fault test). `publish` replaces the
    underlying producer when that error comes back, and the caller's retry resends with a new
    producer id. That resend may repeat records on the topic: at-least-once, and every
    consumer of our topics is idempotent.
    """

    def __init__(self, settings: Settings, **overrides: object) -> None:
        self._options: dict[str, object] = {
            "bootstrap_servers": settings.kafka_bootstrap,
            "acks": "all",
            "enable_idempotence": True,
            "max_request_size": MAX_MESSAGE_BYTES + 1024,
            "linger_ms": 5,
        } | overrides
        self._producer = AIOKafkaProducer(**self._options)
        self.renewals = 0

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None
    ) -> asyncio.Future[RecordMetadata]:
        """Queue one record; the future resolves once the broker has acknowledged it."""
        future: asyncio.Future[RecordMetadata] = await self._producer.send(topic, value, key=key)
        return future

    async def flush(self) -> None:
        await self._producer.flush()

    async def renew(self, seen: int | None = None) -> None:
        """Replace the producer (and so its producer id and sequence numbers). With `seen`,
        only if no renewal happened since `renewals` was `seen`: concurrent sends that failed
        together renew once."""
        if seen is not None and seen != self.renewals:
            return
        old, self._producer = self._producer, AIOKafkaProducer(**self._options)
        self.renewals += 1
        try:
            await old.stop()
        except KafkaError as exc:  # it is broken already; only its connections matter
            log.info("closing the replaced producer failed: %s", exc)
        await self._producer.start()


def new_producer(settings: Settings, **overrides: object) -> Producer:
    return Producer(settings, **overrides)


async def publish(
    producer: Producer, topic: str, records: Sequence[tuple[bytes | None, bytes]]
) -> None:
    """Send (key, value) records and wait until the broker has acknowledged all of them."""
    seen = producer.renewals
    try:
        pending = [await producer.send(topic, value, key=key) for key, value in records]
        for future in pending:
            await future
    except OutOfOrderSequenceNumber:
        if seen == producer.renewals:
            log.warning("the producer lost its sequence (aiokafka#1017); renewing it")
        await producer.renew(seen)
        raise


async def record_keys(settings: Settings, base: Source | Output) -> list[bytes | None]:
    """The key of every record on one of the pipeline's topics, from its start to its end at
    the time of the call, repeats included (for ledgers that count them)."""
    topic = topic_name(settings, base)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    parts = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    if not parts:  # no such topic: nothing on it
        return []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        keys: list[bytes | None] = []
        while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(*parts, timeout_ms=500)
            keys += [record.key for records in batch.values() for record in records]
        return keys
    finally:
        await consumer.stop()


async def delete_topics(settings: Settings) -> list[str]:
    """Delete a pipeline's topics: those under its prefix and its app's table changelogs.

    For isolated runs (tests, benchmarks); refuses an empty prefix, which would be everything.
    """
    if not settings.kafka_topic_prefix:
        raise ValueError("refusing to delete topics without a kafka_topic_prefix")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        ours = sorted(
            name
            for name in await admin.list_topics()
            if name.startswith(settings.kafka_topic_prefix)
            or name.startswith(f"{settings.worker_app_id}-")
        )
        if ours:
            await admin.delete_topics(ours)
        return ours
    finally:
        await admin.close()
