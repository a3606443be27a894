"""The ledger of RELIABILITY.md: counts of what a run lost or doubled, against what the
generator planted (the expected set E) and what Postgres, the record, holds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from streams.generator import ExpectedAlert
from tonewatch.contracts import Alert


@dataclass(frozen=True)
class LedgerReport:
    expected: int
    raised: int
    lost: int
    """Expected alerts (tenant, source, subject, kind) that Postgres does not have."""
    dup_alerts: int
    """Alerts beyond the first for one incident: the same kind, subject and window."""
    unexpected: int
    """Alerts on something the generator did not plant (false alarms, or model opinions)."""
    missing: list[ExpectedAlert]

    def as_dict(self) -> dict[str, object]:
        return {
            "expected": self.expected, "raised": self.raised, "lost": self.lost,
            "dup_alerts": self.dup_alerts, "unexpected": self.unexpected,
            "missing": [f"{m.tenant}/{m.source}/{m.subject}/{m.kind}" for m in self.missing],
        }  # fmt: skip


def reconcile(expected: Iterable[ExpectedAlert], alerts: Iterable[Alert]) -> LedgerReport:
    expected = set(expected)
    alerts = list(alerts)
    keys = [ExpectedAlert(a.tenant, a.source, a.entity or "", a.kind) for a in alerts]
    raised = set(keys)
    incidents = Counter((a.tenant, a.source, a.entity, a.kind, a.window_start) for a in alerts)
    missing = sorted(expected - raised, key=lambda e: (e.tenant, e.source, e.subject, e.kind))
    return LedgerReport(
        expected=len(expected),
        raised=len(alerts),
        lost=len(missing),
        dup_alerts=sum(n - 1 for n in incidents.values()),
        unexpected=sum(1 for key in keys if key not in expected),
        missing=missing,
    )
