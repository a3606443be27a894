"""The promotion gate: whether a challenger may replace the champion, and why (not).

Both models are measured on the same data: the frozen gold sets (each base dataset's test
split, see retrain.gold) and the held-out feedback (the newest resolved labels, see
retrain.labels). The challenger is promoted only if
1. it is better on the held-out feedback: sentiment macro-F1 strictly higher, and risk
   macro-F1 (where there is one) not lower by more than a tolerance;
2. it is no worse than `gold_tolerance` on every gold set (sentiment and risk macro-F1);
3. its calibration did not degrade: sentiment ECE at most the champion's plus
   `ece_tolerance`, on the feedback and on every gold set;
and the held-out feedback is large enough to judge at all. Every failed rule is a reason,
with its figures; a promotion has a single reason saying why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    # Types only: the gate is pure and must not pull in torch through retrain.evaluate.
    from retrain.evaluate import DatasetMetrics
    from tonewatch.config import Settings

# Rounding slack, so that a loss of exactly the tolerance is within it.
_SLACK: Final = 1e-9


@dataclass(frozen=True)
class GatePolicy:
    gold_tolerance: float = 0.02  # macro-F1 the challenger may lose on a gold set
    ece_tolerance: float = 0.02  # calibration error it may add
    feedback_risk_tolerance: float = 0.02  # risk macro-F1 it may lose on the feedback
    min_feedback_examples: int = 20  # fewer held-out labels than this judge nothing

    @classmethod
    def from_settings(cls, settings: Settings) -> GatePolicy:
        return cls(
            gold_tolerance=settings.retrain_gold_tolerance,
            ece_tolerance=settings.retrain_ece_tolerance,
            feedback_risk_tolerance=settings.retrain_gold_tolerance,
        )


@dataclass
class Decision:
    promote: bool
    reasons: list[str]  # every failed rule; or, when promoted, the one reason why
    figures: dict[str, Any]  # JSON-ready: what each rule compared, and the policy


def decide(
    champion: Mapping[str, DatasetMetrics],
    challenger: Mapping[str, DatasetMetrics],
    feedback_champion: DatasetMetrics,
    feedback_challenger: DatasetMetrics,
    policy: GatePolicy = GatePolicy(),
) -> Decision:
    """Promote the challenger or not; `champion` and `challenger` are the gold sets'
    metrics by set name, the feedback metrics are those of the held-out feedback."""
    reasons = _feedback_reasons(feedback_champion, feedback_challenger, policy)
    if not champion and not challenger:
        reasons.append("no gold set was evaluated")
    for name in sorted(champion.keys() | challenger.keys()):
        if name not in champion or name not in challenger:
            reasons.append(f"gold set {name} was not evaluated for both models")
            continue
        reasons += _gold_reasons(name, champion[name], challenger[name], policy)
    figures = {
        "feedback": _figures(feedback_champion, feedback_challenger),
        "gold": {
            name: _figures(champion[name], challenger[name])
            for name in sorted(champion.keys() & challenger.keys())
        },
        "policy": asdict(policy),
    }
    if reasons:
        return Decision(False, reasons, figures)
    why = (
        f"the challenger beats the champion on the held-out feedback (sentiment macro-F1 "
        f"{feedback_challenger.sentiment_macro_f1:.3f} against "
        f"{feedback_champion.sentiment_macro_f1:.3f}), stays within {policy.gold_tolerance:g} "
        f"on {len(champion)} gold set{'s' * (len(champion) != 1)} and is calibrated as well"
    )
    return Decision(True, [why], figures)


def _feedback_reasons(
    champion: DatasetMetrics, challenger: DatasetMetrics, policy: GatePolicy
) -> list[str]:
    reasons = []
    size = challenger.sentiment_examples
    if size < policy.min_feedback_examples:
        reasons.append(
            f"the held-out feedback has {size} labelled examples, too few to judge "
            f"(at least {policy.min_feedback_examples})"
        )
    reasons += _same_data("the held-out feedback", champion, challenger)
    new, old = challenger.sentiment_macro_f1, champion.sentiment_macro_f1
    if new is not None and old is not None and new <= old:
        reasons.append(
            f"feedback sentiment macro-F1 {new:.3f} is not above the champion's {old:.3f}"
        )
    risk_new, risk_old = challenger.risk_macro_f1, champion.risk_macro_f1
    reasons += _lost("feedback risk macro-F1", risk_new, risk_old, policy.feedback_risk_tolerance)
    reasons += _worse_calibrated("feedback", champion, challenger, policy)
    return reasons


def _gold_reasons(
    name: str, champion: DatasetMetrics, challenger: DatasetMetrics, policy: GatePolicy
) -> list[str]:
    label = f"gold set {name}"
    reasons = _same_data(label, champion, challenger)
    for metric in ("sentiment_macro_f1", "risk_macro_f1"):
        new, old = getattr(challenger, metric), getattr(champion, metric)
        if (new is None) != (old is None):
            reasons.append(f"{label}: {_words(metric)} is missing for one model")
        reasons += _lost(f"{label}: {_words(metric)}", new, old, policy.gold_tolerance)
    reasons += _worse_calibrated(f"{label}:", champion, challenger, policy)
    return reasons


def _same_data(label: str, champion: DatasetMetrics, challenger: DatasetMetrics) -> list[str]:
    if (champion.examples, champion.sentiment_examples) == (
        challenger.examples,
        challenger.sentiment_examples,
    ):
        return []
    return [
        f"{label}: the models were judged on different data ({champion.examples} examples "
        f"for the champion, {challenger.examples} for the challenger)"
    ]


def _lost(what: str, new: float | None, old: float | None, tolerance: float) -> list[str]:
    if new is None or old is None or new >= old - tolerance - _SLACK:
        return []
    return [f"{what} {new:.3f} is more than {tolerance:g} below the champion's {old:.3f}"]


def _worse_calibrated(
    label: str, champion: DatasetMetrics, challenger: DatasetMetrics, policy: GatePolicy
) -> list[str]:
    new, old = challenger.sentiment_ece, champion.sentiment_ece
    if new is None or old is None or new <= old + policy.ece_tolerance + _SLACK:
        return []
    return [
        f"{label} sentiment ECE {new:.3f} is above the champion's {old:.3f} "
        f"+ {policy.ece_tolerance:g}: calibration degraded"
    ]


def _figures(champion: DatasetMetrics, challenger: DatasetMetrics) -> dict[str, Any]:
    def pick(m: DatasetMetrics) -> dict[str, float | None]:
        return {
            "sentiment_macro_f1": m.sentiment_macro_f1,
            "risk_macro_f1": m.risk_macro_f1,
            "sentiment_ece": m.sentiment_ece,
        }

    return {
        "examples": challenger.examples,
        "sentiment_examples": challenger.sentiment_examples,
        "champion": pick(champion),
        "challenger": pick(challenger),
    }


def _words(metric: str) -> str:
    return {"sentiment_macro_f1": "sentiment macro-F1", "risk_macro_f1": "risk macro-F1"}[metric]


def untrusted_round(new_labels: int, trusted_new: int, excluded: Mapping[str, str]) -> list[str]:
    """Reasons to stop a round before it trains: labels arrived since the last round, but
    none of them from a labeller we trust (say, all from colluders the gold items caught).
    Retraining on what is left would learn nothing new; the attempt is the signal."""
    if not new_labels or trusted_new:
        return []
    who = "; ".join(f"{name} ({why})" for name, why in sorted(excluded.items()))
    return [
        f"none of the {new_labels} labels since the last round comes from a trusted "
        f"labeller; excluded: {who}"
    ]
