import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import UnknownTopicOrPartitionError

from tonewatch.config import Settings
from tonewatch.services.kafka import KafkaService

pytestmark = pytest.mark.integration


async def test_produce_and_consume_round_trip(settings: Settings) -> None:
    topic = f"selftest-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            sent = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(30)}
            for key, value in sent.items():
                await producer.send_and_wait(topic, value, key=key)
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=f"{topic}-group",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            received: dict[bytes, bytes] = {}
            partitions: set[int] = set()
            while len(received) < len(sent):
                batch = await consumer.getmany(timeout_ms=10_000)
                assert batch, "no messages within 10 s"
                for tp, records in batch.items():
                    partitions.add(tp.partition)
                    received.update({r.key: r.value for r in records if r.key and r.value})
            await consumer.commit()
        finally:
            await consumer.stop()
        assert received == sent
        assert len(partitions) > 1  # keys spread over the explicit partitions
    finally:
        await admin.delete_topics([topic])
        await admin.close()


async def test_topics_are_not_auto_created(settings: Settings) -> None:
    """Topics exist only when created with explicit partition counts; a typo never makes one."""
    topic = f"never-created-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=3000)
    await producer.start()
    try:
        with pytest.raises(UnknownTopicOrPartitionError):
            await producer.send_and_wait(topic, b"x")
    finally:
        await producer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        assert topic not in await admin.list_topics()
    finally:
        await admin.close()


def test_storage_format_takes_a_cluster_id_that_looks_like_an_option(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """About one id in 32 starts with "-" in base64url; the format tool must still take it."""
    service = KafkaService(settings.model_copy(update={"var_dir": tmp_path}))
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(bytes=b"\xf8" * 16))
    service.install()
    service.prepare()
    meta = (service.data_dir / "meta.properties").read_text()
    assert "cluster.id=-" in meta
