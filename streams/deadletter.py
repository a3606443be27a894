"""The dead-letter sink: records that cannot be processed, with why and where they came from.

Each dead letter goes to the `deadletter` topic (the contract other systems read) and to
Postgres (for the API and for people), both idempotent on the record's origin.
"""

from __future__ import annotations

import logging

from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import deadletters
from storage.exceptions import DatabaseUnavailable
from streams import metrics
from streams.retry import until_done
from streams.topics import Producer, publish
from tonewatch.contracts import DeadLetter

log = logging.getLogger(__name__)


class DeadLetters:
    def __init__(self, topic: str, producer: Producer, engine: AsyncEngine) -> None:
        self.topic = topic
        self.producer = producer
        self.engine = engine

    async def send(self, letters: list[DeadLetter], source: str) -> None:
        """Deliver the letters to Kafka and Postgres; waits out outages of either."""
        if not letters:
            return
        for letter in letters:
            log.warning(
                "dead letter from %s[%d]@%d: %s (%s)", letter.origin.topic,
                letter.origin.partition, letter.origin.offset, letter.reason, letter.error,
            )  # fmt: skip
            metrics.DEAD_LETTERS.labels(source, letter.reason).inc()
        await until_done(
            lambda: publish(
                self.producer,
                self.topic,
                [(_origin_key(letter), letter.model_dump_json().encode()) for letter in letters],
            ),
            what="dead-letter topic",
            retry_on=(KafkaError,),
        )
        await until_done(
            lambda: deadletters.record(self.engine, letters),
            what="Postgres dead letters",
            retry_on=(DatabaseUnavailable,),
        )


def _origin_key(letter: DeadLetter) -> bytes:
    origin = letter.origin
    return f"{origin.topic}/{origin.partition}/{origin.offset}".encode()
