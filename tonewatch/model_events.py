"""Publish `model-events` records (tonewatch.contracts.ModelEvent): promotions, rollbacks and
rejected challengers, keyed by model name so that one model's events stay in order.

The registry in Postgres is the record; an event is a notification for whoever listens.
"""

from __future__ import annotations

from streams.topics import new_producer, publish, topic_name
from tonewatch.config import Settings
from tonewatch.contracts import ModelEvent


async def publish_model_event(
    settings: Settings, event: ModelEvent, timeout_s: float = 10.0
) -> None:
    """Send one event and wait for the broker's acknowledgement (KafkaError otherwise)."""
    producer = new_producer(settings, request_timeout_ms=int(timeout_s * 1000))
    await producer.start()
    try:
        record = (event.model_name.encode(), event.model_dump_json().encode())
        await publish(producer, topic_name(settings, "model-events"), [record])
    finally:
        await producer.stop()
