"""The faust app: one agent per source topic, one table of entity state per source.

`create_app(settings)` is the composition root of the worker. Its topics carry raw bytes
(validation happens in our code, so a bad record reaches the dead-letter topic with its
bytes), and its tables are partitioned like their source topics, so that an entity's state
lives on the partition that carries the entity's messages (the Kafka key is the entity).
faust is configured from Settings alone: `env={}` stops unprefixed variables such as
BROKER_URL from overriding it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections.abc import Sequence
from typing import Any

import faust
from faust.streams import _current_event

from inference.client import TritonClassifier
from storage.cache import AlertCache
from storage.db import create_engine
from streams.alert_sink import AlertSink
from streams.deadletter import DeadLetters
from streams.pipeline import BatchResult, Pipeline, Record
from streams.retry import until_done
from streams.rules import EntityState, RuleConfig
from streams.topics import new_producer, topic_name
from tonewatch.config import Settings
from tonewatch.contracts import SOURCES, Origin, Source

log = logging.getLogger(__name__)

CACHE_REFILL_EVERY_S = 5.0


class Runtime:
    """The clients the agents share, opened inside the worker's event loop on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pipelines: dict[Source, Pipeline] = {}
        self.alert_sink: AlertSink | None = None
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


class TableStates:
    """Entity states in a faust table.

    A table write goes to the changelog partition of faust's "current event", which in a
    micro-batch is only the last record; so each write first makes its own record current.
    Only the context variable is set: `Stream.current_event` belongs to faust's take buffer,
    which reads it when the next record arrives, and changing it there swaps records.
    """

    def __init__(self, table: Any, events: dict[Origin, Any]) -> None:
        self.table = table
        self.events = events

    def get(self, key: str) -> EntityState:
        return EntityState.from_json(self.table.get(key))

    def put(self, key: str, state: EntityState, record: Record) -> None:
        _current_event.set(weakref.ref(self.events[record.origin]))
        self.table[key] = state.to_json()


def create_app(settings: Settings) -> faust.App:
    datadir = settings.var_dir / "faust" / settings.worker_app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.worker_app_id,
        env={},
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",  # tables are rebuilt from their changelog topics on start
        datadir=str(datadir),
        web_enabled=False,
        autodiscover=False,
        topic_partitions=settings.kafka_partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        table_standby_replicas=0,
        stream_wait_empty=False,
        # A batch may wait for Triton or Postgres to come back: never long enough to be
        # taken for a dead consumer and rebalanced away.
        broker_max_poll_interval=1800.0,
        # A worker killed -9 hands its partitions over after this, not faust's default 60 s.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
    )
    runtime = Runtime(settings)
    for source in SOURCES:
        _add_agent(app, settings, runtime, source)

    async def refill_cache() -> None:
        if runtime.alert_sink is not None:
            await runtime.alert_sink.refill()

    async def close_clients(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await runtime.close()

    app.timer(CACHE_REFILL_EVERY_S)(refill_cache)
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
    # Keys are text (raw codec), states are JSON: the app's default serializers.
    table = app.Table(
        f"entities-{source}", default=None, partitions=settings.kafka_partitions, key_type=str
    )

    async def score(stream: Any) -> None:
        # No await before take_events: records that arrive before its buffer is in place
        # can be skipped by faust (seen as a lost first record after start-up).
        async for events in stream.take_events(
            settings.worker_batch_size, within=settings.worker_batch_within_s
        ):
            pipeline = await runtime.pipeline(source)
            records = [_record(event) for event in events]
            by_origin = {r.origin: e for r, e in zip(records, events, strict=True)}
            states = TableStates(table, by_origin)
            await _process(pipeline, records, states)

    app.agent(topic, name=f"score-{source}")(score)


async def _process(
    pipeline: Pipeline, records: Sequence[Record], states: TableStates
) -> BatchResult:
    """Never raise: faust acks whatever an agent raises on. An unexpected error on the batch
    is retried record by record, and a record that still fails becomes a dead letter."""
    try:
        return await pipeline.process(records, states)
    except Exception:
        log.exception("a batch of %d failed; retrying its records one by one", len(records))
    total = BatchResult()
    for record in records:
        try:
            result = await pipeline.process([record], states)
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
