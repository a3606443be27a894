"""The faust app: one agent per source topic.

`create_app(settings)` is the composition root of the worker. Its topics carry raw bytes
(validation happens in our code, so a bad record reaches the dead-letter topic with its
bytes). faust is configured from Settings alone: `env={}` stops unprefixed variables such as
BROKER_URL from overriding it.

The rules' per-entity state lives in Postgres (storage/entity_states.py), not in faust
tables: with faust tables, a worker that took over a killed worker's partitions sometimes
hung in changelog recovery ("No event received for active tp ... since recovery start")
and stopped processing (the two-worker test failed about one run in three); with the state
in Postgres, a new owner has it at once, with nothing to recover.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faust
from faust.events import Event

from inference.client import TritonClassifier
from storage.cache import AlertCache
from storage.db import create_engine
from streams.alert_sink import AlertSink
from streams.deadletter import DeadLetters
from streams.pipeline import BatchResult, Pipeline, Record
from streams.retry import until_done
from streams.rules import RuleConfig
from streams.topics import new_producer, topic_name
from streams.watchdog import Watchdog
from tonewatch.config import Settings
from tonewatch.contracts import SOURCES, Origin, Source

log = logging.getLogger(__name__)

CACHE_REFILL_EVERY_S = 5.0


# Records of the source topics that our agents have processed: the only ones that may be
# acknowledged (see _guard_acks).
_processed: weakref.WeakSet[Any] = weakref.WeakSet()
_guarded_topics: set[str] = set()


def _guard_acks() -> None:
    """Stop faust from acknowledging source records that no agent processed.

    During a rebalance faust skips the records it pulls while flow control is suspended or
    that were fetched under the previous generation, and acks them "so that lag does not
    grow" (faust-streaming 0.15, Stream._py_aiter). An ack lets the offset be committed past
    a record that nobody processed. Refused, such a record stays uncommitted and is fetched
    again after the seek to the committed offset.
    """
    if getattr(Event.ack, "tonewatch_guard", False):
        return
    unguarded = Event.ack

    def ack(self: Any) -> bool:
        if self.message.topic in _guarded_topics and self not in _processed:
            return False
        return bool(unguarded(self))

    ack.tonewatch_guard = True  # type: ignore[attr-defined]
    Event.ack = ack  # type: ignore[method-assign]


class Runtime:
    """The clients the agents share, opened inside the worker's event loop on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pipelines: dict[Source, Pipeline] = {}
        self.alert_sink: AlertSink | None = None
        self.classifier: TritonClassifier | None = None
        self.busy = 0
        """Batches in hand now (waiting for a dependency counts: that is not a stall)."""
        self._lock = asyncio.Lock()
        self._closers: list[Any] = []

    async def pipeline(self, source: Source) -> Pipeline:
        async with self._lock:
            if not self.pipelines:
                await self._open()
        return self.pipelines[source]

    async def _open(self) -> None:
        settings = self.settings
        engine = create_engine(settings)
        producer = new_producer(settings)
        await producer.start()
        classifier = TritonClassifier(
            settings.triton_grpc_url,
            settings.triton_model_name,
            timeout_s=settings.triton_timeout_s,
            max_concurrency=settings.triton_max_concurrency,
            retries=settings.triton_retries,
        )
        self.classifier = classifier
        cache = AlertCache.from_settings(settings)
        self._closers = [classifier.close, producer.stop, engine.dispose, cache.close]
        self.alert_sink = AlertSink(
            topic_name(settings, "alerts"), producer, engine, cache, settings.redis_recent_alerts
        )
        dead_letters = DeadLetters(topic_name(settings, "deadletter"), producer, engine)
        rules = RuleConfig.from_settings(settings)
        for source in SOURCES:
            self.pipelines[source] = Pipeline(
                source,
                classifier=classifier,
                engine=engine,
                producer=producer,
                scored_topic=topic_name(settings, "scored"),
                alert_sink=self.alert_sink,
                dead_letters=dead_letters,
                rules=rules,
            )

    async def close(self) -> None:
        for close in self._closers:
            try:
                await close()
            except Exception:  # closing is best effort; the process is going away
                log.exception("closing %r failed", close)
        self._closers = []


