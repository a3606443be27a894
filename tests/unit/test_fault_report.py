"""How `bench faults` folds the suite's per-test lines into one row per RELIABILITY.md id."""

from __future__ import annotations

from typing import Any

import pytest

from tonewatch.bench.faults import RELIABILITY_IDS, markdown, summarize

pytestmark = pytest.mark.unit


def line(ids: list[str], outcome: str = "passed", **figures: Any) -> dict[str, Any]:
    return {"ids": ids, "test": f"t::{'_'.join(ids)}", "outcome": outcome, "seconds": 2.0,
            "figures": figures}  # fmt: skip


def test_counts_add_up_timings_take_the_worst_and_every_id_has_a_row() -> None:
    latency = {"before": 40.0, "during": 900.0, "after": 60.0}
    rows = [
        line(["F1"], lost_messages=0, missed_alerts=0, dup_alerts_postgres=0,
             dup_alerts_topic=2, dup_webhooks=1, reprocessed=3, detect_s=0.5, recover_s=4.0,
             p99_ms=latency),
        line(["F1"], lost_messages=0, missed_alerts=1, dup_alerts_postgres=0,
             dup_alerts_topic=0, dup_webhooks=0, reprocessed=2, detect_s=1.5, recover_s=2.0,
             p99_ms=latency | {"during": 1200.0}),
        line(["M1", "M2", "F6"]),
    ]  # fmt: skip
    table = {row["id"]: row for row in summarize(rows)}
    assert list(table) == list(RELIABILITY_IDS)
    f1 = table["F1"]
    assert f1["passed"]
    counts = ("lost_messages", "missed_alerts", "dup_alerts_postgres", "dup_alerts_redis",
              "dup_alerts_topic", "dup_webhooks", "reprocessed")  # fmt: skip
    assert [f1[name] for name in counts] == [0, 1, 0, None, 2, 1, 5]
    assert (f1["detect_s"], f1["recover_s"], f1["drain_s"]) == (1.5, 4.0, None)
    assert f1["p99_ms"] == {"before": 40.0, "during": 1200.0, "after": 60.0}
    assert f1["seconds"] == 4.0
    assert table["M2"]["passed"]
    assert table["M2"]["lost_messages"] is None
    # No test, no pass.
    assert not table["F3"]["passed"]
    assert table["F3"]["tests"] == []


def test_a_failure_or_only_skips_fail_the_id() -> None:
    rows = [
        line(["F4"]),
        line(["F4"], outcome="failed"),
        line(["B1", "B2"], outcome="skipped"),  # B2 was not asked for: no row
    ]
    table = {row["id"]: row for row in summarize(rows, only=["F4", "B1"])}
    assert list(table) == ["F4", "B1"]
    assert not table["F4"]["passed"]
    assert not table["B1"]["passed"]
    assert table["B1"]["skipped"] == 1


def test_the_markdown_table_has_a_row_per_id() -> None:
    f2 = line(["F2"], lost_messages=0, missed_alerts=0, dup_alerts_postgres=0,
              dup_alerts_redis=1, dup_alerts_topic=0)  # fmt: skip
    text = markdown(summarize([f2], only=["F2", "F3"]))
    rows = text.splitlines()
    assert len(rows) == 4
    assert rows[2].startswith("| F2 | pass | 0 | 0 | 0 / 1 / 0 | - |")
    assert rows[3].startswith("| F3 | **FAIL** |")
