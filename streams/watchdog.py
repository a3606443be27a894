"""The worker's watchdog: lag per partition, stall detection and recovery, health figures.

A consumer can stop fetching after broker trouble while the process looks healthy (the
known trap of RELIABILITY.md: "lag > 0 and no commit for T seconds"). Every
`worker_watch_every_s` the watchdog asks the broker for each assigned partition's end
offset and compares it with the worker's committed offset. A partition is **stalled** when
it has lag, its committed offset has not moved for `worker_stall_after_s`, and no agent has
a batch in hand: a batch that waits for Triton or Postgres is backpressure, not a stall.

Recovery is in process: the partition is resumed (in case it was left paused) and its fetch
position is moved back to the committed offset, so the fetcher starts again from the first
record not yet done. Records already buffered come again and are recognised as our own
redeliveries (pipeline.py), so a recovery never doubles an alert. If a partition stalls
again after `MAX_RECOVERIES` recoveries in a row, the worker exits non-zero and its
supervisor (compose's `restart:`, systemd, Kubernetes) starts a fresh one.

Each check also refreshes the metrics (lag, breaker state, retries, calls in flight) and
writes the worker's health file, which `tonewatch services status` reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from inference.client import TritonClassifier
from streams import metrics
from streams.exceptions import StalledPartition

log = logging.getLogger(__name__)

MAX_RECOVERIES: Final = 3


@dataclass
class _Progress:
    committed: int | None
    since: float
    recoveries: int = 0


@dataclass
class StallDetector:
    """Pure logic: which partitions have lag but made no progress for `stall_after_s`."""

    stall_after_s: float
    clock: Callable[[], float] = time.monotonic
    _seen: dict[Any, _Progress] = field(default_factory=dict)

    def check(
        self, positions: Mapping[Any, tuple[int | None, int | None]], busy: bool
    ) -> list[Any]:
        """`positions` maps each assigned partition to (committed offset, end offset).

        Returns the stalled partitions; each is reported once per `stall_after_s`, as its
        clock restarts when it is reported.
        """
        now = self.clock()
        for gone in set(self._seen) - set(positions):
            del self._seen[gone]
        stalled = []
        for tp, (committed, end) in positions.items():
            seen = self._seen.get(tp)
            if seen is None or seen.committed != committed:
                self._seen[tp] = _Progress(committed, now)  # progress: recoveries start over
                continue
            behind = end is not None and end > (committed or 0)
            if not behind or busy:
                seen.since = now
                continue
            if now - seen.since >= self.stall_after_s:
                seen.since = now
                seen.recoveries += 1
                stalled.append(tp)
        return stalled

    def recoveries(self, tp: Any) -> int:
        """Recoveries in a row of a partition that has not moved since the first of them."""
        seen = self._seen.get(tp)
        return seen.recoveries if seen is not None else 0


@dataclass(frozen=True)
class WorkerHealth:
    """What a worker writes to its health file at every check."""

    pid: int
    checked_at: float
    """Unix time of the check; a stale file means a frozen or dead worker."""
    lag: int | None
    """Records behind over all assigned partitions; None while the broker cannot say."""
    partitions: int
    stalls: int
    breaker: str
    model_version: str | None
    busy: bool
    assignment: list[str] = field(default_factory=list)
    """The source partitions this worker owns, as "topic/partition"."""

    def write(self, path: Path) -> None:
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(asdict(self)))
        os.replace(partial, path)  # readers never see half a file

    @classmethod
    def read(cls, path: Path) -> WorkerHealth | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None


def partition_lags(positions: Mapping[Any, tuple[int | None, int | None]]) -> dict[Any, int | None]:
    """Records behind per partition (None where the end offset is unknown)."""
    return {
        tp: None if end is None else max(0, end - (committed or 0))
        for tp, (committed, end) in positions.items()
    }


def lag_of(positions: Mapping[Any, tuple[int | None, int | None]]) -> int | None:
    lags = partition_lags(positions).values()
    return None if None in lags else sum(lag for lag in lags if lag is not None)


def publish_lag(positions: Mapping[Any, tuple[int | None, int | None]]) -> None:
    for tp, lag in partition_lags(positions).items():
        if lag is not None:
            metrics.LAG.labels(tp.topic, str(tp.partition)).set(lag)


def forget_partitions(tps: Iterable[Any]) -> None:
    """Drop the lag series of partitions this worker no longer owns."""
    for tp in tps:
        with contextlib.suppress(KeyError):
            metrics.LAG.remove(tp.topic, str(tp.partition))


class Watchdog:
    """One worker's checks. `consumer` is faust's consumer (a getter: faust creates it late);
    `busy` says whether an agent has a batch in hand; `crash` stops the worker with an error."""

    def __init__(
        self,
        *,
        consumer: Callable[[], Any],
        sources: set[str],
        stall_after_s: float,
        timeout_s: float,
        busy: Callable[[], bool],
        classifier: Callable[[], TritonClassifier | None],
        crash: Callable[[BaseException], Awaitable[None]],
        health_file: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.consumer = consumer
        self.sources = sources
        self.timeout_s = timeout_s
        self.busy = busy
        self.classifier = classifier
        self.crash = crash
        self.health_file = health_file
        self.detector = StallDetector(stall_after_s, clock)
        self.stalls = 0
        self._owned: set[Any] = set()
        self._triton_retries = 0

    async def check(self) -> WorkerHealth:
        consumer = self.consumer()
        tps = {tp for tp in consumer.assignment() if tp.topic in self.sources}
        forget_partitions(self._owned - tps)
        self._owned = tps
        try:
            async with asyncio.timeout(self.timeout_s):
                ends = await consumer.highwaters(*tps) if tps else {}
        except Exception as exc:  # the broker is away: lag unknown, nothing to judge
            log.warning("watchdog: cannot read end offsets (%s)", type(exc).__name__)
            ends = {}
        committed = consumer._committed_offset  # faust keeps no public accessor
        positions = {tp: (committed.get(tp), ends.get(tp)) for tp in tps}
        publish_lag(positions)
        busy = self.busy()
        for tp in self.detector.check(positions, busy=busy):
            await self._recover(consumer, tp, positions[tp])
        classifier = self.classifier()
        if classifier is not None:
            self._publish(classifier)
        health = WorkerHealth(
            pid=os.getpid(),
            checked_at=time.time(),
            lag=lag_of(positions),
            partitions=len(tps),
            stalls=self.stalls,
            breaker=classifier.breaker.state.value if classifier else "closed",
            model_version=classifier.last_version if classifier else None,
            busy=busy,
            assignment=sorted(f"{tp.topic}/{tp.partition}" for tp in tps),
        )
        if self.health_file is not None:
            health.write(self.health_file)
        return health

    async def _recover(
        self, consumer: Any, tp: Any, position: tuple[int | None, int | None]
    ) -> None:
        self.stalls += 1
        metrics.STALLS.labels(tp.topic).inc()
        committed, end = position[0] or 0, position[1] or 0
        if self.detector.recoveries(tp) > MAX_RECOVERIES:
            log.error("watchdog: %s still stalled after %d recoveries; exiting so that the "
                      "supervisor starts a fresh worker", tp, MAX_RECOVERIES)  # fmt: skip
            await self.crash(StalledPartition(f"{tp} stalled at offset {committed}"))
            return
        log.warning("watchdog: %s has lag %d but no progress for %.0fs; re-fetching from "
                    "offset %d", tp, end - committed, self.detector.stall_after_s,
                    committed)  # fmt: skip
        consumer.resume_partitions([tp])
        await consumer.seek(tp, committed)

    def _publish(self, classifier: TritonClassifier) -> None:
        metrics.BREAKER.labels("triton").state(classifier.breaker.state.value)
        metrics.IN_FLIGHT.set(classifier.in_flight)
        metrics.IN_FLIGHT_PEAK.set(classifier.peak_in_flight)
        metrics.TRITON_RETRIES.inc(max(0, classifier.retried - self._triton_retries))
        self._triton_retries = classifier.retried
        version = classifier.last_version
        if version and version.isdigit():
            metrics.MODEL_VERSION.labels(classifier.model_name).set(int(version))
