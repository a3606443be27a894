"""The ledger: each counter is driven above 0 by a crafted run, and stays 0 on a clean one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streams.generator import ExpectedAlert
from tonewatch.bench.ledger import COUNTERS, DUPLICATES, Observed, combined, reconcile
from tonewatch.contracts import Alert

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SPIKE = ExpectedAlert("t1", "news", "ACME", "negative_spike")
RISK = ExpectedAlert("t1", "reviews", "blender", "message_risk")
PLANTED = {SPIKE, RISK}


def alert(planted: ExpectedAlert, window: int = 0, suffix: str = "") -> Alert:
    start = NOW + timedelta(minutes=window)
    key = f"{planted.tenant}/{planted.source}/{planted.subject}/{planted.kind}/{window}{suffix}"
    values: dict[str, Any] = {
        "dedup_key": key, "tenant": planted.tenant, "kind": planted.kind, "severity": "high",
        "source": planted.source, "entity": planted.subject, "window_start": start,
        "window_end": start + timedelta(minutes=1), "figures": {}, "evidence": [],
        "summary": "s", "model_version": "1", "created_at": start,
    }  # fmt: skip
    return Alert.model_validate(values)


def clean(**changes: Any) -> Observed:
    """A run where every sink holds each of the two planted alerts once."""
    alerts = [alert(SPIKE), alert(RISK)]
    keys = [a.dedup_key for a in alerts]
    values: dict[str, Any] = {
        "produced": ["m1", "m2", "m3"], "stored": ["m1", "m2", "m3"], "alerts": alerts,
        "redis": keys, "topic": keys, "webhooks": ["w1", "w2"], "sse": keys,
    } | changes  # fmt: skip
    return Observed(**values)


def test_a_clean_run_counts_nothing_and_is_exact() -> None:
    ledger = reconcile(PLANTED, clean())
    assert {name: getattr(ledger, name) for name in COUNTERS} == dict.fromkeys(COUNTERS, 0)
    assert (ledger.alert_precision, ledger.alert_recall) == (1.0, 1.0)
    assert ledger.failures() == []


def test_a_message_never_stored_is_lost() -> None:
    ledger = reconcile(PLANTED, clean(stored=["m1", "m3", "not-produced"]))
    assert ledger.lost_messages == 1
    assert ledger.failures() == ["lost_messages 1"]


def test_a_planted_alert_not_raised_is_missed_and_lowers_recall() -> None:
    ledger = reconcile(PLANTED, clean(alerts=[alert(SPIKE)]))
    assert (ledger.missed_alerts, ledger.missed) == (1, (RISK,))
    assert (ledger.alert_precision, ledger.alert_recall) == (1.0, 0.5)
    assert ledger.failures() == ["missed_alerts 1 (t1/reviews/blender/message_risk)"]


def test_an_alert_nobody_planted_is_unexpected_and_lowers_precision_only() -> None:
    other = ExpectedAlert("t1", "news", "ZZZ", "volume_spike")
    ledger = reconcile(PLANTED, clean(alerts=[alert(SPIKE), alert(RISK), alert(other)]))
    assert ledger.unexpected_alerts == 1
    assert (ledger.alert_precision, ledger.alert_recall) == (0.6667, 1.0)
    assert ledger.failures() == []  # a model's opinion, not a pipeline fault


def test_one_incident_firing_again_in_a_later_window_is_a_postgres_duplicate() -> None:
    # Distinct dedup keys, so Postgres's unique key let both in: only the ledger sees it.
    again = [alert(SPIKE), alert(SPIKE, window=3), alert(RISK), alert(RISK, suffix="-m9")]
    ledger = reconcile(PLANTED, clean(alerts=again))
    assert ledger.dup_alerts_postgres == 2
    assert (ledger.missed_alerts, ledger.unexpected_alerts) == (0, 0)
    assert ledger.failures() == ["dup_alerts_postgres 2"]


@pytest.mark.parametrize(
    ("sink", "counter"),
    [("redis", "dup_alerts_redis"), ("topic", "dup_alerts_topic"), ("webhooks", "dup_webhooks"),
     ("sse", "dup_sse")],
)  # fmt: skip
def test_an_entry_seen_twice_at_a_sink_is_that_sinks_duplicate(sink: str, counter: str) -> None:
    seen = list(getattr(clean(), sink))
    ledger = reconcile(PLANTED, clean(**{sink: [*seen, seen[0], seen[0]]}))
    assert getattr(ledger, counter) == 2
    assert ledger.failures() == [f"{counter} 2"]
    assert ledger.failures(tolerated=[counter]) == []


def test_a_sink_not_watched_is_unknown_not_zero() -> None:
    ledger = reconcile(PLANTED, clean(redis=None, topic=None, webhooks=None, sse=None))
    assert all(getattr(ledger, name) is None for name in DUPLICATES[1:])
    assert ledger.as_dict()["dup_sse"] is None


def test_no_alert_at_all_has_no_precision() -> None:
    ledger = reconcile(PLANTED, clean(alerts=[]))
    assert (ledger.alert_precision, ledger.alert_recall, ledger.missed_alerts) == (None, 0.0, 2)


def test_only_duplicates_can_be_tolerated() -> None:
    with pytest.raises(ValueError, match="missed_alerts"):
        reconcile(PLANTED, clean()).failures(tolerated=["missed_alerts"])


def test_runs_combine_by_adding_counts_and_rating_the_sums() -> None:
    clean_run = reconcile(PLANTED, clean())
    faulty = reconcile(PLANTED, clean(alerts=[alert(SPIKE)], redis=None, stored=["m1"]))
    both = combined([clean_run, faulty])
    assert (both.produced, both.lost_messages, both.missed_alerts) == (6, 2, 1)
    assert (both.expected_alerts, both.raised_alerts) == (4, 3)
    assert both.dup_alerts_redis is None  # unwatched in one of the runs
    assert (both.alert_precision, both.alert_recall) == (1.0, 0.75)
    assert both.missed == (RISK,)
    assert both.failures() == [
        "lost_messages 2",
        "missed_alerts 1 (t1/reviews/blender/message_risk)",
    ]