def create_app(settings: Settings, health_file: Path | None = None) -> faust.App:
    datadir = settings.var_dir / "faust" / settings.worker_app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.worker_app_id,
        env={},
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",  # no tables: nothing to keep on disk
        datadir=str(datadir),
        web_enabled=False,
        autodiscover=False,
        topic_partitions=settings.kafka_partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # On a rebalance, finish the records in hand before giving partitions up: faust acks
        # (and so commits) the records of an old generation that it skips afterwards.
        stream_wait_empty=True,
        # A batch may wait for Triton or Postgres to come back: never long enough to be
        # taken for a dead consumer and rebalanced away.
        broker_max_poll_interval=1800.0,
        # A worker killed -9 hands its partitions over after this, not faust's default 60 s.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
    )
    _guarded_topics.update(topic_name(settings, source) for source in SOURCES)
    _guard_acks()
    runtime = Runtime(settings)
    for source in SOURCES:
        _add_agent(app, settings, runtime, source)

    async def refill_cache() -> None:
        if runtime.alert_sink is not None:
            await runtime.alert_sink.refill()

    async def close_clients(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await runtime.close()

    app.timer(CACHE_REFILL_EVERY_S)(refill_cache)
    _add_watchdog(app, settings, runtime, health_file)
    app.on_before_shutdown.connect(close_clients)

    return app


def _add_agent(app: faust.App, settings: Settings, runtime: Runtime, source: Source) -> None:
    topic = app.topic(
        topic_name(settings, source),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.kafka_partitions,
    )

    async def score(stream: Any) -> None:
        # Each value is paired with its event the moment it enters the stream. faust's take
        # buffer reads `stream.current_event` later, after an await, and can pair a value with
        # another record's event (seen after a rebalance: one record processed twice, another
        # acked unprocessed). So batches carry their own events, and we ack those ourselves;
        # faust's own acks of its list afterwards are no-ops or repeats.
        stream.add_processor(lambda value: (stream.current_event, value))
        async for batch in stream.take(
            settings.worker_batch_size, within=settings.worker_batch_within_s
        ):
            events = [event for event, _ in batch]
            pipeline = await runtime.pipeline(source)
            runtime.busy += 1
            try:
                await _process(pipeline, [_record(event) for event in events])
            finally:
                runtime.busy -= 1
            _processed.update(events)
            for event in events:
                await stream.ack(event)

    app.agent(topic, name=f"score-{source}")(score)


def _add_watchdog(
    app: faust.App, settings: Settings, runtime: Runtime, health_file: Path | None
) -> None:
    """Every `worker_watch_every_s`: lag, stalls and their recovery, metrics, health file."""
    watchdog = Watchdog(
        consumer=lambda: app.consumer,
        sources={topic_name(settings, source) for source in SOURCES},
        stall_after_s=settings.worker_stall_after_s,
        timeout_s=settings.worker_watch_every_s / 2,
        busy=lambda: runtime.busy > 0,
        classifier=lambda: runtime.classifier,
        crash=app.crash,
        health_file=health_file,
    )

    async def guarded() -> None:
        try:
            await watchdog.check()
        except Exception:  # a timer that raises would take the worker down with it
            log.exception("watchdog check failed")

    app.task(guarded)  # a first report at start-up, before the first period is over
    app.timer(settings.worker_watch_every_s)(guarded)


async def _process(pipeline: Pipeline, records: Sequence[Record]) -> BatchResult:
    """Never raise: faust acks whatever an agent raises on. An unexpected error on the batch
    is retried record by record, and a record that still fails becomes a dead letter."""
    try:
        return await pipeline.process(records)
    except Exception:
        log.exception("a batch of %d failed; retrying its records one by one", len(records))
    total = BatchResult()
    for record in records:
        try:
            result = await pipeline.process([record])
        except Exception as exc:
            log.exception("record %s failed twice; dead-lettering it", record.origin)
            await until_done(
                functools.partial(pipeline.dead_letter_unprocessable, record, exc),
                what="dead-lettering an unprocessable record",
                retry_on=(Exception,),
            )
            total.dead_letters += 1
            continue
        total.scored += result.scored
        total.redelivered += result.redelivered
        total.duplicates += result.duplicates
        total.dead_letters += result.dead_letters
        total.alerts += result.alerts
    return total


def _record(event: Any) -> Record:
    message = event.message
    return Record(
        origin=Origin(topic=message.topic, partition=message.partition, offset=message.offset),
        key=message.key,
        value=message.value,
    )
