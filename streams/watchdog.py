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

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from streams import metrics

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


def lag_of(positions: Mapping[Any, tuple[int | None, int | None]]) -> int | None:
    ends = [(committed or 0, end) for committed, end in positions.values()]
    if any(end is None for _, end in ends):
        return None
    return sum(max(0, end - committed) for committed, end in ends if end is not None)


def publish_lag(positions: Mapping[Any, tuple[int | None, int | None]]) -> None:
    for tp, (committed, end) in positions.items():
        if end is not None:
            metrics.LAG.labels(tp.topic, str(tp.partition)).set(max(0, end - (committed or 0)))


def forget_partitions(tps: Iterable[Any]) -> None:
    """Drop the lag series of partitions this worker no longer owns."""
    for tp in tps:
        with contextlib.suppress(KeyError):
            metrics.LAG.remove(tp.topic, str(tp.partition))
