"""Feedback labelling in Postgres: the queue of predictions most worth a human look, leases
that keep two labellers off the same item, verdicts, gold labels, and how far each
labeller can be trusted.

The queue serves each labeller the scored messages it has not judged yet, least confident
first (see `confidence`), balanced across (source, predicted sentiment) so that one busy
source cannot fill it. A served item is leased to its labeller for a while; the lease is
taken with one INSERT ... ON CONFLICT DO UPDATE ... WHERE, so that two labellers asking at
once never get the same item. Gold items are served like any other: nothing shows them.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.db import connection_errors
from storage.exceptions import StorageError
from storage.tables import FeedbackRow, GoldLabelRow, LabelLeaseRow, Message, Prediction
from tonewatch.contracts import RISK_LABELS, SENTIMENT_LABELS, Feedback

T = TypeVar("T")

# The queue picks from this many times `limit` of the least confident items, so that
# balancing has other groups to choose from without ranking a whole tenant in Python.
POOL_FACTOR: Final = 10
RISK_THRESHOLD: Final = 0.5
_FEEDBACK_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "tonewatch:feedback")


class MessageNotFound(StorageError):
    """No scored message of this tenant under these (source, message id) keys."""

    def __init__(self, keys: Sequence[tuple[str, str]]) -> None:
        self.keys = list(keys)
        super().__init__(f"unknown messages: {', '.join(f'{s}/{m}' for s, m in self.keys[:10])}")


@dataclass(frozen=True)
class PredictionView:
    sentiment: str
    scores: dict[str, float]
    risks: dict[str, float]
    model_version: str


@dataclass(frozen=True)
class QueueItem:
    message_id: str
    source: str
    entity: str | None
    text: str
    ts: datetime
    prediction: PredictionView
    confidence: float
    lease_expires_at: datetime


@dataclass(frozen=True)
class FeedbackRecord:
    feedback_id: str
    tenant: str
    source: str
    message_id: str
    text: str
    labeller: str
    key_id: str
    sentiment: str
    risks: tuple[str, ...]
    prediction_correct: bool
    model_version: str
    created_at: datetime
    updated_at: datetime

    def contract(self) -> Feedback:
        """The record as published on the feedback topic."""
        return Feedback.model_validate(
            {
                "feedback_id": self.feedback_id,
                "tenant": self.tenant,
                "source": self.source,
                "message_id": self.message_id,
                "text": self.text,
                "labeller": self.labeller,
                "sentiment": self.sentiment,
                "risks": list(self.risks),
                "prediction_correct": self.prediction_correct,
                "model_version": self.model_version,
                "created_at": self.created_at,
                "updated_at": self.updated_at,
            }
        )


@dataclass(frozen=True)
class GoldItem:
    message_id: str
    source: str
    sentiment: str
    risks: tuple[str, ...] = ()


@dataclass(frozen=True)
class StatsPolicy:
    """When a labeller is flagged. Each flag needs enough evidence first."""

    min_gold_accuracy: float = 0.6
    min_gold_items: int = 5
    max_share: float = 0.5
    min_labels_for_share: int = 20  # tenant-wide; shares of a handful of labels say nothing
    min_agreement: float = 0.5
    min_agreement_items: int = 5


@dataclass(frozen=True)
class LabellerStats:
    labeller: str
    labels: int
    share: float  # of the tenant's labels
    agreement_with_others: float | None  # None: no item with a majority of other labellers
    agreement_items: int
    gold_accuracy: float | None  # None: no label on a gold item
    gold_labels: int
    flags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Label:
    """One labeller's sentiment on one item (any hashable id), for `compute_stats`."""

    labeller: str
    item: Hashable
    sentiment: str


# --- pure logic ----------------------------------------------------------------------------


def confidence(scores: Mapping[str, float], risks: Mapping[str, float]) -> float:
    """How sure a prediction is, in [0, 1]: its weakest decision.

    That is the smaller of the top sentiment probability and, over the risks, the distance
    of each probability from the 0.5 threshold scaled to [0, 1] (|2p - 1|): a risk at 0.5
    is a coin toss (0), one at 0.01 or 0.99 is near certain (0.98). Missing parts count
    as certain (1). The queue ranks by this in SQL (`_confidence_sql`, the same formula).
    """
    sentiment = max(scores.values(), default=1.0)
    risk = min((abs(2 * p - 1) for p in risks.values()), default=1.0)
    return min(sentiment, risk)


