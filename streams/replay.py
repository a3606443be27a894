"""Replay recorded input onto the source topics, byte for byte, at a chosen rate.

Lines go out as they are, without validation: a bad line must reach the worker, which
dead-letters it with its raw bytes. Only the Kafka key comes from a lenient parse (the
message's entity, or its conversation), so that a replayed entity keeps one partition. A
record that Kafka refuses (too large, a timeout) is counted and reported, never fatal.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

from aiokafka.errors import KafkaError

from streams.topics import ensure_topics, message_key, new_producer, topic_name
from tonewatch.config import Settings
from tonewatch.contracts import InputMessage, Source

MAX_IN_FLIGHT: Final = 1000  # sends awaited together when no rate is set
MAX_FAILURES_KEPT: Final = 100  # failures listed one by one in the report; all are counted
BURST_S: Final = 0.02  # how far a paced replay may run ahead after a stall

Progress = Callable[[int], None]
# (topic, key, value, where it came from: a line number or a message index)
Record = tuple[str, bytes | None, bytes, int]


@dataclass(frozen=True)
class SendFailure:
    position: int  # the line number (1-based) of a file, or the index of a message
    reason: str  # the Kafka error's type, e.g. MessageSizeTooLargeError
    detail: str


@dataclass
class ReplayReport:
    topics: list[str]
    target_rate: float | None
    sent: int = 0
    failed: int = 0
    blank: int = 0
    elapsed_s: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)
    failures: list[SendFailure] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Records acknowledged per second."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def fail(self, position: int, exc: KafkaError) -> None:
        self.failed += 1
        reason = type(exc).__name__
        self.reasons[reason] += 1
        if len(self.failures) < MAX_FAILURES_KEPT:
            self.failures.append(SendFailure(position, reason, str(exc)[:500]))

    def as_dict(self) -> dict[str, object]:
        return {
            "topics": self.topics,
            "sent": self.sent,
            "failed": self.failed,
            "blank": self.blank,
            "elapsed_s": round(self.elapsed_s, 3),
            "rate": round(self.rate, 1),
            "target_rate": self.target_rate,
            "reasons": dict(sorted(self.reasons.items())),
            "failures": [
                {"position": f.position, "reason": f.reason, "detail": f.detail}
                for f in self.failures
            ],
        }


class Pacer:
    """A token bucket on the monotonic clock: on average `rate` records per second, with
    bursts of at most BURST_S worth of records after a stall. No rate: no waiting."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self.clock = clock
        self.capacity = max(1.0, (rate or 0) * BURST_S)
        self.tokens = 1.0
        self.last = clock()

    async def take(self) -> None:
        if self.rate is None:
            return
        self._refill()
        if self.tokens < 1:
            await asyncio.sleep((1 - self.tokens) / self.rate)
            self._refill()
        self.tokens -= 1

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * (self.rate or 0))
        self.last = now


def key_of(line: bytes) -> bytes | None:
    """The Kafka key of a raw line: its entity or conversation id, or None if it has none."""
    try:
        parsed = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested absurdly deep
        return None
    if not isinstance(parsed, dict):
        return None
    subject = parsed.get("entity") or parsed.get("conversation_id")
    return message_key(subject) if isinstance(subject, str) and subject else None


def strip_line_end(line: bytes) -> bytes:
    """The record a line holds: the line without its terminator (nothing else is touched)."""
    line = line[:-1] if line.endswith(b"\n") else line
    return line[:-1] if line.endswith(b"\r") else line


async def replay(
    settings: Settings,
    source: Source,
    lines: Iterable[bytes],
    *,
    rate: float | None,
    on_progress: Progress | None = None,
) -> ReplayReport:
    """Send each non-blank line as one record to `source`'s topic; returns what happened."""
    topic = topic_name(settings, source)
    report = ReplayReport(topics=[topic], target_rate=rate)

    def records() -> Iterator[Record]:
        for number, raw in enumerate(lines, start=1):
            value = strip_line_end(raw)
            if not value.strip():
                report.blank += 1
                continue
            yield topic, key_of(value), value, number

    return await _produce(settings, records(), report, rate, on_progress)


async def replay_messages(
    settings: Settings,
    messages: Sequence[InputMessage],
    rate: float | None = None,
    *,
    on_progress: Progress | None = None,
) -> ReplayReport:
    """Send messages (e.g. a generated workload), each to its own source's topic, in order."""
    topics = {m.source: topic_name(settings, m.source) for m in messages}
    report = ReplayReport(topics=sorted(set(topics.values())), target_rate=rate)
    records = (
        (
            topics[m.source],
            message_key(m.entity or m.conversation_id),
            m.model_dump_json().encode(),
            index,
        )
        for index, m in enumerate(messages)
    )
    return await _produce(settings, records, report, rate, on_progress)


async def _produce(
    settings: Settings,
    records: Iterable[Record],
    report: ReplayReport,
    rate: float | None,
    on_progress: Progress | None,
) -> ReplayReport:
    # Paced sends settle ten times a second, so that progress moves smoothly.
    batch = MAX_IN_FLIGHT if rate is None else max(1, min(MAX_IN_FLIGHT, int(rate / 10)))
    await ensure_topics(settings)
    producer = new_producer(settings)
    await producer.start()
    pacer = Pacer(rate)
    started = time.monotonic()
    pending: list[tuple[int, asyncio.Future[object]]] = []
    try:
        for topic, key, value, position in records:
            await pacer.take()
            try:
                pending.append((position, await producer.send(topic, value, key=key)))
            except KafkaError as exc:  # refused before sending: too large, buffer timeout
                report.fail(position, exc)
                if on_progress:
                    on_progress(1)
            if len(pending) >= batch:
                await _settle(pending, report, on_progress)
        await producer.flush()
        await _settle(pending, report, on_progress)
    finally:
        await producer.stop()
    report.elapsed_s = time.monotonic() - started
    return report


async def _settle(
    pending: list[tuple[int, asyncio.Future[object]]],
    report: ReplayReport,
    on_progress: Progress | None,
) -> None:
    """Wait for the sends in flight and count each as sent or failed."""
    results = await asyncio.gather(*(future for _, future in pending), return_exceptions=True)
    for (position, _), result in zip(pending, results, strict=True):
        if isinstance(result, KafkaError):
            report.fail(position, result)
        elif isinstance(result, BaseException):
            raise result
        else:
            report.sent += 1
    if on_progress and pending:
        on_progress(len(pending))
    pending.clear()
