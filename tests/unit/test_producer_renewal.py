"""aiokafka's idempotent producer never recovers from OutOfOrderSequenceNumber
(aio-libs/aiokafka#1017): `publish` renews the producer and lets the caller retry."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import NotLeaderForPartitionError, OutOfOrderSequenceNumber
from aiokafka.structs import RecordMetadata

from streams.topics import Producer, publish

pytestmark = pytest.mark.unit


class Scripted(Producer):
    """A Producer whose sends fail with the scripted errors, one per send, then succeed."""

    def __init__(self, errors: list[Exception]) -> None:  # no real producer underneath
        self.renewals = 0
        self.errors = errors
        self.sent: list[bytes] = []

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None
    ) -> asyncio.Future[RecordMetadata]:
        future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        if self.errors:  # fails a moment later, as a real send does
            asyncio.get_running_loop().call_soon(future.set_exception, self.errors.pop(0))
        else:
            self.sent.append(value)
            future.set_result(RecordMetadata(topic, 0, None, 0, 0, None, 0))
        return future

    async def renew(self, seen: int | None = None) -> None:
        if seen is None or seen == self.renewals:
            self.renewals += 1


async def test_a_lost_sequence_renews_the_producer_and_the_retry_goes_through() -> None:
    producer = Scripted([OutOfOrderSequenceNumber()])
    with pytest.raises(OutOfOrderSequenceNumber):
        await publish(producer, "t", [(b"k", b"v")])
    assert producer.renewals == 1
    await publish(producer, "t", [(b"k", b"v")])
    assert producer.sent == [b"v"]


async def test_other_errors_keep_the_producer() -> None:
    producer = Scripted([NotLeaderForPartitionError()])
    with pytest.raises(NotLeaderForPartitionError):
        await publish(producer, "t", [(b"k", b"v")])
    assert producer.renewals == 0


async def test_sends_that_fail_together_renew_once() -> None:
    producer = Scripted([OutOfOrderSequenceNumber(), OutOfOrderSequenceNumber()])
    results = await asyncio.gather(
        publish(producer, "t", [(b"k", b"a")]),
        publish(producer, "t", [(b"k", b"b")]),
        return_exceptions=True,
    )
    assert all(isinstance(r, OutOfOrderSequenceNumber) for r in results)
    assert producer.renewals == 1