def balance(
    candidates: Sequence[T],
    limit: int,
    group: Callable[[T], tuple[str, str]],
    per_source_cap: int | None = None,
    held: Mapping[str, int] | None = None,
) -> list[T]:
    """Up to `limit` candidates, taken in turns from each (source, label) group.

    `candidates` come most wanted first; each group keeps that order, and groups take
    turns in the order of their most wanted member. At most `per_source_cap` per source
    (counting `held`, what the caller has from each source already). Returns the chosen
    candidates in their original order.
    """
    groups: dict[tuple[str, str], list[int]] = {}
    for index, candidate in enumerate(candidates):
        groups.setdefault(group(candidate), []).append(index)
    per_source: Counter[str] = Counter(held or {})
    chosen: list[int] = []
    queues = list(groups.items())
    while len(chosen) < limit and queues:
        remaining = []
        for (source, label), indexes in queues:
            if len(chosen) == limit:
                break
            if per_source_cap is not None and per_source[source] >= per_source_cap:
                continue
            chosen.append(indexes.pop(0))
            per_source[source] += 1
            if indexes:
                remaining.append(((source, label), indexes))
        queues = remaining
    return [candidates[i] for i in sorted(chosen)]


def compute_stats(
    labels: Iterable[Label], gold: Mapping[Any, str], policy: StatsPolicy = StatsPolicy()
) -> list[LabellerStats]:
    """Per labeller (sorted by name): counts, share, agreement with the others, gold
    accuracy, and flags with reasons.

    Agreement is over the items that other labellers labelled too and whose OTHER labellers
    have a majority (a strict plurality; items where they tie are left out): the fraction
    where this labeller's sentiment is that majority. Gold accuracy is over this labeller's
    labels on gold items. Only sentiments are compared.
    """
    by_item: dict[Hashable, dict[str, str]] = defaultdict(dict)
    for label in labels:
        by_item[label.item][label.labeller] = label.sentiment
    counts: Counter[str] = Counter()
    agree: Counter[str] = Counter()
    shared: Counter[str] = Counter()
    gold_right: Counter[str] = Counter()
    gold_seen: Counter[str] = Counter()
    for item, verdicts in by_item.items():
        for labeller, sentiment in verdicts.items():
            counts[labeller] += 1
            if item in gold:
                gold_seen[labeller] += 1
                gold_right[labeller] += sentiment == gold[item]
            majority = _majority(s for other, s in verdicts.items() if other != labeller)
            if majority is not None:
                shared[labeller] += 1
                agree[labeller] += sentiment == majority
    total = sum(counts.values())
    stats = []
    for labeller in sorted(counts):
        share = counts[labeller] / total
        agreement = agree[labeller] / shared[labeller] if shared[labeller] else None
        accuracy = gold_right[labeller] / gold_seen[labeller] if gold_seen[labeller] else None
        flags = []
        if (
            accuracy is not None
            and gold_seen[labeller] >= policy.min_gold_items
            and accuracy < policy.min_gold_accuracy
        ):
            flags.append(
                f"gold accuracy {accuracy:.2f} below {policy.min_gold_accuracy} "
                f"over {gold_seen[labeller]} gold items"
            )
        if len(counts) > 1 and total >= policy.min_labels_for_share and share > policy.max_share:
            flags.append(f"labels {share:.0%} of the tenant's labels (flooding)")
        if (
            agreement is not None
            and shared[labeller] >= policy.min_agreement_items
            and agreement < policy.min_agreement
        ):
            flags.append(
                f"agrees with others {agreement:.2f} of the time over {shared[labeller]} items"
            )
        stats.append(
            LabellerStats(
                labeller=labeller,
                labels=counts[labeller],
                share=share,
                agreement_with_others=agreement,
                agreement_items=shared[labeller],
                gold_accuracy=accuracy,
                gold_labels=gold_seen[labeller],
                flags=flags,
            )
        )
    return stats


