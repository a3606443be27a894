"""The worker's stall detection (streams/watchdog.py): lag with no progress, and nothing else."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from streams.watchdog import StallDetector, Watchdog, WorkerHealth, lag_of

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_partition_with_lag_and_no_commit_is_stalled_after_the_limit() -> None:
    clock = Clock()
    detector = StallDetector(stall_after_s=60, clock=clock)
    assert detector.check({"p0": (10, 25)}, busy=False) == []
    clock.now = 59
    assert detector.check({"p0": (10, 25)}, busy=False) == []
    clock.now = 60
    assert detector.check({"p0": (10, 25)}, busy=False) == ["p0"]
    assert detector.recoveries("p0") == 1
    # Reported once per period, and counted while it stays stuck.
    clock.now = 61
    assert detector.check({"p0": (10, 25)}, busy=False) == []
    clock.now = 120
    assert detector.check({"p0": (10, 25)}, busy=False) == ["p0"]
    assert detector.recoveries("p0") == 2


def test_progress_lag_zero_a_batch_in_hand_or_an_unknown_end_are_not_stalls() -> None:
    clock = Clock()
    detector = StallDetector(stall_after_s=60, clock=clock)
    detector.check({"moving": (0, 50), "idle": (7, 7), "waiting": (3, 9), "dark": (4, 9)}, False)
    for step in range(1, 10):
        clock.now = step * 30.0
        positions = {"moving": (step, 50), "idle": (7, 7), "waiting": (3, 9), "dark": (4, None)}
        # "waiting" has a batch in hand every time: backpressure, not a stall.
        assert detector.check(positions, busy=True) == []
        assert detector.check({k: v for k, v in positions.items() if k != "waiting"}, False) == []
    assert detector.recoveries("moving") == 0


def test_progress_after_a_recovery_starts_the_count_over() -> None:
    clock = Clock()
    detector = StallDetector(stall_after_s=10, clock=clock)
    detector.check({"p": (5, 9)}, busy=False)
    clock.now = 10
    assert detector.check({"p": (5, 9)}, busy=False) == ["p"]
    clock.now = 11
    detector.check({"p": (9, 12)}, busy=False)
    assert detector.recoveries("p") == 0
    clock.now = 20
    assert detector.check({"p": (9, 12)}, busy=False) == []


def test_revoked_partitions_are_forgotten() -> None:
    clock = Clock()
    detector = StallDetector(stall_after_s=10, clock=clock)
    detector.check({"a": (1, 5), "b": (1, 5)}, busy=False)
    clock.now = 10
    assert detector.check({"a": (1, 5)}, busy=False) == ["a"]
    clock.now = 15
    # "b" comes back (a new assignment): its clock starts again.
    assert detector.check({"a": (1, 5), "b": (1, 5)}, busy=False) == []
    clock.now = 24
    assert "b" not in detector.check({"a": (1, 5), "b": (1, 5)}, busy=False)
    clock.now = 25
    assert detector.check({"a": (1, 5), "b": (1, 5)}, busy=False) == ["b"]


def test_lag_is_unknown_while_any_end_is() -> None:
    assert lag_of({"a": (3, 10), "b": (None, 4)}) == 11
    assert lag_of({"a": (3, 10), "b": (0, None)}) is None
    assert lag_of({}) == 0


def test_the_health_file_round_trips_and_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "worker.health.json"
    health = WorkerHealth(pid=42, checked_at=time.time(), lag=3, partitions=6, stalls=1,
                          breaker="open", model_version="2", busy=True)  # fmt: skip
    health.write(path)
    assert WorkerHealth.read(path) == health
    assert list(tmp_path.iterdir()) == [path]
    path.write_text("{half")
    assert WorkerHealth.read(path) is None
    assert WorkerHealth.read(tmp_path / "absent.json") is None


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


class FakeConsumer:
    """faust's consumer as the watchdog sees it: assignment, end offsets, commits, seeks."""

    def __init__(self, ends: dict[TP, int], committed: dict[TP, int]) -> None:
        self.ends = ends
        self._committed_offset = committed
        self.seeks: list[tuple[TP, int]] = []
        self.resumed: list[TP] = []
        self.broker_down = False

    def assignment(self) -> set[TP]:
        return set(self.ends)

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        if self.broker_down:
            raise ConnectionError("broker away")
        return {tp: self.ends[tp] for tp in tps}

    def resume_partitions(self, tps: list[TP]) -> None:
        self.resumed += tps

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))


def watchdog(consumer: FakeConsumer, clock: Clock, crashes: list[BaseException],
             busy: bool = False, health_file: Path | None = None) -> Watchdog:  # fmt: skip
    async def crash(exc: BaseException) -> None:
        crashes.append(exc)

    return Watchdog(
        consumer=lambda: consumer, sources={"news"}, stall_after_s=60, timeout_s=1,
        busy=lambda: busy, classifier=lambda: None, crash=crash, health_file=health_file,
        clock=clock,
    )  # fmt: skip


async def test_a_stalled_partition_is_refetched_from_its_commit_then_the_worker_exits(
    tmp_path: Path,
) -> None:
    stuck, fine, other = TP("news", 0), TP("news", 1), TP("scored", 0)
    consumer = FakeConsumer({stuck: 40, fine: 9, other: 99}, {stuck: 25, fine: 9, other: 0})
    clock, crashes = Clock(), list[BaseException]()
    dog = watchdog(consumer, clock, crashes, health_file=tmp_path / "health.json")
    health = await dog.check()
    assert (health.lag, health.partitions, health.assignment) == (15, 2, ["news/0", "news/1"])
    assert WorkerHealth.read(tmp_path / "health.json") == health
    for recovery in range(1, 4):
        clock.now = 60.0 * recovery
        assert (await dog.check()).stalls == recovery
        assert consumer.seeks[-1] == (stuck, 25)
        assert consumer.resumed[-1] == stuck
    assert crashes == []
    clock.now = 240
    await dog.check()
    assert len(consumer.seeks) == 3  # the fourth time, no more re-fetching...
    assert [type(c).__name__ for c in crashes] == ["StalledPartition"]  # ...but a fresh worker


async def test_progress_a_batch_in_hand_or_a_broker_outage_is_no_stall() -> None:
    tp = TP("news", 0)
    consumer = FakeConsumer({tp: 40}, {tp: 25})
    clock, crashes = Clock(), list[BaseException]()
    busy_dog = watchdog(consumer, clock, crashes, busy=True)
    for step in range(5):
        clock.now = 100.0 * step
        await busy_dog.check()
    consumer.broker_down = True
    dog = watchdog(consumer, clock, crashes)
    for step in range(5):
        clock.now = 500 + 100.0 * step
        assert (await dog.check()).lag is None
    consumer.broker_down = False
    for step in range(5):
        clock.now = 1000 + 100.0 * step
        consumer._committed_offset[tp] += 1
        consumer.ends[tp] += 1
        await dog.check()
    assert consumer.seeks == []
    assert crashes == []
