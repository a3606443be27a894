"""One micro-batch of a source topic, from raw records to stored predictions and alerts.

The faust agents in `streams/app.py` are thin loops around `Pipeline.process`. The order of
the steps is what makes delivery at-least-once with exactly-once effects:

1. Parse and validate; a bad record becomes a dead letter (Kafka + Postgres).
2. Look the messages up in Postgres by (tenant, source, id). A message stored from another
   offset is a duplicate and is dropped; one stored from this very offset is our own
   redelivery (a crash or rebalance before the commit): its stored prediction is reused.
3. Classify the new ones through Triton, waiting while Triton is down (backpressure).
4. Store messages + predictions, then publish them to `scored`.
5. Load the batch's entity states (Postgres, one query), apply each message in offset
   order unless its entity's state has already seen that offset, and save the changed
   states (one statement). Alerts are written before the states that remember them, so a
   crash between the two repeats the alerts (no-ops by their dedup keys), never loses one.

Nothing raises out of `process` except cancellation: outages are waited out, and the agent
turns anything unexpected into per-record retries and dead letters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncEngine

from inference.client import Prediction, TritonClassifier
from inference.exceptions import InferenceError, InferenceUnavailable
from storage import entity_states
from storage import messages as message_store
from storage.exceptions import DatabaseUnavailable
from streams import metrics
from streams.alert_sink import AlertSink
from streams.deadletter import DeadLetters
from streams.exceptions import InvalidMessage
from streams.retry import until_done
from streams.rules import EntityState, RuleConfig, already_applied, message_risk, observe, state_key
from streams.topics import Producer, message_key, publish
from streams.validation import parse
from tonewatch.contracts import DeadLetter, InputMessage, Origin, ScoredMessage, Source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Record:
    """One consumed Kafka record, as raw bytes."""

    origin: Origin
    key: bytes | None
    value: bytes | None


@dataclass
class BatchResult:
    scored: int = 0
    redelivered: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    alerts: list[str] = field(default_factory=list)
    """Dedup keys of the alerts that were new in Postgres."""


class Pipeline:
    """Processes the micro-batches of one source topic."""

    def __init__(
        self,
        source: Source,
        *,
        classifier: TritonClassifier,
        engine: AsyncEngine,
        producer: Producer,
        scored_topic: str,
        alert_sink: AlertSink,
        dead_letters: DeadLetters,
        rules: RuleConfig,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.source: Source = source
        self.classifier = classifier
        self.engine = engine
        self.producer = producer
        self.scored_topic = scored_topic
        self.alert_sink = alert_sink
        self.dead_letters = dead_letters
        self.rules = rules
        self.clock = clock

    async def process(self, records: Sequence[Record]) -> BatchResult:
        began = time.monotonic()
        result = BatchResult()
        metrics.BATCH_SIZE.labels(self.source).observe(len(records))
        parsed: list[tuple[Record, InputMessage]] = []
        letters: list[DeadLetter] = []
        for record in records:
            try:
                parsed.append((record, parse(record.value, self.source)))
            except InvalidMessage as exc:
                letters.append(self._letter(record, exc.reason, exc.detail))
        fresh, plan = await self._deduplicate(parsed, result)
        scored, failed = await self._score(fresh)
        letters += failed
        by_origin = {s.origin: s for s in scored}
        ordered = [
            stored or by_origin[record.origin]
            for record, stored in plan
            if stored is not None or record.origin in by_origin
        ]
        outgoing = [(message_key(s.message.subject), s.model_dump_json().encode()) for s in ordered]
        # Independent writes, all done before any rule runs or the batch is acknowledged.
        await asyncio.gather(
            self.dead_letters.send(letters, self.source),
            until_done(
                lambda: message_store.record(self.engine, scored),
                what="Postgres messages",
                retry_on=(DatabaseUnavailable,),
            ),
            until_done(
                lambda: publish(self.producer, self.scored_topic, outgoing),
                what="scored topic",
                retry_on=(KafkaError,),
            ),
        )
        result.dead_letters = len(letters)
        result.alerts = await self._apply_all(ordered)
        result.scored = len(scored)
        for outcome, n in (
            ("scored", result.scored), ("redelivered", result.redelivered),
            ("duplicate", result.duplicates), ("dead_letter", result.dead_letters),
        ):  # fmt: skip
            metrics.MESSAGES.labels(self.source, outcome).inc(n)
        metrics.BATCH_SECONDS.labels(self.source).observe(time.monotonic() - began)
        return result

    async def dead_letter_unprocessable(self, record: Record, error: BaseException) -> None:
        """The last resort for a record whose processing keeps failing for an unknown reason."""
        letter = self._letter(record, "processing_error", f"{type(error).__name__}: {error}")
        await self.dead_letters.send([letter], self.source)

    async def _deduplicate(
        self, parsed: list[tuple[Record, InputMessage]], result: BatchResult
    ) -> tuple[list[tuple[Record, InputMessage]], list[tuple[Record, ScoredMessage | None]]]:
        """Split into new messages and the plan of what to apply, in record order.

        The plan holds each record with its stored verdict (a redelivery) or None (new).
        """
        if not parsed:
            return [], []
        keys = {message.key for _, message in parsed}
        known = await until_done(
            lambda: message_store.find(self.engine, keys),
            what="Postgres message lookup",
            retry_on=(DatabaseUnavailable,),
        )
        fresh: list[tuple[Record, InputMessage]] = []
        plan: list[tuple[Record, ScoredMessage | None]] = []
        taken: set[tuple[str, str, str]] = set()
        for record, message in parsed:
            stored = known.get(message.key)
            if stored is not None and stored.origin == record.origin:
                result.redelivered += 1
                plan.append((record, stored))
            elif stored is not None or message.key in taken:
                result.duplicates += 1
                log.info("duplicate message %s from %s dropped", message.key, record.origin)
            else:
                taken.add(message.key)
                fresh.append((record, message))
                plan.append((record, None))
        return fresh, plan

    async def _score(
        self, fresh: list[tuple[Record, InputMessage]]
    ) -> tuple[list[ScoredMessage], list[DeadLetter]]:
        verdicts = await self._classify([message.text for _, message in fresh])
        now = self.clock()
        scored: list[ScoredMessage] = []
        failed: list[DeadLetter] = []
        for (record, message), verdict in zip(fresh, verdicts, strict=True):
            if isinstance(verdict, InferenceError):
                failed.append(self._letter(record, "inference_error", str(verdict)))
                continue
            scored.append(
                ScoredMessage(
                    message=message,
                    origin=record.origin,
                    sentiment=verdict.sentiment,
                    scores=verdict.scores,
                    risks=verdict.risks,
                    model_version=verdict.model_version,
                    scored_at=now,
                )
            )
        return scored, failed

    async def _classify(self, texts: list[str]) -> list[Prediction | InferenceError]:
        """Predictions in order; waits while Triton is unavailable. A batch that Triton
        refuses for another reason is split, so that only the offending texts fail."""
        if not texts:
            return []
        try:
            return list(
                await until_done(
                    lambda: self.classifier.classify(texts),
                    what="Triton",
                    retry_on=(InferenceUnavailable,),
                    on_wait=metrics.WAITED.labels("triton").inc,
                )
            )
        except InferenceError as exc:
            if len(texts) == 1:
                return [exc]
            log.warning(
                "Triton refused a batch of %d (%s); classifying one by one", len(texts), exc
            )
            verdicts: list[Prediction | InferenceError] = []
            for text in texts:
                verdicts += await self._classify([text])
            return verdicts

    async def _apply_all(self, scored: list[ScoredMessage]) -> list[str]:
        """Run the rules over the messages in order; returns the new alerts' dedup keys."""
        keys = {key for s in scored if (key := state_key(s)) is not None}
        stored = await until_done(
            lambda: entity_states.load(self.engine, keys),
            what="Postgres entity states",
            retry_on=(DatabaseUnavailable,),
        )
        states = {key: EntityState.from_json(stored.get(key)) for key in keys}
        changed: set[tuple[str, str, str]] = set()
        new: list[str] = []
        for message in scored:
            key = state_key(message)
            if key is None:
                alerts = message_risk(message, self.rules, self.clock())
            elif already_applied(states[key], message):
                continue
            else:
                states[key], alerts = observe(states[key], message, self.rules, self.clock())
                changed.add(key)
            new += [alert.dedup_key for alert in await self.alert_sink.emit(alerts)]
        await until_done(
            lambda: entity_states.save(self.engine, {k: states[k].to_json() for k in changed}),
            what="Postgres entity states",
            retry_on=(DatabaseUnavailable,),
        )
        return new

    def _letter(self, record: Record, reason: str, detail: str) -> DeadLetter:
        return DeadLetter.of(reason, detail, record.origin, record.value, record.key)
