"""The fault harness of RELIABILITY.md, shared by every F test.

A `FaultRun` is one isolated copy of the product on the shared services: its own topics,
consumer group, tenant and copy of the keyword stub model in Triton (so the model's verdicts,
and so the expected alerts, are exact, and Triton's inference count is the run's own), real
`tonewatch worker` processes, a real `tonewatch webhooks worker` and a reference receiver
subscribed to every alert of the tenant.

It sends the generator's seeded workload at a steady rate, and at the end reconciles
the ledger of tonewatch.bench.ledger over Postgres, the tenant's Redis list, the run's
`alerts` topic and the receiver's deliveries (`lost_messages`, `missed_alerts`,
`unexpected_alerts`, `dup_alerts_postgres`, `dup_alerts_redis`, `dup_alerts_topic`,
`dup_webhooks`; the last two are at-least-once by design, reported and not asserted), and:
- `lost_webhooks`: alerts whose event never reached the receiver;
- `reprocessed`: model calls beyond one per message (Triton's count for the run's model).
The backlog at any moment, sent minus stored, comes from the send and store times.

Timings (seconds, from the fault's start or end): `detect_s` (until a probe of the product
reports the fault: `services status`, `/readyz`, a worker's health), `recover_s` (until the
backlog is back to its level before the fault), `drain_s` (until every message sent before
the end of the fault is stored). Latencies, from send to commit in Postgres, are split by
the message's send time: before, during and after the fault.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import shutil
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from inference.stub import install_stub
from storage import messages as message_store
from storage import subscriptions, tables
from storage.db import migrate
from streams.generator import Workload, generate
from streams.topics import (
    delete_topics,
    ensure_topics,
    message_key,
    new_producer,
    publish,
    topic_name,
)
from streams.watchdog import WorkerHealth
from streams.webhooks import event_id, new_secret
from tests.integration.api_harness import ApiServer, free_port
from tests.integration.conftest import triton
from tests.integration.pipeline_harness import count_messages, isolated, settled_alerts
from tests.integration.webhook_harness import Receiver, ReceiverHub
from tonewatch.bench.ledger import Ledger, Observed, listed_keys, published_keys, reconcile
from tonewatch.bench.stats import percentile
from tonewatch.config import Settings
from tonewatch.contracts import SOURCES, Source
from tonewatch.services.process import Launch, ManagedProcess
from tonewatch.workers import health_path, settings_env, start_worker

Probe = Callable[[], Awaitable[bool]]
PHASES = ("before", "during", "after")


async def readiness(api: ApiServer) -> tuple[int, dict[str, Any]]:
    """The API's /readyz: its status code and its answer."""
    async with httpx.AsyncClient(base_url=api.url, timeout=5) as client:
        answer = await client.get("/readyz")
    return answer.status_code, answer.json()


@dataclass
class Fault:
    began: float
    ended: float | None = None
    detected: float | None = None


AT_LEAST_ONCE: Final = ("dup_alerts_topic", "dup_webhooks")
"""Sinks that repeat under faults by design (a reprocessed batch publishes its alerts again,
a webhook whose answer was lost is sent again); their consumers drop copies by key or id.
Reported, never asserted away."""


@dataclass(frozen=True)
class FaultFigures:
    faults: int
    messages: int
    """Messages stored."""
    ledger: Ledger
    lost_webhooks: int
    reprocessed: int
    detect_s: float | None
    recover_s: float | None
    drain_s: float | None
    p50_ms: dict[str, float | None]
    p99_ms: dict[str, float | None]

    def as_dict(self) -> dict[str, Any]:
        figures = self.ledger.as_dict() | asdict(self)
        del figures["ledger"]
        return figures

    def assert_intact(self) -> None:
        """Nothing lost, missed or doubled: messages, alerts at every sink that is not
        at-least-once by design, and webhook events (none may go undelivered)."""
        failures = self.ledger.failures(tolerated=AT_LEAST_ONCE)
        if self.lost_webhooks:
            failures.append(f"lost_webhooks {self.lost_webhooks}")
        assert not failures, f"{failures} in {self}"


