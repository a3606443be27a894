"""The promotion gate: whether a challenger may replace the champion, and why (not).

Both models are judged as they are served, through the int8 ONNX graph that the export
produces (fp32 figures of the torch models are shown beside, never judged), on the same
data: the frozen gold sets (each base dataset's test split, see retrain.gold) and the
held-out feedback (the labelled texts in a fixed hash share, see retrain.labels). The
challenger is promoted only if
1. it is better on the held-out feedback beyond noise: its sentiment macro-F1 gain over the
   champion has a one-sided paired-bootstrap lower bound above 0 at `gain_confidence`
   (both models' answers resampled together, example by example), on at least
   `min_feedback_examples` examples; and risk macro-F1 (where there is one) not lower by
   more than a tolerance;
2. it is no worse than `gold_tolerance` on every gold set (sentiment and risk macro-F1);
3. its calibration did not degrade: sentiment ECE at most the champion's plus
   `ece_tolerance`, on the feedback and on every gold set.
Every failed rule is a reason, with its figures; a promotion has a single reason saying why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from retrain.metrics import confusion_matrix, macro_f1, paired_bootstrap_gain
from tonewatch.contracts import SENTIMENT_LABELS

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
    min_feedback_examples: int = 30  # fewer held-out labels than this judge nothing
    gain_confidence: float = 0.95  # one-sided, of the held-out macro-F1 gain
    resamples: int = 2000  # of the paired bootstrap (another seed moves its bound ~0.01)

    @classmethod
    def from_settings(cls, settings: Settings) -> GatePolicy:
        return cls(
            gold_tolerance=settings.retrain_gold_tolerance,
            ece_tolerance=settings.retrain_ece_tolerance,
            feedback_risk_tolerance=settings.retrain_gold_tolerance,
            min_feedback_examples=settings.retrain_min_holdout,
            gain_confidence=settings.retrain_gain_confidence,
        )


@dataclass(frozen=True)
class Evaluation:
    """One model's metrics: each gold set's, by name, and the held-out feedback's."""

    gold: Mapping[str, DatasetMetrics]
    feedback: DatasetMetrics


@dataclass(frozen=True)
class HeldOutAnswers:
    """The held-out feedback's true sentiments and each model's answers to them, example by
    example (indices into SENTIMENT_LABELS): what the paired test resamples."""

    truth: Sequence[int]
    champion: Sequence[int]
    challenger: Sequence[int]

    def __post_init__(self) -> None:
        if not len(self.truth) == len(self.champion) == len(self.challenger):
            raise ValueError("the held-out answers must be paired, one of each per example")


@dataclass
class Decision:
    promote: bool
    reasons: list[str]  # every failed rule; or, when promoted, the one reason why
    figures: dict[str, Any]  # JSON-ready: what each rule compared, and the policy


@dataclass(frozen=True)
class _HeldOut:
    """Each model's sentiment macro-F1 on the held-out feedback, and the gain's lower bound
    at the policy's confidence (None: not tested)."""

    champion_f1: float
    challenger_f1: float
    lower_bound: float | None

    @property
    def gain(self) -> float:
        return self.challenger_f1 - self.champion_f1


def decide(
    champion: Evaluation,
    challenger: Evaluation,
    answers: HeldOutAnswers,
    policy: GatePolicy = GatePolicy(),
    fp32: tuple[Evaluation, Evaluation] | None = None,
) -> Decision:
    """Promote the challenger or not, from both models' served metrics and their answers on
    the held-out feedback. `fp32` (champion, challenger) is shown in the figures only."""
    held = _held_out(answers, policy)
    reasons = _feedback_reasons(champion.feedback, challenger.feedback, held, answers, policy)
    if not champion.gold and not challenger.gold:
        reasons.append("no gold set was evaluated")
    for name in sorted(champion.gold.keys() | challenger.gold.keys()):
        if name not in champion.gold or name not in challenger.gold:
            reasons.append(f"gold set {name} was not evaluated for both models")
            continue
        reasons += _gold_reasons(name, champion.gold[name], challenger.gold[name], policy)
    figures = _all_figures(champion, challenger, fp32)
    figures["feedback"]["gain"] = {
        "sentiment_macro_f1": held.gain if held else None,
        "lower_bound": held.lower_bound if held else None,
        "confidence": policy.gain_confidence,
        "examples": len(answers.truth),
    }
    figures["policy"] = asdict(policy)
    if reasons or held is None or held.lower_bound is None:
        return Decision(False, reasons, figures)
    sets = len(champion.gold)
    why = (
        f"the challenger beats the champion on the held-out feedback as served (sentiment "
        f"macro-F1 {held.challenger_f1:.3f} against {held.champion_f1:.3f}, a gain of "
        f"{held.gain:+.3f} whose {policy.gain_confidence:.0%} lower bound is "
        f"{held.lower_bound:+.3f} over {len(answers.truth)} examples), stays within "
        f"{policy.gold_tolerance:g} on {sets} gold set{'s' * (sets != 1)} and is calibrated "
        f"as well"
    )
    return Decision(True, [why], figures)


