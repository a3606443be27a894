"""The labelling queue's pure logic: confidence, balancing, verdict labels, labeller figures."""

from __future__ import annotations

import pytest

from storage.labeling import (
    Label,
    PredictionView,
    StatsPolicy,
    balance,
    compute_stats,
    confidence,
    feedback_id,
    resolve_labels,
)

pytestmark = pytest.mark.unit

SURE = {"negative": 0.05, "neutral": 0.05, "positive": 0.9}


def test_confidence_is_the_top_sentiment_probability_when_risks_are_clear() -> None:
    assert confidence(SURE, {"fraud": 0.01, "churn": 0.98}) == pytest.approx(0.9)
    assert confidence({"negative": 0.4, "neutral": 0.35, "positive": 0.25}, {}) == 0.4


def test_confidence_is_the_weakest_risk_decision_when_that_is_lower() -> None:
    assert confidence(SURE, {"fraud": 0.5}) == 0.0
    assert confidence(SURE, {"fraud": 0.3, "churn": 0.99}) == pytest.approx(0.4)
    assert confidence(SURE, {"fraud": 0.7}) == pytest.approx(0.4)  # symmetric around 0.5


def test_confidence_counts_missing_parts_as_certain() -> None:
    assert confidence({}, {}) == 1.0
    assert confidence({}, {"toxicity": 0.25}) == pytest.approx(0.5)


def test_confidence_orders_uncertain_before_sure() -> None:
    ranked = sorted(
        [(SURE, {}), (SURE, {"fraud": 0.55}), ({"neutral": 0.5, "negative": 0.5}, {})],
        key=lambda p: confidence(*p),
    )
    assert ranked[0][1] == {"fraud": 0.55}
    assert ranked[-1] == (SURE, {})


def _group(item: tuple[str, str, int]) -> tuple[str, str]:
    return (item[0], item[1])


def test_balance_takes_turns_across_groups() -> None:
    # Ten uncertain news items first, then a few from other groups: news must not fill it.
    pool = [("news", "negative", i) for i in range(10)]
    pool += [("reviews", "positive", 10), ("chats", "neutral", 11), ("news", "positive", 12)]
    chosen = balance(pool, 4, _group)
    assert chosen == [
        ("news", "negative", 0),
        ("reviews", "positive", 10),
        ("chats", "neutral", 11),
        ("news", "positive", 12),
    ]
    more = balance(pool, 6, _group)
    assert [c[2] for c in more] == [0, 1, 2, 10, 11, 12]  # second round: news/negative again


def test_balance_keeps_order_within_a_group_and_stops_when_dry() -> None:
    pool = [("news", "negative", 0), ("news", "negative", 1), ("reviews", "negative", 2)]
    assert balance(pool, 10, _group) == pool
    assert balance(pool, 0, _group) == []
    assert balance([], 3, _group) == []


def test_balance_caps_each_source() -> None:
    pool = [("news", s, i) for i, s in enumerate(["negative", "neutral", "positive"] * 3)]
    pool += [("reviews", "negative", 20)]
    chosen = balance(pool, 6, _group, per_source_cap=2)
    assert [c[2] for c in chosen] == [0, 1, 20]
    # What the caller holds already counts against the cap.
    assert balance(pool, 6, _group, per_source_cap=2, held={"news": 2}) == [pool[-1]]


def test_resolve_labels_copies_a_correct_prediction() -> None:
    prediction = PredictionView(
        "negative", {"negative": 0.8}, {"fraud": 0.5, "churn": 0.49, "toxicity": 0.9}, "v1"
    )
    assert resolve_labels(prediction, None, None, True) == ("negative", ("fraud", "toxicity"))
    assert resolve_labels(prediction, "positive", ["churn", "fraud", "churn"], False) == (
        "positive",
        ("fraud", "churn"),
    )
    assert resolve_labels(prediction, "neutral", None, False) == ("neutral", ())
    with pytest.raises(ValueError, match="takes no labels"):
        resolve_labels(prediction, "positive", None, True)
    with pytest.raises(ValueError, match="give a sentiment"):
        resolve_labels(prediction, None, ["fraud"], False)
    with pytest.raises(ValueError, match="unknown"):
        resolve_labels(prediction, "angry", None, False)


def test_feedback_id_is_stable_per_message_and_labeller() -> None:
    one = feedback_id("t1", "news", "m1", "alice")
    assert one == feedback_id("t1", "news", "m1", "alice")
    others = {
        feedback_id("t2", "news", "m1", "alice"),
        feedback_id("t1", "reviews", "m1", "alice"),
        feedback_id("t1", "news", "m2", "alice"),
        feedback_id("t1", "news", "m1", "bob"),
    }
    assert one not in others
    assert len(others) == 4


def _labels(table: dict[str, dict[str, str]]) -> list[Label]:
    return [Label(who, item, s) for item, row in table.items() for who, s in row.items()]


# 3 labellers, 5 items, gold on m1 (negative) and m2 (positive).
TABLE = {
    "m1": {"ann": "negative", "ben": "negative", "cat": "positive"},
    "m2": {"ann": "positive", "ben": "positive", "cat": "negative"},
    "m3": {"ann": "neutral", "ben": "neutral", "cat": "neutral"},
    "m4": {"ann": "negative", "ben": "negative"},
    "m5": {"ann": "positive"},
}
GOLD = {"m1": "negative", "m2": "positive"}


def test_stats_agreement_gold_accuracy_and_shares() -> None:
    stats = {s.labeller: s for s in compute_stats(_labels(TABLE), GOLD)}
    assert [s.labels for s in stats.values()] == [5, 4, 3]
    assert stats["ann"].share == pytest.approx(5 / 12)
    # ann: m1 and m2 left out (ben and cat tie), m3 and m4 agree, m5 has no one else.
    assert (stats["ann"].agreement_with_others, stats["ann"].agreement_items) == (1.0, 2)
    assert (stats["ben"].agreement_with_others, stats["ben"].agreement_items) == (1.0, 2)
    # cat: the others agree on m1, m2 and m3; cat matches only m3.
    assert stats["cat"].agreement_with_others == pytest.approx(1 / 3)
    assert stats["cat"].agreement_items == 3
    assert (stats["ann"].gold_accuracy, stats["ann"].gold_labels) == (1.0, 2)
    assert (stats["cat"].gold_accuracy, stats["cat"].gold_labels) == (0.0, 2)
    # Too little evidence for the default policy to flag anyone.
    assert all(not s.flags for s in stats.values())


def test_stats_flags_with_reasons() -> None:
    policy = StatsPolicy(min_gold_items=2, min_agreement_items=3, min_labels_for_share=10,
                         max_share=0.4)  # fmt: skip
    stats = {s.labeller: s for s in compute_stats(_labels(TABLE), GOLD, policy)}
    assert stats["ann"].flags == ["labels 42% of the tenant's labels (flooding)"]
    assert stats["ben"].flags == []
    assert stats["cat"].flags == [
        "gold accuracy 0.00 below 0.6 over 2 gold items",
        "agrees with others 0.33 of the time over 3 items",
    ]


def test_stats_without_overlap_or_gold_say_none() -> None:
    (alone,) = compute_stats([Label("solo", 1, "neutral"), Label("solo", 2, "neutral")], {})
    assert alone.agreement_with_others is None
    assert alone.gold_accuracy is None
    assert (alone.labels, alone.share, alone.gold_labels) == (2, 1.0, 0)
    # A single labeller is never "flooding", however many labels.
    many = [Label("solo", i, "neutral") for i in range(100)]
    assert compute_stats(many, {})[0].flags == []
