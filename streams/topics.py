"""The Kafka topics of the pipeline, created explicitly (the broker never auto-creates them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal, get_args

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from tonewatch.config import Settings
from tonewatch.contracts import SOURCES, Source

Output = Literal["scored", "alerts", "deadletter", "feedback", "model-events"]
OUTPUTS: Final[tuple[Output, ...]] = get_args(Output)

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


def new_producer(settings: Settings, **overrides: object) -> AIOKafkaProducer:
    """A producer with the settings every tonewatch producer uses: acks from all in-sync
    replicas and idempotence, so that retries never write a record twice."""
    options: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "max_request_size": MAX_MESSAGE_BYTES + 1024,
        "linger_ms": 5,
    }
    return AIOKafkaProducer(**(options | overrides))


async def publish(
    producer: AIOKafkaProducer, topic: str, records: Sequence[tuple[bytes | None, bytes]]
) -> None:
    """Send (key, value) records and wait until the broker has acknowledged all of them."""
    pending = [await producer.send(topic, value, key=key) for key, value in records]
    for future in pending:
        await future


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