def _held_out(answers: HeldOutAnswers, policy: GatePolicy) -> _HeldOut | None:
    """Both models' held-out macro-F1, and the gain's lower bound when the challenger is
    ahead on enough examples to test it; None without held-out examples."""
    if not answers.truth:
        return None
    truth, old, new = (
        np.asarray(a, dtype=np.int64) for a in (answers.truth, answers.champion, answers.challenger)
    )
    classes = len(SENTIMENT_LABELS)
    held = _HeldOut(
        macro_f1(confusion_matrix(truth, old, classes)),
        macro_f1(confusion_matrix(truth, new, classes)),
        None,
    )
    if held.gain <= 0 or len(truth) < policy.min_feedback_examples:
        return held
    gains = paired_bootstrap_gain(truth, old, new, classes, policy.resamples)
    lower = float(np.quantile(gains, 1 - policy.gain_confidence))
    return replace(held, lower_bound=lower)


def _feedback_reasons(
    champion: DatasetMetrics,
    challenger: DatasetMetrics,
    held: _HeldOut | None,
    answers: HeldOutAnswers,
    policy: GatePolicy,
) -> list[str]:
    reasons = []
    size = len(answers.truth)
    if size < policy.min_feedback_examples:
        reasons.append(
            f"the held-out feedback has {size} labelled examples, too few to judge "
            f"(at least {policy.min_feedback_examples})"
        )
    reasons += _same_data("the held-out feedback", champion, challenger)
    if held is not None and held.gain <= 0:
        reasons.append(
            f"feedback sentiment macro-F1 {held.challenger_f1:.3f} is not above the "
            f"champion's {held.champion_f1:.3f}"
        )
    elif held is not None and held.lower_bound is not None and held.lower_bound <= 0:
        reasons.append(
            f"feedback sentiment macro-F1 gain {held.gain:+.3f} ({held.champion_f1:.3f} to "
            f"{held.challenger_f1:.3f}) is within noise: its {policy.gain_confidence:.0%} "
            f"paired-bootstrap lower bound is {held.lower_bound:+.3f} over {size} examples"
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


def _all_figures(
    champion: Evaluation, challenger: Evaluation, fp32: tuple[Evaluation, Evaluation] | None
) -> dict[str, Any]:
    """What each rule compared, served, with the fp32 figures beside where given."""

    def both(pick: Any) -> dict[str, Any]:
        served = _figures(pick(champion), pick(challenger))
        if fp32 is not None:
            served["fp32"] = {
                "champion": _pick(pick(fp32[0])),
                "challenger": _pick(pick(fp32[1])),
            }
        return served

    return {
        "feedback": both(lambda e: e.feedback),
        "gold": {
            name: both(lambda e, name=name: e.gold[name])
            for name in sorted(champion.gold.keys() & challenger.gold.keys())
        },
    }


def _figures(champion: DatasetMetrics, challenger: DatasetMetrics) -> dict[str, Any]:
    return {
        "examples": challenger.examples,
        "sentiment_examples": challenger.sentiment_examples,
        "champion": _pick(champion),
        "challenger": _pick(challenger),
    }


def _pick(m: DatasetMetrics) -> dict[str, float | None]:
    return {
        "sentiment_macro_f1": m.sentiment_macro_f1,
        "risk_macro_f1": m.risk_macro_f1,
        "sentiment_ece": m.sentiment_ece,
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
