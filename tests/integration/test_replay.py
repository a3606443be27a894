"""Replay against the real broker, on topics isolated by a random prefix."""

import json
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient

from streams.generator import generate
from streams.replay import replay, replay_messages
from streams.topics import MAX_MESSAGE_BYTES, source_topics
from tests.integration.conftest import run_cli
from tonewatch.config import Settings

pytestmark = pytest.mark.integration

HUGE = b'{"id": "huge", "text": "' + b"x" * (2 * MAX_MESSAGE_BYTES) + b'"}'
POISON = [
    b"not json at all",
    b"\xff\xfe\x00\x01 binary \x80",
    b'{"entity": "ACME", "text": 42}',  # JSON, not a valid message: keyed all the same
    b"[1, 2, 3]",
    b"   {broken",
]


@pytest.fixture
async def isolated() -> AsyncIterator[Settings]:
    """Settings whose topics are this test's own; they are deleted afterwards."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    yield Settings(kafka_topic_prefix=prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=Settings().kafka_bootstrap)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()


async def consume(settings: Settings, topics: list[str], count: int) -> list[ConsumerRecord]:
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + 30
    try:
        while len(records) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for partition_records in batch.values():
                records += partition_records
        # Anything beyond `count` would be a duplicate: give it a moment to show up.
        for partition_records in (await consumer.getmany(timeout_ms=500)).values():
            records += partition_records
    finally:
        await consumer.stop()
    return records


def by_key(records: list[ConsumerRecord]) -> dict[bytes | None, list[bytes]]:
    grouped: dict[bytes | None, list[bytes]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        grouped[record.key].append(record.value)
    return grouped


async def test_lines_arrive_byte_for_byte_with_their_keys(isolated: Settings) -> None:
    messages = [m for m in generate(messages=300).messages if m.source == "news"][:80]
    good = [m.model_dump_json().encode() for m in messages]
    lines = [line + b"\n" for line in good[:40]]
    lines += [b"\n", b"\r\n"]  # blank: skipped
    lines += [p + b"\n" for p in POISON] + [HUGE + b"\n"]
    lines += [line + b"\r\n" for line in good[40:]]
    lines[-1] = lines[-1].rstrip(b"\r\n")  # a last line without its terminator
    progress: list[int] = []

    report = await replay(isolated, "news", lines, rate=None, on_progress=progress.append)

    assert (report.sent, report.failed, report.blank) == (len(good) + len(POISON), 1, 2)
    assert dict(report.reasons) == {"MessageSizeTooLargeError": 1}
    assert report.failures[0].position == 40 + 2 + len(POISON) + 1
    assert sum(progress) == report.sent + report.failed
    assert report.topics == [source_topics(isolated)["news"]]
    records = await consume(isolated, report.topics, report.sent)
    assert len(records) == report.sent
    keys = {
        line: m.entity.encode() if m.entity else None
        for m, line in zip(messages, good, strict=True)
    }
    keys |= {p: b"ACME" if b"ACME" in p else None for p in POISON}
    expected: dict[bytes | None, list[bytes]] = defaultdict(list)
    for line in [*good[:40], *POISON, *good[40:]]:  # the order sent
        expected[keys[line]].append(line)
    received = by_key(records)
    assert sorted(received.pop(None)) == sorted(expected.pop(None))  # spread over partitions
    assert received == expected  # and in order per key


async def test_rate_is_paced(isolated: Settings) -> None:
    lines = [json.dumps({"entity": f"E{i % 3}", "n": i}).encode() for i in range(90)]
    started = time.monotonic()
    report = await replay(isolated, "reviews", lines, rate=300)
    took = time.monotonic() - started
    assert report.sent == 90
    assert took >= 0.25  # 90 records at 300/s: 0.3 s, less the first token
    assert report.rate <= 330
    assert report.as_dict()["target_rate"] == 300


async def test_generated_messages_go_to_their_own_topics(isolated: Settings) -> None:
    workload = generate(messages=300)
    messages = workload.messages[:400]
    report = await replay_messages(isolated, messages, rate=None)
    assert (report.sent, report.failed) == (len(messages), 0)
    topics = source_topics(isolated)
    records = await consume(isolated, list(topics.values()), len(messages))
    assert len(records) == len(messages)
    sent = {m.model_dump_json().encode(): m for m in messages}
    for record in records:
        message = sent[record.value]
        assert record.topic == topics[message.source]
        assert record.key == (message.entity or message.conversation_id or "").encode()


def test_cli_replays_a_file(isolated: Settings, tmp_path: Path) -> None:
    messages = [m for m in generate(messages=300).messages if m.source == "chats"][:25]
    path = tmp_path / "chats.jsonl"
    path.write_bytes(b"".join(m.model_dump_json().encode() + b"\n" for m in messages) + HUGE)
    env = {"TONEWATCH_KAFKA_TOPIC_PREFIX": isolated.kafka_topic_prefix}

    result = run_cli("replay", "--file", str(path), "--rate", "500", "--json", env=env)

    assert result.returncode == 1, result.stderr  # one record refused, the rest sent
    report = json.loads(result.stdout)
    assert (report["sent"], report["failed"]) == (25, 1)
    assert report["topics"] == [source_topics(isolated)["chats"]]
    assert report["failures"][0]["position"] == 26
    assert "MessageSizeTooLargeError" in report["reasons"]


async def test_cli_needs_a_source_it_can_tell(tmp_path: Path) -> None:
    path = tmp_path / "input.jsonl"
    path.write_bytes(b"{}\n")
    result = run_cli("replay", "--file", str(path))
    assert result.returncode == 2
    assert "--source" in result.stderr
