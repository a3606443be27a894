"""The retrain worker (`tonewatch retrain worker`): the Kafka side of the retrain loop.

- **Labels**: the `feedback` topic (consumer group `<worker_app_id>-retrain`, offsets
  committed after the upsert) into the label store (`training_labels`), idempotent by
  feedback id: a redelivered or older record changes nothing.
- **Rounds**: every few seconds, decide whether to train: after `retrain_min_labels` new
  labels, or `retrain_interval_s` after the last round when anything is new, whichever
  comes first; then `retrain.rounds.run_round`, whose outcome goes to `model-events`.
  A round abandoned by a killed worker does not count: the next start trains again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Final

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from retrain.rounds import RoundBusy, run_round
from storage import model_registry, training_labels
from storage.db import create_engine
from storage.exceptions import DatabaseUnavailable
from streams.retry import until_done
from streams.topics import topic_name
from tonewatch.config import Settings
from tonewatch.contracts import Feedback, ModelEvent
from tonewatch.model_events import publish_model_event

CHECK_EVERY_S: Final = 5.0

log = logging.getLogger(__name__)


async def consume_feedback(settings: Settings, engine: AsyncEngine, stop: asyncio.Event) -> None:
    """Feedback topic -> label store, at least once (commit after the upsert)."""
    consumer = AIOKafkaConsumer(
        topic_name(settings, "feedback"),
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{settings.worker_app_id}-retrain",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await until_done(consumer.start, what="Kafka (feedback consumer)", retry_on=(KafkaError,))
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            records = []
            for batch in batches.values():
                for record in batch:
                    try:
                        records.append(Feedback.model_validate_json(record.value or b""))
                    except ValidationError as exc:
                        log.warning("skipped an invalid feedback record: %s", exc)
            if records:
                await until_done(
                    functools.partial(training_labels.upsert, engine, records),
                    what="Postgres (label store)",
                    retry_on=(DatabaseUnavailable,),
                )
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()


async def due(settings: Settings, engine: AsyncEngine) -> str | None:
    """The trigger of a round that is due now ("labels" or "schedule"), or None."""
    last = await model_registry.last_run_started(engine)
    new = await training_labels.count_since(engine, last)
    if new >= settings.retrain_min_labels:
        return "labels"
    waited = (
        last is None or (datetime.now(UTC) - last).total_seconds() >= settings.retrain_interval_s
    )
    return "schedule" if new and waited else None


async def announce(settings: Settings, event: ModelEvent) -> None:
    """Publish a round's outcome; the registry is the record, so a Kafka outage only logs."""
    try:
        await publish_model_event(settings, event)
    except KafkaError as exc:
        log.warning("model-events not published (%s): %s", exc, event.model_dump_json())


async def run(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Consume feedback, and run a round whenever one is due, until `stop` is set."""
    stop = stop or asyncio.Event()
    engine = create_engine(settings)
    consumer = asyncio.create_task(consume_feedback(settings, engine, stop))
    try:
        while not stop.is_set():
            trigger = await _quietly(lambda: due(settings, engine))
            if trigger is not None:
                try:
                    outcome = await run_round(
                        settings, engine, trigger, lambda e: announce(settings, e), _log_stage
                    )
                    log.info(
                        "retrain round %s: %s %s",
                        outcome.run_id, outcome.status, json.dumps(outcome.reasons),
                    )  # fmt: skip
                except RoundBusy:
                    log.info("a round is running elsewhere")
                except Exception:
                    log.exception("retrain round failed; the champion keeps serving")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CHECK_EVERY_S)
            if consumer.done():
                consumer.result()  # a crashed consumer stops the worker, loudly
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await consumer
        await engine.dispose()


def _log_stage(stage: str) -> None:
    log.info("retrain stage: %s", stage)


async def _quietly(check: Callable[[], Awaitable[str | None]]) -> str | None:
    try:
        return await check()
    except DatabaseUnavailable as exc:
        log.warning("cannot check for a round: %s", exc)
        return None
