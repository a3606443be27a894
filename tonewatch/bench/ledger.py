"""The ledger of RELIABILITY.md: what a run lost, missed, doubled or raised unasked, against
what it produced and what the generator planted.

Every counter is named for what it counts:
- `lost_messages`: produced, never stored in Postgres (data loss);
- `missed_alerts`: planted, not raised. With the stub model, whose verdicts are an oracle,
  this is pipeline loss; with a real model it is the model's recall;
- `unexpected_alerts`: raised, not planted (with a real model, false alarms);
- `dup_alerts_postgres`: alerts beyond the first for one planted incident and kind (fired
  again in a later window after state was lost, a second `message_risk`). Postgres's unique
  dedup key already drops exact copies, so this counts what the key cannot see;
- `dup_alerts_redis`, `dup_alerts_topic`: entries of the tenant's recent list, and records
  on the `alerts` topic, beyond one per dedup key;
- `dup_webhooks`: deliveries beyond one per `webhook-id` at a receiver;
- `dup_sse`: live-feed events beyond one per alert.
A sink that a run did not watch is None, never 0: an unwatched sink proves nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Final

from storage.cache import AlertCache
from streams.generator import ExpectedAlert
from streams.topics import record_keys
from tonewatch.config import Settings
from tonewatch.contracts import Alert

DUPLICATES: Final = (
    "dup_alerts_postgres",
    "dup_alerts_redis",
    "dup_alerts_topic",
    "dup_webhooks",
    "dup_sse",
)
COUNTERS: Final = ("lost_messages", "missed_alerts", "unexpected_alerts", *DUPLICATES)


@dataclass(frozen=True)
class Observed:
    """What one run produced and what each sink holds; None for a sink it did not watch."""

    produced: Collection[str]
    """Ids of the messages sent."""
    stored: Collection[str]
    """Ids of the messages stored in Postgres."""
    alerts: Sequence[Alert]
    """The tenant's alerts in Postgres, the record."""
    redis: Sequence[str] | None = None
    """Dedup keys of the entries of the tenant's recent-alerts list."""
    topic: Sequence[str] | None = None
    """Dedup keys of the tenant's records on the `alerts` topic."""
    webhooks: Sequence[str] | None = None
    """The `webhook-id` of every delivery a receiver accepted or refused as a repeat."""
    sse: Sequence[str] | None = None
    """Dedup keys of every live-feed event."""


@dataclass(frozen=True)
class Ledger:
    produced: int
    lost_messages: int
    expected_alerts: int
    raised_alerts: int
    missed_alerts: int
    unexpected_alerts: int
    dup_alerts_postgres: int
    dup_alerts_redis: int | None
    dup_alerts_topic: int | None
    dup_webhooks: int | None
    dup_sse: int | None
    alert_precision: float | None
    """Planted alerts raised over planted alerts raised plus unexpected ones."""
    alert_recall: float | None
    """Planted alerts raised over planted alerts."""
    missed: tuple[ExpectedAlert, ...]

    def failures(self, tolerated: Collection[str] = ()) -> list[str]:
        """One phrase per counter above 0 that means loss or doubling (`unexpected_alerts` is
        a figure of the model, not of the pipeline), except those in `tolerated`: sinks that a
        test knows to be at-least-once, whose consumers drop the copies."""
        unknown = set(tolerated) - set(DUPLICATES)
        if unknown:
            raise ValueError(f"only duplicate counters can be tolerated, not {sorted(unknown)}")
        missed = f" ({', '.join(_named(m) for m in self.missed)})" if self.missed else ""
        details = {"missed_alerts": missed}
        judged = ("lost_messages", "missed_alerts", *DUPLICATES)
        return [
            f"{name} {getattr(self, name)}{details.get(name, '')}"
            for name in judged
            if getattr(self, name) and name not in tolerated
        ]

    def as_dict(self) -> dict[str, object]:
        figures = asdict(self)
        figures["missed"] = [_named(m) for m in self.missed]
        return figures


def planted_as(alert: Alert) -> ExpectedAlert:
    """The alert as the generator names what it planted: by subject and kind, not window."""
    return ExpectedAlert(alert.tenant, alert.source, alert.entity or "", alert.kind)


async def listed_keys(settings: Settings, tenant: str) -> list[str]:
    """Dedup keys of every entry of the tenant's recent-alerts list in Redis."""
    cache = AlertCache.from_settings(settings)
    try:
        return [a.dedup_key for a in await cache.recent(tenant, limit=None)]
    finally:
        await cache.close()


async def published_keys(settings: Settings, tenant: str) -> list[str]:
    """Dedup keys of every record of the tenant's on the `alerts` topic (keys start with
    the tenant: see streams.rules)."""
    keys = [key.decode() for key in await record_keys(settings, "alerts") if key]
    return [key for key in keys if key.startswith(f"{tenant}/")]


def reconcile(expected: Iterable[ExpectedAlert], observed: Observed) -> Ledger:
    expected = frozenset(expected)
    produced = set(observed.produced)
    keys = [planted_as(a) for a in observed.alerts]
    per_key = Counter(keys)
    found = expected & per_key.keys()
    unexpected = sum(n for key, n in per_key.items() if key not in expected)
    raised_planted = len(found)
    return Ledger(
        produced=len(produced),
        lost_messages=len(produced - set(observed.stored)),
        expected_alerts=len(expected),
        raised_alerts=len(keys),
        missed_alerts=len(expected) - raised_planted,
        unexpected_alerts=unexpected,
        dup_alerts_postgres=sum(per_key[key] - 1 for key in found),
        dup_alerts_redis=_repeats(observed.redis),
        dup_alerts_topic=_repeats(observed.topic),
        dup_webhooks=_repeats(observed.webhooks),
        dup_sse=_repeats(observed.sse),
        alert_precision=_ratio(raised_planted, raised_planted + unexpected),
        alert_recall=_ratio(raised_planted, len(expected)),
        missed=tuple(sorted(expected - found, key=_named)),
    )


def combined(ledgers: Sequence[Ledger]) -> Ledger:
    """Several runs' ledgers as one: counts add up (a sink unwatched in any run is None), and
    precision and recall are those of the sums."""
    if not ledgers:
        raise ValueError("nothing to combine")

    def total(name: str) -> int | None:
        values = [getattr(ledger, name) for ledger in ledgers]
        return None if None in values else sum(values)

    counts = {name: total(name) for name in ("produced", "expected_alerts", "raised_alerts",
                                              *COUNTERS)}  # fmt: skip
    expected, unexpected = counts["expected_alerts"] or 0, counts["unexpected_alerts"] or 0
    found = expected - (counts["missed_alerts"] or 0)
    return Ledger(
        **counts,  # type: ignore[arg-type]
        alert_precision=_ratio(found, found + unexpected),
        alert_recall=_ratio(found, expected),
        missed=tuple(m for ledger in ledgers for m in ledger.missed),
    )


def _repeats(ids: Sequence[str] | None) -> int | None:
    return None if ids is None else len(ids) - len(set(ids))


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _named(alert: ExpectedAlert) -> str:
    return f"{alert.tenant}/{alert.source}/{alert.subject}/{alert.kind}"
