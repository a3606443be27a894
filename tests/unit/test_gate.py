"""retrain.gate: each promotion rule, and the reasons (with figures) a challenger is refused."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from retrain import gate
from retrain.evaluate import DatasetMetrics
from retrain.gate import Decision, GatePolicy, decide
from tonewatch.config import Settings

pytestmark = pytest.mark.unit

POLICY = GatePolicy(gold_tolerance=0.02, ece_tolerance=0.02, feedback_risk_tolerance=0.03)


def metrics(
    name: str,
    f1: float | None = 0.8,
    risk: float | None = 0.6,
    ece: float | None = 0.05,
    n: int = 100,
) -> DatasetMetrics:
    return DatasetMetrics(
        dataset=name,
        examples=n,
        sentiment_examples=n if f1 is not None else 0,
        sentiment_macro_f1=f1,
        sentiment_ece=ece,
        risk_macro_f1=risk,
    )


def gold(**changes: DatasetMetrics) -> dict[str, DatasetMetrics]:
    base = {"seed": metrics("seed"), "airline": metrics("airline", f1=0.7, risk=None)}
    return base | changes


def judge(
    champion_gold: dict[str, DatasetMetrics] | None = None,
    challenger_gold: dict[str, DatasetMetrics] | None = None,
    champion_feedback: DatasetMetrics | None = None,
    challenger_feedback: DatasetMetrics | None = None,
) -> Decision:
    """A challenger better on feedback and equal elsewhere, unless told otherwise."""
    return decide(
        champion_gold if champion_gold is not None else gold(),
        challenger_gold if challenger_gold is not None else gold(),
        champion_feedback or metrics("feedback", f1=0.70, n=40),
        challenger_feedback or metrics("feedback", f1=0.75, n=40),
        POLICY,
    )


def test_a_better_challenger_is_promoted() -> None:
    decision = judge()
    assert decision.promote
    (reason,) = decision.reasons
    assert "sentiment macro-F1 0.750 against 0.700" in reason
    assert "2 gold sets" in reason


def test_the_figures_are_json_with_both_models() -> None:
    figures = json.loads(json.dumps(judge().figures))
    assert figures["feedback"] == {
        "examples": 40,
        "sentiment_examples": 40,
        "champion": {"sentiment_macro_f1": 0.7, "risk_macro_f1": 0.6, "sentiment_ece": 0.05},
        "challenger": {"sentiment_macro_f1": 0.75, "risk_macro_f1": 0.6, "sentiment_ece": 0.05},
    }
    assert set(figures["gold"]) == {"seed", "airline"}
    assert figures["policy"]["gold_tolerance"] == 0.02


@pytest.mark.parametrize("f1", [0.70, 0.69])
def test_the_challenger_must_be_strictly_better_on_feedback(f1: float) -> None:
    decision = judge(challenger_feedback=metrics("feedback", f1=f1, n=40))
    assert not decision.promote
    assert decision.reasons == [
        f"feedback sentiment macro-F1 {f1:.3f} is not above the champion's 0.700"
    ]


def test_feedback_risk_may_not_drop_beyond_its_tolerance() -> None:
    within = judge(challenger_feedback=metrics("feedback", f1=0.75, risk=0.57, n=40))
    assert within.promote
    beyond = judge(challenger_feedback=metrics("feedback", f1=0.75, risk=0.56, n=40))
    assert beyond.reasons == [
        "feedback risk macro-F1 0.560 is more than 0.03 below the champion's 0.600"
    ]
    # No risk labels in the feedback: nothing to compare.
    assert judge(
        champion_feedback=metrics("feedback", f1=0.7, risk=None, n=40),
        challenger_feedback=metrics("feedback", f1=0.75, risk=None, n=40),
    ).promote


def test_too_little_held_out_feedback_judges_nothing() -> None:
    decision = judge(
        champion_feedback=metrics("feedback", f1=0.5, n=19),
        challenger_feedback=metrics("feedback", f1=0.9, n=19),
    )
    assert not decision.promote
    assert decision.reasons == [
        "the held-out feedback has 19 labelled examples, too few to judge (at least 20)"
    ]
    empty = DatasetMetrics(dataset="feedback", examples=0)
    decision = judge(champion_feedback=empty, challenger_feedback=empty)
    assert decision.reasons == [
        "the held-out feedback has 0 labelled examples, too few to judge (at least 20)"
    ]


def test_every_gold_set_must_hold_within_the_tolerance() -> None:
    exactly = judge(challenger_gold=gold(seed=metrics("seed", f1=0.78)))
    assert exactly.promote
    decision = judge(
        challenger_gold=gold(
            seed=metrics("seed", f1=0.77, risk=0.5),
            airline=metrics("airline", f1=0.65, risk=None),
        )
    )
    assert not decision.promote
    assert decision.reasons == [
        "gold set airline: sentiment macro-F1 0.650 is more than 0.02 below the champion's 0.700",
        "gold set seed: sentiment macro-F1 0.770 is more than 0.02 below the champion's 0.800",
        "gold set seed: risk macro-F1 0.500 is more than 0.02 below the champion's 0.600",
    ]


def test_a_gold_set_evaluated_for_one_model_only_refuses() -> None:
    decision = judge(challenger_gold={"seed": metrics("seed")})
    assert decision.reasons == ["gold set airline was not evaluated for both models"]
    assert not judge(champion_gold={}, challenger_gold={}).promote
    assert judge(champion_gold={}, challenger_gold={}).reasons == ["no gold set was evaluated"]


def test_a_metric_missing_for_one_model_refuses() -> None:
    decision = judge(challenger_gold=gold(seed=metrics("seed", risk=None)))
    assert decision.reasons == ["gold set seed: risk macro-F1 is missing for one model"]


def test_models_judged_on_different_data_refuse() -> None:
    decision = judge(challenger_gold=gold(seed=metrics("seed", n=99)))
    assert decision.reasons == [
        "gold set seed: the models were judged on different data "
        "(100 examples for the champion, 99 for the challenger)"
    ]


def test_calibration_may_not_degrade() -> None:
    within = judge(
        challenger_gold=gold(seed=metrics("seed", ece=0.07)),
        challenger_feedback=metrics("feedback", f1=0.75, ece=0.07, n=40),
    )
    assert within.promote
    decision = judge(
        challenger_gold=gold(seed=metrics("seed", ece=0.08)),
        challenger_feedback=metrics("feedback", f1=0.75, ece=0.10, n=40),
    )
    assert decision.reasons == [
        "feedback sentiment ECE 0.100 is above the champion's 0.050 + 0.02: calibration degraded",
        "gold set seed: sentiment ECE 0.080 is above the champion's 0.050 + 0.02: "
        "calibration degraded",
    ]


def test_every_failed_rule_is_reported() -> None:
    decision = judge(
        challenger_gold=gold(airline=metrics("airline", f1=0.5, risk=None, ece=0.3)),
        challenger_feedback=metrics("feedback", f1=0.6, n=10),
    )
    assert not decision.promote
    assert [reason.split(" is ")[0] for reason in decision.reasons] == [
        "the held-out feedback has 10 labelled examples, too few to judge (at least 20)",
        "the held-out feedback: the models were judged on different data (40 examples for "
        "the champion, 10 for the challenger)",
        "feedback sentiment macro-F1 0.600",
        "gold set airline: sentiment macro-F1 0.500",
        "gold set airline: sentiment ECE 0.300",
    ]


def test_a_better_champion_on_gold_still_lets_a_challenger_within_tolerance_through() -> None:
    better = {name: replace(m, sentiment_macro_f1=0.9) for name, m in gold().items()}
    worse = {name: replace(m, sentiment_macro_f1=0.88) for name, m in gold().items()}
    assert judge(champion_gold=better, challenger_gold=worse).promote


def test_policy_from_settings() -> None:
    settings = Settings(retrain_gold_tolerance=0.05, retrain_ece_tolerance=0.01)
    policy = GatePolicy.from_settings(settings)
    assert (policy.gold_tolerance, policy.ece_tolerance) == (0.05, 0.01)
    assert policy.feedback_risk_tolerance == 0.05
    assert policy.min_feedback_examples == 20


def test_a_round_of_only_untrusted_labels_stops_before_training() -> None:
    excluded = {"t/carol": "gold accuracy 0.10 below 0.6", "t/dave": "gold accuracy 0.12"}
    (reason,) = gate.untrusted_round(160, 0, excluded)
    assert "none of the 160 labels" in reason
    assert "t/carol (gold accuracy 0.10 below 0.6)" in reason
    assert gate.untrusted_round(160, 1, excluded) == []
    assert gate.untrusted_round(0, 0, excluded) == []