@dataclass
class FaultRun:
    base: Settings
    engine: AsyncEngine
    seed: int = 1
    messages: int = 1200
    rate: float = 40.0
    overrides: dict[str, Any] = field(default_factory=dict)
    """Settings of the run's workers (e.g. Triton through a proxy)."""

    def __post_init__(self) -> None:
        run = uuid.uuid4().hex[:8]
        self.model = f"fault_stub_{run}"
        self.settings = isolated(self.base, self.model, **self.overrides)
        self.workload: Workload = generate(seed=self.seed, messages=self.messages,
                                           tenant=f"flt-{run}")  # fmt: skip
        self.tenant = self.workload.messages[0].tenant
        self.workers: list[ManagedProcess] = []
        self.sent_at: dict[str, float] = {}
        self.stored_at: dict[str, float] = {}  # filled by finish()
        self.observed: Observed | None = None  # filled by finish()
        self._sent_times: list[float] = []
        self._stored_times: list[float] = []
        self.faults: list[Fault] = []
        self.inferences_before_restarts = 0
        self.sending = asyncio.Event()
        self.sending.set()
        self._tasks: list[asyncio.Task[Any]] = []
        self._hub = ReceiverHub(free_port())
        self.receiver: Receiver | None = None
        self._webhooks = ManagedProcess(f"webhooks-{self.settings.worker_app_id}",
                                        self.base.var_dir / "workers")  # fmt: skip

    # --- set-up and tear-down ----------------------------------------------------------------

    async def start(self, workers: int = 1) -> None:
        install_stub(self.base.model_repository.resolve(), self.model)
        await asyncio.to_thread(triton, self.base, lambda c: c.load_model(self.model))
        await ensure_topics(self.settings)
        await asyncio.to_thread(migrate, self.settings.database_url)
        await self._start_webhooks()
        for _ in range(workers):
            await self.add_worker()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for worker in self.workers:
            await asyncio.to_thread(worker.stop)
        await asyncio.to_thread(self._webhooks.stop)
        self._hub.stop()
        with contextlib.suppress(Exception):  # Triton may be the thing a failed test broke
            await asyncio.to_thread(triton, self.base, lambda c: c.unload_model(self.model))
        shutil.rmtree(self.base.model_repository.resolve() / self.model, ignore_errors=True)
        with contextlib.suppress(KafkaError):
            await delete_topics(self.settings)

    async def add_worker(self) -> ManagedProcess:
        name = f"{self.settings.worker_app_id}-{len(self.workers)}"
        worker = await asyncio.to_thread(start_worker, self.settings, name)
        self.workers.append(worker)
        return worker

    async def restart_worker(self, worker: ManagedProcess) -> None:
        name = worker.name.removeprefix("worker-")
        await asyncio.to_thread(start_worker, self.settings, name)

    async def _start_webhooks(self) -> None:
        self._hub.start()
        secret = new_secret()
        self.receiver = self._hub.add([secret])
        await subscriptions.create(
            self.engine, self.tenant, name="everything", sources=[], entities=[], kinds=[],
            min_severity="low", channel="webhook", url=self.receiver.url, secret=secret,
        )  # fmt: skip
        own = self.settings.model_copy(update={
            "webhook_allowed_targets": [f"127.0.0.1:{self._hub.port}"],
            "webhook_backoff_s": 0.2, "webhook_backoff_max_s": 1.0,
        })  # fmt: skip
        tonewatch = str(Path(sys.executable).with_name("tonewatch"))
        argv = [tonewatch, "webhooks", "worker", "--metrics-port", "0"]
        await asyncio.to_thread(
            self._webhooks.spawn, Launch(argv=argv, env=settings_env(own), cwd=Path.cwd())
        )

    # --- load --------------------------------------------------------------------------------

    def send(self) -> None:
        """Start sending the workload at `rate`."""
        self._tasks.append(asyncio.create_task(self._send()))

    async def _send(self) -> None:
        producer = new_producer(self.settings, linger_ms=0)
        await producer.start()
        began = time.monotonic()
        try:
            for n, message in enumerate(self.workload.messages):
                await asyncio.sleep(max(0.0, began + n / self.rate - time.monotonic()))
                await self.sending.wait()
                topic = topic_name(self.settings, message.source)
                value = message.model_dump_json(exclude_none=True).encode()
                self.sent_at[message.id] = time.time()
                while True:  # the producer waits out a broker outage; the id makes a resend safe
                    try:
                        await publish(producer, topic, [(message_key(message.subject), value)])
                        break
                    except KafkaError:
                        await asyncio.sleep(0.5)
        finally:
            await producer.stop()

    async def until_stored(self, count: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while await count_messages(self.engine, self.tenant) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"fewer than {count} messages stored after {timeout_s}s")
            await asyncio.sleep(0.2)

    # --- the fault ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def fault(self, detected: Probe | None = None) -> AsyncIterator[Fault]:
        """Marks a fault's start and end; `detected` is polled until the product reports it."""
        fault = Fault(time.time())
        self.faults.append(fault)
        watcher = asyncio.create_task(self._detect(fault, detected)) if detected else None
        try:
            yield fault
        finally:
            fault.ended = time.time()
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)

    async def _detect(self, fault: Fault, probe: Probe) -> None:
        while True:
            with contextlib.suppress(Exception):
                if await probe():
                    fault.detected = time.time()
                    return
            await asyncio.sleep(0.25)

    def count_inferences_before_restart(self) -> None:
        """Triton forgets its statistics when it restarts: keep the count so far."""
        self.inferences_before_restarts += self._inferences()

    def _inferences(self) -> int:
        stats = triton(self.base, lambda c: c.get_inference_statistics(self.model).model_stats)
        return sum(int(s.inference_count) for s in stats)

    # --- the ledger --------------------------------------------------------------------------

    async def finish(self, timeout_s: float = 240.0) -> FaultFigures:
        """Wait for the load to end and drain, then reconcile the ledger and the timings."""
        sender = self._tasks[0]
        await asyncio.wait_for(asyncio.shield(sender), timeout_s)
        total = len(self.workload.messages)
        with contextlib.suppress(AssertionError):
            await self.until_stored(total, timeout_s)
        alerts = await settled_alerts(self.engine, self.workload)
        stored = await message_store.stored_at(self.engine, self.tenant)
        self.stored_at = {i: at.timestamp() for i, at in stored.items()}
        self._sent_times = sorted(self.sent_at.values())
        self._stored_times = sorted(self.stored_at.values())
        received = await self._webhooks_settled({event_id(a.dedup_key) for a in alerts})
        inferences = self.inferences_before_restarts + await asyncio.to_thread(self._inferences)
        assert self.receiver is not None
        self.observed = Observed(
            produced=[m.id for m in self.workload.messages], stored=list(stored), alerts=alerts,
            redis=await listed_keys(self.settings, self.tenant),
            topic=await published_keys(self.settings, self.tenant),
            webhooks=self.receiver.store.deliveries(),
        )  # fmt: skip
        return FaultFigures(
            faults=len(self.faults),
            messages=len(stored),
            ledger=reconcile(self.workload.expected, self.observed),
            lost_webhooks=len({event_id(a.dedup_key) for a in alerts} - received),
            reprocessed=max(0, inferences - len(stored)),
            detect_s=self._detect_s(),
            recover_s=self._recover_s(),
            drain_s=self._drain_s(stored),
            **self._latencies(stored),
        )

    def with_live_feed(self, figures: FaultFigures, event_ids: Sequence[str]) -> FaultFigures:
        """`figures` with the ledger's `dup_sse` from an SSE client's event ids (after
        finish(), once the client has caught up)."""
        assert self.observed is not None, "finish() first"
        observed = replace(self.observed, sse=list(event_ids))
        return replace(figures, ledger=reconcile(self.workload.expected, observed))

    async def _webhooks_settled(self, wanted: set[str], timeout_s: float = 30.0) -> set[str]:
        assert self.receiver is not None
        deadline = time.monotonic() + timeout_s
        while not wanted <= set(self.receiver.ids()) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.25)
        return set(self.receiver.ids())

    def _detect_s(self) -> float | None:
        """The slowest detection over the faults (None if one was never reported)."""
        times = [f.detected - f.began if f.detected else None for f in self.faults]
        if not times or None in times:
            return None
        return round(max(t for t in times if t is not None), 1)

    def backlog_at(self, t: float) -> int:
        """Messages sent but not yet stored at time `t` (from the send and store times)."""
        return bisect.bisect_right(self._sent_times, t) - bisect.bisect_right(self._stored_times, t)

    def recovery_s(self, fault: Fault) -> float | None:
        """From the fault's end until the backlog is back to its worst before the faults (at
        least a second's worth of messages). Needs finish() first."""
        if fault.ended is None:
            return None
        first = self.faults[0].began
        events = sorted([*self.sent_at.values(), *self.stored_at.values()])
        baseline = max([int(self.rate), *(self.backlog_at(t) for t in events if t < first)])
        for t in [fault.ended, *(t for t in events if t > fault.ended)]:
            if self.backlog_at(t) <= baseline:
                return round(t - fault.ended, 1)
        return None

    def _recover_s(self) -> float | None:
        times = [self.recovery_s(fault) for fault in self.faults]
        if not times or None in times:
            return None
        return max(t for t in times if t is not None)

    def _drain_s(self, stored: dict[str, Any]) -> float | None:
        """From the last fault's end until every message sent before it was stored."""
        if not self.faults or self.faults[-1].ended is None:
            return None
        healed = self.faults[-1].ended
        backlog = [stored[i].timestamp() for i, t in self.sent_at.items()
                   if t < healed and i in stored]  # fmt: skip
        return round(max(0.0, max(backlog, default=0.0) - healed), 1)

    def _latencies(self, stored: dict[str, Any]) -> dict[str, dict[str, float | None]]:
        by_phase: dict[str, list[float]] = {phase: [] for phase in (*PHASES, "between")}
        for message_id, sent in self.sent_at.items():
            if message_id in stored:
                by_phase[self._phase(sent)].append((stored[message_id].timestamp() - sent) * 1e3)
        return {
            "p50_ms": {phase: percentile(by_phase[phase], 50) for phase in PHASES},
            "p99_ms": {phase: percentile(by_phase[phase], 99) for phase in PHASES},
        }

    def _phase(self, sent: float) -> str:
        if not self.faults or sent < self.faults[0].began:
            return "before"
        if any(f.began <= sent <= (f.ended or float("inf")) for f in self.faults):
            return "during"
        return "after" if sent > (self.faults[-1].ended or float("inf")) else "between"

    async def group_lag(self, timeout_s: float = 30.0) -> dict[str, int]:
        """Records not yet committed by the workers' group, per source partition ("topic/n"),
        once they are all committed or `timeout_s` has passed."""
        topics = [topic_name(self.settings, source) for source in SOURCES]
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap)
        await admin.start()
        await consumer.start()
        try:
            parts = [TopicPartition(t, p) for t in topics
                     for p in range(self.settings.kafka_partitions)]  # fmt: skip
            deadline = time.monotonic() + timeout_s
            while True:
                ends = await consumer.end_offsets(parts)
                done = await admin.list_consumer_group_offsets(self.settings.worker_app_id)
                lag = {
                    f"{tp.topic}/{tp.partition}": ends[tp] - (done[tp].offset if tp in done else 0)
                    for tp in parts
                }
                if not any(lag.values()) or time.monotonic() > deadline:
                    return lag
                await asyncio.sleep(1)
        finally:
            await consumer.stop()
            await admin.close()

    async def skipped_offsets(self) -> dict[str, int]:
        """Offsets of each source partition that no stored message came from ("topic/n")."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(tables.Message.origin_topic, tables.Message.origin_partition,
                       func.count(), func.max(tables.Message.origin_offset))
                .where(tables.Message.tenant == self.tenant)
                .group_by(tables.Message.origin_topic, tables.Message.origin_partition)
            )  # fmt: skip
            # A partition's offsets start at 0 (topics of their own), so a gap shows as
            # fewer stored messages than the highest offset + 1.
            return {f"{topic}/{part}": top + 1 - n for topic, part, n, top in rows if top + 1 > n}

    # --- what the workers logged -------------------------------------------------------------

    def joins(self, worker: ManagedProcess) -> int:
        """Partition assignments the worker took (its first, then one per rebalance)."""
        return worker.log_path.read_text(errors="replace").count(
            "Executing _on_partitions_assigned"
        )

    def assigned(self, worker: ManagedProcess, source: Source = "news") -> set[int]:
        """The partitions of a source topic the worker owns, from its latest health report."""
        health = WorkerHealth.read(health_path(worker))
        topic = f"{topic_name(self.settings, source)}/"
        owned = health.assignment if health else []
        return {int(tp.removeprefix(topic)) for tp in owned if tp.startswith(topic)}
