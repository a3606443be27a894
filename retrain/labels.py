"""Label quality: from the label store's verdicts to the feedback a challenger trains on and
the feedback it is judged on. Pure functions; the retrain worker reads the store.

`resolve` works in five steps:
1. **Measure** each labeller: gold accuracy and agreement with the other labellers
   (`storage.labeling.compute_stats`), a per-class test on the gold messages that catches
   systematic flips (a labeller who turns 20% of one class into another is still 93%
   accurate overall, so overall accuracy alone cannot see them), and flooding.
2. **Exclude** labellers with a quality flag or too low a weight; their labels are not
   used at all. Flooding is only flagged: volume says nothing about correctness, and the
   cap below keeps a flood from dominating.
3. **Resolve** each message: a gold message takes its gold answer; any other takes the
   weighted vote of its labellers' sentiments (a tie drops it), and each risk is present
   when at least half of the voting weight names it.
4. **Cap** each labeller's share of the accepted messages (those they decided: the only
   voter, or one whose vote, taken away, would change the outcome). The excess is dropped,
   newest first: a flood is recent. The cap applies before the hold-out, so that neither
   the training set nor the held-out set is one labeller's.
5. **Hold out** the messages whose text falls in the held-out share by a hash of the
   normalised text (`retrain.splits.held_out`): the same texts in every round, so a text
   judges every challenger or none, and the champion never trained on it either. Gold
   messages are never held out: their labels are exact, and the held-out set should look
   like the feedback stream, not like what admins planted. No text in the held-out share
   (gold or not) and no text reserved by the caller (the gold sets') is trained on, so
   that no evaluation sees a text trained on.

A labeller is named "<tenant>/<labeller>": key names are only unique within a tenant.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from retrain.datasets.base import Example
from retrain.splits import held_out, normalise
from storage.labeling import Label, LabellerStats, compute_stats
from storage.training_labels import GoldAnswer, MessageKey, TrainingLabel
from tonewatch.contracts import RISK_LABELS, Risk, Sentiment

if TYPE_CHECKING:
    from tonewatch.config import Settings

DATASET: Final = "feedback"
_TIE: Final = 1e-9

Votes = dict[str, TrainingLabel]  # labeller -> their label on one message


@dataclass(frozen=True)
class LabelPolicy:
    """How labels are weighed, trusted, capped and held out."""

    holdout_share: float = 0.2
    max_labeller_share: float = 0.34
    # A risk is present when at least this share of the voting weight names it.
    risk_share: float = 0.5
    # Weights: gold accuracy given enough gold labels, else agreement with the others given
    # enough shared messages, else `unknown_weight`. Excluded: gold accuracy below
    # `min_gold_accuracy`; without enough gold, agreement below `min_agreement`; a weight
    # below `min_weight`.
    min_gold_items: int = 5
    min_agreement_items: int = 5
    unknown_weight: float = 0.5
    min_weight: float = 0.5
    min_gold_accuracy: float = 0.6
    min_agreement: float = 0.5
    # Systematic disagreement on one gold class: at least `min_class_error` of at least
    # `min_class_items` answers wrong, and improbable (binomial tail < `systematic_alpha`)
    # at the other labellers' median error rate on that class (at least `class_error_floor`,
    # the slips of careful people).
    min_class_items: int = 10
    min_class_error: float = 0.1
    class_error_floor: float = 0.03
    systematic_alpha: float = 0.001
    # Flooding: more than `flood_ratio` times the other labellers' median count (once there
    # are `min_labels_for_share` labels), or more than `burst_labels` within `burst_window_s`.
    min_labels_for_share: int = 20
    flood_ratio: float = 3.0
    burst_labels: int = 120
    burst_window_s: float = 120.0

    @classmethod
    def from_settings(cls, settings: Settings) -> LabelPolicy:
        return cls(
            holdout_share=settings.retrain_holdout_share,
            max_labeller_share=settings.retrain_max_labeller_share,
        )


@dataclass
class LabellerQuality:
    """What `resolve` made of one labeller."""

    labeller: str
    labels: int
    share: float  # of all labels
    weight: float
    weight_basis: str  # "gold", "agreement" or "prior"
    gold_accuracy: float | None
    gold_labels: int
    agreement: float | None
    agreement_items: int
    flags: list[str] = field(default_factory=list)  # every suspicion, flooding included
    excluded: str | None = None  # why their labels were left out
    deciding: int = 0  # accepted messages they decided, after the cap
    capped: int = 0  # messages they decided that the cap dropped


@dataclass(frozen=True)
class UnseenTexts:
    """The texts no round trains on, base replay and feedback alike: those in the held-out
    share (by hash, so the same in every round) and the reserved ones (the gold sets').
    Compared normalised, as retrain.splits compares them."""

    holdout_share: float
    reserved: frozenset[str] = frozenset()  # normalised

    @classmethod
    def of(cls, holdout_share: float, reserved_texts: Collection[str] = ()) -> UnseenTexts:
        return cls(holdout_share, frozenset(normalise(text) for text in reserved_texts))

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and (
            held_out(text, self.holdout_share) or normalise(text) in self.reserved
        )


@dataclass
class Resolution:
    train: list[Example]
    holdout: list[Example]
    excluded_labellers: dict[str, str]
    capped: dict[str, int]
    dropped_ties: int
    per_labeller: dict[str, LabellerQuality]
    unseen: UnseenTexts  # what no training input of this round may contain
    messages: int = 0  # messages with at least one label
    gold_messages: int = 0  # resolved by their gold answer
    dropped_unvoted: int = 0  # not gold, and every labeller of the message was excluded
    withheld: int = 0  # resolved, but their text is held out or reserved: not trained on

    @property
    def flagged(self) -> dict[str, list[str]]:
        return {name: q.flags for name, q in self.per_labeller.items() if q.flags}

    def summary(self) -> dict[str, Any]:
        """The figures of the resolution, JSON-ready, for run reports."""
        return {
            "messages": self.messages,
            "train": len(self.train),
            "holdout": len(self.holdout),
            "gold_messages": self.gold_messages,
            "dropped_ties": self.dropped_ties,
            "dropped_unvoted": self.dropped_unvoted,
            "withheld": self.withheld,
            "capped": dict(self.capped),
            "excluded_labellers": dict(self.excluded_labellers),
            "flagged_labellers": self.flagged,
            "labellers": {name: asdict(q) for name, q in self.per_labeller.items()},
        }


@dataclass
class _Resolved:
    key: MessageKey
    example: Example
    newest: datetime  # the newest vote's updated_at
    gold: bool
    deciders: dict[str, datetime]  # labeller -> when they gave their deciding vote


def labeller_id(label: TrainingLabel) -> str:
    return f"{label.tenant}/{label.labeller}"


def resolve(
    labels: Sequence[TrainingLabel],
    gold: Mapping[MessageKey, GoldAnswer],
    policy: LabelPolicy = LabelPolicy(),
    reserved_texts: Collection[str] = (),
) -> Resolution:
    """Training and held-out examples (dataset "feedback") from the stored labels; see the
    module docstring. `reserved_texts` are never trained on (pass the gold sets' texts);
    nor is any text of the result's `unseen`, in base replay either."""
    votes = _votes(labels)
    quality = measure(votes, gold, policy)
    excluded = {name: q.excluded for name, q in quality.items() if q.excluded is not None}
    weights = {name: q.weight for name, q in quality.items()}
    resolved: list[_Resolved] = []
    ties = unvoted = 0
    for key in sorted(votes):
        kept = {name: label for name, label in votes[key].items() if name not in excluded}
        one = _resolve_message(key, votes[key], kept, gold.get(key), weights, policy)
        if one is not None:
            resolved.append(one)
        elif kept:
            ties += 1
        else:
            unvoted += 1
    accepted, capped = _cap(resolved, policy.max_labeller_share)
    for name, count in capped.items():
        quality[name].capped = count
    for item in accepted:
        for name in item.deciders:
            quality[name].deciding += 1
    holdout = [r for r in accepted if not r.gold and held_out(r.example.text, policy.holdout_share)]
    unseen = UnseenTexts.of(policy.holdout_share, reserved_texts)
    trained = [r for r in accepted if r.example.text not in unseen]
    return Resolution(
        train=[r.example for r in trained],
        holdout=[r.example for r in holdout],
        excluded_labellers=excluded,
        capped=dict(sorted(capped.items())),
        dropped_ties=ties,
        per_labeller=quality,
        unseen=unseen,
        messages=len(votes),
        gold_messages=sum(r.gold for r in resolved),
        dropped_unvoted=unvoted,
        withheld=len(accepted) - len(holdout) - len(trained),
    )


def measure(
    votes: Mapping[MessageKey, Votes],
    gold: Mapping[MessageKey, GoldAnswer],
    policy: LabelPolicy = LabelPolicy(),
) -> dict[str, LabellerQuality]:
    """Each labeller's weight, flags and (if any quality flag) why they are excluded.

    Gold judges first, each labeller alone. Agreement is then measured among the labellers
    gold has not ruled out (a liar must not drag down the honest people who disagree with
    them), and flags only those without enough gold labels to go by.
    """
    known = {key: answer.sentiment for key, answer in gold.items() if key in votes}
    # compute_stats gives the figures; the flags are decided here (see LabelPolicy).
    first = {s.labeller: s for s in compute_stats(_sentiments(votes), known)}
    systematic = _systematic(votes, gold, policy)
    reasons = {
        name: _gold_reasons(s, policy) + systematic.get(name, []) for name, s in first.items()
    }
    ruled_out = {name for name, found in reasons.items() if found}
    second = {s.labeller: s for s in compute_stats(_sentiments(votes, ruled_out), known)}
    flooding = _flooding(votes, policy)
    quality = {}
    for name, s in first.items():
        peers = second.get(name, s)
        agreement, shared = peers.agreement_with_others, peers.agreement_items
        if s.gold_accuracy is not None and s.gold_labels >= policy.min_gold_items:
            weight, basis = s.gold_accuracy, "gold"
        elif agreement is not None and shared >= policy.min_agreement_items:
            weight, basis = agreement, "agreement"
            if agreement < policy.min_agreement:
                reasons[name].append(
                    f"agrees with others {agreement:.2f} of the time over {shared} messages"
                )
        else:
            weight, basis = policy.unknown_weight, "prior"
        weight = max(weight, 0.0)
        if not reasons[name] and weight < policy.min_weight:
            reasons[name].append(f"weight {weight:.2f} ({basis}) below {policy.min_weight}")
        quality[name] = LabellerQuality(
            labeller=name,
            labels=s.labels,
            share=s.share,
            weight=weight,
            weight_basis=basis,
            gold_accuracy=s.gold_accuracy,
            gold_labels=s.gold_labels,
            agreement=agreement,
            agreement_items=shared,
            flags=[*reasons[name], *flooding.get(name, [])],
            excluded="; ".join(reasons[name]) or None,
        )
    return quality


def _sentiments(votes: Mapping[MessageKey, Votes], without: Collection[str] = ()) -> list[Label]:
    return [
        Label(name, key, label.sentiment)
        for key, by in votes.items()
        for name, label in by.items()
        if name not in without
    ]


def _gold_reasons(stats: LabellerStats, policy: LabelPolicy) -> list[str]:
    accuracy, seen = stats.gold_accuracy, stats.gold_labels
    if accuracy is None or seen < policy.min_gold_items or accuracy >= policy.min_gold_accuracy:
        return []
    return [f"gold accuracy {accuracy:.2f} below {policy.min_gold_accuracy} over {seen} gold items"]


def _votes(labels: Sequence[TrainingLabel]) -> dict[MessageKey, Votes]:
    """Per message, each labeller's newest label."""
    votes: dict[MessageKey, Votes] = defaultdict(dict)
    for label in labels:
        name = labeller_id(label)
        held = votes[label.key].get(name)
        if held is None or label.updated_at > held.updated_at:
            votes[label.key][name] = label
    return dict(votes)


def _tally(votes: Votes, weights: Mapping[str, float]) -> Sentiment | None:
    """The weighted vote's sentiment; None on a tie or without weight."""
    totals: dict[Sentiment, float] = defaultdict(float)
    for name, label in votes.items():
        totals[label.sentiment] += weights[name]
    ranked = sorted(totals.items(), key=lambda item: item[1], reverse=True)[:2]
    if not ranked or ranked[0][1] <= 0:
        return None
    if len(ranked) == 2 and ranked[0][1] - ranked[1][1] <= _TIE:
        return None
    return ranked[0][0]


def _resolve_message(
    key: MessageKey,
    everyone: Votes,
    votes: Votes,
    answer: GoldAnswer | None,
    weights: Mapping[str, float],
    policy: LabelPolicy,
) -> _Resolved | None:
    """The message's example from the `votes` of the labellers kept (`everyone` gave the
    text); None on a tie, or when no kept labeller voted on a message without gold."""
    risks: set[Risk]
    if answer is not None:
        # Gold decides, whoever labelled the message: nobody's vote counts towards a share.
        newest = max(everyone.values(), key=lambda label: label.updated_at)
        sentiment, risks, deciders = answer.sentiment, set(answer.risks), {}
    elif not votes:
        return None
    else:
        newest = max(votes.values(), key=lambda label: label.updated_at)
        tallied = _tally(votes, weights)
        if tallied is None:
            return None
        sentiment = tallied
        total = sum(weights[name] for name in votes)
        named: dict[Risk, float] = defaultdict(float)
        for name, label in votes.items():
            for risk in label.risks:
                named[risk] += weights[name]
        risks = {risk for risk, weight in named.items() if weight / total >= policy.risk_share}
        deciders = {
            name: label.updated_at
            for name, label in votes.items()
            if _tally({n: v for n, v in votes.items() if n != name}, weights) != sentiment
        }
    example = Example(
        text=newest.text,
        dataset=DATASET,
        source=newest.source,
        sentiment=sentiment,
        risks={risk: risk in risks for risk in RISK_LABELS},
    )
    return _Resolved(key, example, newest.updated_at, answer is not None, deciders)


def _cap(resolved: list[_Resolved], share: float) -> tuple[list[_Resolved], Counter[str]]:
    """Drop messages until no labeller decided more than `share` of those left: each time
    from the labeller furthest over, their newest deciding messages first."""
    kept = list(resolved)
    capped: Counter[str] = Counter()
    while share < 1:
        decided = Counter(name for item in kept for name in item.deciders)
        over = {n: c - share * len(kept) for n, c in decided.items() if c > share * len(kept)}
        if not over:
            break
        name = max(sorted(over), key=lambda n: over[n])
        # Dropping x of d decided messages out of N leaves (d - x) / (N - x) <= share.
        excess = max(1, math.ceil(over[name] / (1 - share) - _TIE))
        theirs = sorted(
            (item for item in kept if name in item.deciders),
            key=lambda item: (item.deciders[name], item.key),
            reverse=True,
        )
        dropped = {id(item) for item in theirs[:excess]}
        kept = [item for item in kept if id(item) not in dropped]
        capped[name] += len(dropped)
    return kept, capped


def _systematic(
    votes: Mapping[MessageKey, Votes], gold: Mapping[MessageKey, GoldAnswer], policy: LabelPolicy
) -> dict[str, list[str]]:
    """Labellers who get one class of gold answers wrong far more often than the others
    do (sentiment classes, and each risk present and absent), with the evidence."""
    # labeller -> (what is judged, the gold answer) -> Counter of their answers
    answers: dict[str, dict[tuple[str, str], Counter[str]]] = defaultdict(
        lambda: defaultdict(Counter)
    )
    for key, by in votes.items():
        answer = gold.get(key)
        if answer is None:
            continue
        for name, label in by.items():
            answers[name]["sentiment", answer.sentiment][label.sentiment] += 1
            for risk in RISK_LABELS:
                truth = _presence(risk in answer.risks)
                answers[name][risk, truth][_presence(risk in label.risks)] += 1
    rates: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for name, classes in answers.items():
        for cls, counts in classes.items():
            seen = sum(counts.values())
            if seen >= policy.min_class_items:
                rates[cls][name] = 1 - counts[cls[1]] / seen
    flags: dict[str, list[str]] = defaultdict(list)
    for cls, by_name in sorted(rates.items()):
        for name, rate in sorted(by_name.items()):
            others = [r for other, r in by_name.items() if other != name]
            expected = max(statistics.median(others) if others else 0.0, policy.class_error_floor)
            given = answers[name][cls]
            seen = sum(given.values())
            wrong = seen - given[cls[1]]
            if (
                rate >= policy.min_class_error
                and rate > expected
                and _binomial_tail(wrong, seen, expected) < policy.systematic_alpha
            ):
                instead = Counter({g: c for g, c in given.items() if g != cls[1]}).most_common(1)
                flags[name].append(
                    f"systematic disagreement on gold {_describe(cls)}: {wrong} of {seen} "
                    f"({rate:.0%}) answered otherwise, mostly {instead[0][0]!r} "
                    f"(other labellers: {expected:.0%})"
                )
    return dict(flags)


def _flooding(votes: Mapping[MessageKey, Votes], policy: LabelPolicy) -> dict[str, list[str]]:
    """Labellers with far more labels than the others, or many labels in a short time."""
    times: dict[str, list[datetime]] = defaultdict(list)
    for by in votes.values():
        for name, label in by.items():
            times[name].append(label.updated_at)
    counts = {name: len(stamps) for name, stamps in times.items()}
    total = sum(counts.values())
    flags: dict[str, list[str]] = defaultdict(list)
    for name, count in sorted(counts.items()):
        others = [c for other, c in counts.items() if other != name]
        if others and total >= policy.min_labels_for_share:
            typical = statistics.median(others)
            if count > policy.flood_ratio * typical:
                flags[name].append(
                    f"flooding: {count} labels ({count / total:.0%} of all), more than "
                    f"{policy.flood_ratio:g} times the other labellers' median of {typical:g}"
                )
        burst = _busiest(sorted(times[name]), timedelta(seconds=policy.burst_window_s))
        if burst > policy.burst_labels:
            flags[name].append(
                f"flooding: {burst} labels within {policy.burst_window_s:g} s "
                f"(more than {policy.burst_labels})"
            )
    return dict(flags)


def _busiest(stamps: list[datetime], window: timedelta) -> int:
    """The most of the sorted `stamps` within any `window`."""
    most = start = 0
    for end, stamp in enumerate(stamps):
        while stamp - stamps[start] > window:
            start += 1
        most = max(most, end - start + 1)
    return most


def _binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in logs (n may be large)."""
    if k <= 0 or p >= 1:
        return 1.0
    if p <= 0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = (
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p
        + (n - i) * log_q
        for i in range(k, n + 1)
    )  # fmt: skip
    return min(1.0, sum(math.exp(t) for t in terms))


def _presence(present: bool) -> str:
    return "present" if present else "absent"


def _describe(cls: tuple[str, str]) -> str:
    aspect, truth = cls
    return f"{truth!r} items" if aspect == "sentiment" else f"items with {aspect} {truth}"