def _majority(sentiments: Iterable[str]) -> str | None:
    ranked = Counter(sentiments).most_common(2)
    if not ranked or (len(ranked) == 2 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def feedback_id(tenant: str, source: str, message_id: str, labeller: str) -> str:
    """Stable per (message, labeller): a changed verdict keeps its id (and moves updated_at)."""
    return str(uuid.uuid5(_FEEDBACK_NAMESPACE, f"{tenant}/{source}/{message_id}/{labeller}"))


# --- Postgres ------------------------------------------------------------------------------


def _latest_prediction() -> Any:
    """Each message's newest prediction, as a LATERAL subquery."""
    return (
        select(Prediction.sentiment, Prediction.scores, Prediction.risks, Prediction.model_version)
        .where(Prediction.message_pk == Message.id)
        .order_by(Prediction.scored_at.desc(), Prediction.id.desc())
        .limit(1)
        .lateral("latest")
    )


def _confidence_sql(latest: Any) -> sa.ColumnElement[float]:
    """`confidence` in SQL, so that Postgres ranks a whole tenant (GREATEST and LEAST skip
    the NULLs of missing labels; COALESCE makes an absent part certain, as there)."""
    sentiment = func.greatest(*(latest.c.scores[s].as_float() for s in SENTIMENT_LABELS))
    risk = func.least(*(func.abs(2 * latest.c.risks[r].as_float() - 1) for r in RISK_LABELS))
    return func.least(func.coalesce(sentiment, 1.0), func.coalesce(risk, 1.0))


@dataclass(frozen=True)
class _Candidate:
    pk: int
    source: str
    message_id: str
    entity: str | None
    text: str
    ts: datetime
    prediction: PredictionView

    @property
    def group(self) -> tuple[str, str]:
        return (self.source, self.prediction.sentiment)


def _candidates_query(tenant: str, labeller: str) -> sa.Select[Any]:
    latest = _latest_prediction()
    judged = select(FeedbackRow.id).where(
        FeedbackRow.message_pk == Message.id, FeedbackRow.labeller == labeller
    )
    query = (
        select(
            Message.id,
            Message.source,
            Message.message_id,
            Message.entity,
            Message.text,
            Message.ts,
            latest.c.sentiment,
            latest.c.scores,
            latest.c.risks,
            latest.c.model_version,
        )
        .join(latest, sa.true())
        .where(Message.tenant == tenant, ~judged.exists())
        .order_by(_confidence_sql(latest), Message.id)
    )
    return query


def _queue_lock(tenant: str) -> int:
    """The key of the tenant's queue lock (a Postgres advisory lock takes a signed int64)."""
    digest = hashlib.sha256(f"tonewatch:label-queue:{tenant}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _candidate(row: Any) -> _Candidate:
    return _Candidate(
        pk=row.id,
        source=row.source,
        message_id=row.message_id,
        entity=row.entity,
        text=row.text,
        ts=row.ts,
        prediction=PredictionView(row.sentiment, row.scores, row.risks, row.model_version),
    )


async def _claim(
    conn: AsyncConnection, tenant: str, labeller: str, pks: Sequence[int], lease_s: int
) -> dict[int, datetime]:
    """Lease these messages to `labeller`, all or some: an unexpired lease of another
    labeller is left alone. Returns {message pk: lease expiry} of those now held."""
    if not pks:
        return {}
    rows = (
        select(
            Message.id,
            sa.literal(labeller, sa.Text),
            func.now() + sa.literal(timedelta(seconds=lease_s), sa.Interval),
        )
        .where(Message.id.in_(pks), Message.tenant == tenant)
        .order_by(Message.id)  # one lock order for every claimer: no deadlocks
    )
    leases = insert(LabelLeaseRow).from_select(["message_pk", "labeller", "expires_at"], rows)
    query = leases.on_conflict_do_update(
        index_elements=[LabelLeaseRow.message_pk],
        set_={"labeller": leases.excluded.labeller, "expires_at": leases.excluded.expires_at},
        where=sa.or_(
            LabelLeaseRow.expires_at < func.now(),
            LabelLeaseRow.labeller == leases.excluded.labeller,
        ),
    ).returning(LabelLeaseRow.message_pk, LabelLeaseRow.expires_at)
    return {pk: expires for pk, expires in (await conn.execute(query)).all()}


async def claim_queue(
    engine: AsyncEngine,
    tenant: str,
    labeller: str,
    limit: int,
    lease_s: int,
    per_source_cap: int | None = None,
) -> list[QueueItem]:
    """Lease up to `limit` of the tenant's scored messages to `labeller` and return them,
    least confident first.

    Served: messages this labeller has not judged and no other labeller holds an
    unexpired lease on. The labeller's own unexpired leases come back first (renewed);
    the rest is balanced across (source, predicted sentiment) from the least confident
    POOL_FACTOR x limit candidates, at most `per_source_cap` per source when given.
    """
    query = _candidates_query(tenant, labeller)
    own = query.join(LabelLeaseRow, LabelLeaseRow.message_pk == Message.id).where(
        LabelLeaseRow.labeller == labeller, LabelLeaseRow.expires_at >= func.now()
    )
    leased = select(LabelLeaseRow.message_pk).where(
        LabelLeaseRow.message_pk == Message.id, LabelLeaseRow.expires_at >= func.now()
    )
    free = query.where(~leased.exists())
    with connection_errors():
        async with engine.begin() as conn:
            # One claimer per tenant at a time, so that each sees the leases taken before it
            # and concurrent labellers all get full lists. Disjoint they would be anyway:
            # that is the upsert's WHERE.
            await conn.execute(select(func.pg_advisory_xact_lock(_queue_lock(tenant))))
            mine = [_candidate(r) for r in (await conn.execute(own.limit(limit))).all()]
            wanted = limit - len(mine)
            pool: list[_Candidate] = []
            if wanted > 0:
                rows = (await conn.execute(free.limit(POOL_FACTOR * wanted))).all()
                pool = [_candidate(r) for r in rows]
            held = Counter(c.source for c in mine)
            chosen = mine + balance(pool, wanted, lambda c: c.group, per_source_cap, held)
            leases = await _claim(conn, tenant, labeller, [c.pk for c in chosen], lease_s)
    items = [
        QueueItem(
            message_id=c.message_id,
            source=c.source,
            entity=c.entity,
            text=c.text,
            ts=c.ts,
            prediction=c.prediction,
            confidence=confidence(c.prediction.scores, c.prediction.risks),
            lease_expires_at=leases[c.pk],
        )
        for c in chosen
        if c.pk in leases
    ]
    return sorted(items, key=lambda item: item.confidence)


def resolve_labels(
    prediction: PredictionView | None,
    sentiment: str | None,
    risks: Sequence[str] | None,
    prediction_correct: bool,
) -> tuple[str, tuple[str, ...]]:
    """The (sentiment, risks) a verdict stands for: the prediction's own (its sentiment and
    the risks at p >= 0.5) when it was correct, else the labeller's. Omitted risks mean
    that none applies. Risks come back unique, in RISK_LABELS order."""
    if prediction_correct:
        if sentiment is not None or risks is not None:
            raise ValueError("a 'prediction correct' verdict takes no labels of its own")
        if prediction is None:
            raise ValueError("the message has no prediction to confirm")
        sentiment = prediction.sentiment
        risks = [r for r, p in prediction.risks.items() if p >= RISK_THRESHOLD]
    if sentiment is None:
        raise ValueError("give a sentiment, or say that the prediction was correct")
    if sentiment not in SENTIMENT_LABELS or not set(risks or ()) <= set(RISK_LABELS):
        raise ValueError("unknown sentiment or risk label")
    return sentiment, tuple(r for r in RISK_LABELS if r in set(risks or ()))


async def record_feedback(
    engine: AsyncEngine,
    tenant: str,
    labeller: str,
    key_id: str,
    message_id: str,
    source: str,
    sentiment: str | None,
    risks: Sequence[str] | None,
    prediction_correct: bool,
) -> FeedbackRecord:
    """Store a labeller's verdict on a message and release their lease on it.

    One row per (message, labeller): a second verdict replaces the first. `updated_at`
    moves only when the labels change, so a retried request yields the very same record.
    Raises MessageNotFound (no such scored message in this tenant) or ValueError (see
    resolve_labels).
    """
    latest = _latest_prediction()
    found = (
        select(
            Message.id,
            Message.text,
            latest.c.sentiment,
            latest.c.scores,
            latest.c.risks,
            latest.c.model_version,
        )
        .join(latest, sa.true())
        .where(Message.tenant == tenant, Message.source == source, Message.message_id == message_id)
    )
    with connection_errors():
        async with engine.begin() as conn:
            row = (await conn.execute(found)).first()
            if row is None:
                raise MessageNotFound([(source, message_id)])
            prediction = PredictionView(row.sentiment, row.scores, row.risks, row.model_version)
            labels = resolve_labels(prediction, sentiment, risks, prediction_correct)
            values = {
                "feedback_id": feedback_id(tenant, source, message_id, labeller),
                "tenant": tenant,
                "message_pk": row.id,
                "labeller": labeller,
                "key_id": key_id,
                "sentiment": labels[0],
                "risks": list(labels[1]),
                "prediction_correct": prediction_correct,
                "model_version": row.model_version,
                "created_at": func.now(),
                "updated_at": func.now(),
            }
            new = insert(FeedbackRow).values(**values)
            changed = sa.or_(
                FeedbackRow.sentiment != new.excluded.sentiment,
                FeedbackRow.risks != new.excluded.risks,
                FeedbackRow.prediction_correct != new.excluded.prediction_correct,
            )
            upsert = new.on_conflict_do_update(
                index_elements=[FeedbackRow.message_pk, FeedbackRow.labeller],
                set_={
                    "key_id": new.excluded.key_id,
                    "sentiment": new.excluded.sentiment,
                    "risks": new.excluded.risks,
                    "prediction_correct": new.excluded.prediction_correct,
                    "model_version": new.excluded.model_version,
                    "updated_at": sa.case((changed, func.now()), else_=FeedbackRow.updated_at),
                },
            ).returning(FeedbackRow.created_at, FeedbackRow.updated_at)
            created_at, updated_at = (await conn.execute(upsert)).one()
            await conn.execute(
                delete(LabelLeaseRow).where(
                    LabelLeaseRow.message_pk == row.id, LabelLeaseRow.labeller == labeller
                )
            )
    return FeedbackRecord(
        feedback_id=values["feedback_id"],
        tenant=tenant,
        source=source,
        message_id=message_id,
        text=row.text,
        labeller=labeller,
        key_id=key_id,
        sentiment=labels[0],
        risks=labels[1],
        prediction_correct=prediction_correct,
        model_version=row.model_version,
        created_at=created_at,
        updated_at=updated_at,
    )


async def feedback_since(
    engine: AsyncEngine, tenant: str, since: datetime | None = None, limit: int = 100
) -> list[FeedbackRecord]:
    """The tenant's verdicts last changed after `since` (all when None), oldest change
    first: page on with the last one's updated_at."""
    columns = (
        FeedbackRow.feedback_id, FeedbackRow.tenant, Message.source, Message.message_id,
        Message.text, FeedbackRow.labeller, FeedbackRow.key_id, FeedbackRow.sentiment,
        FeedbackRow.risks, FeedbackRow.prediction_correct, FeedbackRow.model_version,
        FeedbackRow.created_at, FeedbackRow.updated_at,
    )  # fmt: skip
    query = (
        select(*columns)
        .join(Message, Message.id == FeedbackRow.message_pk)
        .where(FeedbackRow.tenant == tenant)
        .order_by(FeedbackRow.updated_at, FeedbackRow.id)
        .limit(limit)
    )
    if since is not None:
        query = query.where(FeedbackRow.updated_at > since)
    with connection_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
    # The columns are named as FeedbackRecord's fields.
    return [FeedbackRecord(**{**row, "risks": tuple(row["risks"])}) for row in rows]


async def set_gold(engine: AsyncEngine, tenant: str, items: Sequence[GoldItem]) -> int:
    """Mark messages of the tenant as gold (their known labels), replacing earlier gold.
    All or nothing: raises MessageNotFound, writing nothing, if any message is unknown."""
    if not items:
        return 0
    labels = [resolve_labels(None, item.sentiment, item.risks, False) for item in items]
    keys = {(item.source, item.message_id) for item in items}
    query = select(Message.source, Message.message_id, Message.id).where(
        Message.tenant == tenant,
        sa.tuple_(Message.source, Message.message_id).in_(sorted(keys)),
    )
    with connection_errors():
        async with engine.begin() as conn:
            pks = {(s, m): pk for s, m, pk in (await conn.execute(query)).all()}
            missing = sorted(keys - pks.keys())
            if missing:
                raise MessageNotFound(missing)
            # The last word on a message wins; rows go in key order (no deadlocks).
            rows = {
                pks[item.source, item.message_id]: {
                    "message_pk": pks[item.source, item.message_id],
                    "tenant": tenant,
                    "sentiment": sentiment,
                    "risks": list(risks),
                }
                for item, (sentiment, risks) in zip(items, labels, strict=True)
            }
            upsert = insert(GoldLabelRow)
            upsert = upsert.on_conflict_do_update(
                index_elements=[GoldLabelRow.message_pk],
                set_={"sentiment": upsert.excluded.sentiment, "risks": upsert.excluded.risks},
            )
            await conn.execute(upsert, [rows[pk] for pk in sorted(rows)])
    return len(rows)


async def labeller_stats(
    engine: AsyncEngine, tenant: str, policy: StatsPolicy = StatsPolicy()
) -> list[LabellerStats]:
    """`compute_stats` over the tenant's verdicts and gold labels (the retrain worker uses
    it to weight or leave out labellers)."""
    labels = select(FeedbackRow.labeller, FeedbackRow.message_pk, FeedbackRow.sentiment).where(
        FeedbackRow.tenant == tenant
    )
    gold = select(GoldLabelRow.message_pk, GoldLabelRow.sentiment).where(
        GoldLabelRow.tenant == tenant
    )
    with connection_errors():
        async with engine.connect() as conn:
            found = [Label(*row) for row in (await conn.execute(labels)).all()]
            known: dict[int, str] = {pk: s for pk, s in (await conn.execute(gold)).all()}
    return compute_stats(found, known, policy)
