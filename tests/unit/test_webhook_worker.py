"""The pure parts of the webhook worker (streams/webhook_worker.py): parsing the alerts
topic, fan-out to subscriptions, and the retry delays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from storage.subscriptions import Subscription
from streams.webhook_worker import fan_out, parse_alerts
from streams.webhooks import event_id
from tonewatch.contracts import Alert

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def alert(n: int, tenant: str = "t1", **fields: Any) -> Alert:
    values: dict[str, Any] = {
        "dedup_key": f"{tenant}/news/ACME/negative_spike/{n}", "tenant": tenant,
        "kind": "negative_spike", "severity": "high", "source": "news", "entity": "ACME",
        "window_start": NOW - timedelta(minutes=1), "window_end": NOW, "figures": {},
        "evidence": [], "summary": "s", "model_version": "1", "created_at": NOW,
    } | fields  # fmt: skip
    return Alert.model_validate(values)


def subscription(sub_id: str, tenant: str = "t1", **fields: Any) -> Subscription:
    values: dict[str, Any] = {
        "id": sub_id, "tenant": tenant, "name": sub_id, "sources": (), "entities": (),
        "kinds": (), "min_severity": "low", "channel": "webhook", "url": "https://h.example/",
        "enabled": True, "disabled_reason": None, "created_at": NOW - timedelta(hours=1),
        "updated_at": NOW - timedelta(hours=1),
    } | fields  # fmt: skip
    return Subscription(**values)


def bad_records() -> float:
    return REGISTRY.get_sample_value("tonewatch_webhook_bad_records_total") or 0.0


def test_bad_records_are_skipped_and_counted() -> None:
    before = bad_records()
    good = alert(1)
    values = [b"{not json", None, b'{"dedup_key": "x"}', good.model_dump_json().encode(), b"\xff"]
    assert parse_alerts(values) == [good]
    assert bad_records() - before == 4


def test_fan_out_makes_one_delivery_per_matching_subscription_with_one_event_id() -> None:
    every = subscription("s-all")
    critical = subscription("s-crit", min_severity="critical")
    glob = subscription("s-glob", entities=("AC*",), sources=("news",))
    theirs = subscription("s-theirs", tenant="t2")
    alerts = [alert(1), alert(2, severity="critical"), alert(3, entity="OTHER")]
    made = fan_out(alerts, [every, critical, glob, theirs])
    pairs = sorted((d.subscription_id, d.event_id) for d in made)
    keys = {n: event_id(f"t1/news/ACME/negative_spike/{n}") for n in (1, 2, 3)}
    assert pairs == sorted(
        [("s-all", keys[1]), ("s-all", keys[2]), ("s-all", keys[3]),
         ("s-crit", keys[2]), ("s-glob", keys[1]), ("s-glob", keys[2])]
    )  # fmt: skip
    for delivery in made:
        assert delivery.tenant == "t1"
        assert delivery.payload["type"] == "alert.created"
        assert delivery.payload["id"] == delivery.event_id
        assert delivery.payload["data"]["tenant"] == "t1"


def test_alerts_older_than_a_subscription_are_not_sent_to_it() -> None:
    fresh = subscription("s-new", created_at=NOW)
    made = fan_out(
        [alert(1, created_at=NOW - timedelta(hours=2)),  # before it, beyond the skew
         alert(2, created_at=NOW - timedelta(seconds=30)),  # within the clock skew
         alert(3, created_at=NOW + timedelta(seconds=1))],
        [fresh],
    )  # fmt: skip
    assert sorted(d.payload["data"]["dedup_key"][-1] for d in made) == ["2", "3"]
