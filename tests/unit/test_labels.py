"""retrain.labels: weighted votes, gold answers, excluded, flagged and capped labellers,
the held-out slice, and colluding labellers (RELIABILITY.md M1) and a flood (S5)."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest

from retrain.datasets.base import Example
from retrain.labels import LabelPolicy, Resolution, _binomial_tail, resolve
from retrain.splits import held_out
from storage.training_labels import GoldAnswer, MessageKey, TrainingLabel
from tonewatch.config import Settings
from tonewatch.contracts import RISK_LABELS, SENTIMENT_LABELS, Risk, Sentiment

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
TENANT = "t1"
_clock = count()


def label(
    labeller: str,
    message: str,
    sentiment: Sentiment,
    risks: tuple[Risk, ...] = (),
    *,
    at: datetime | None = None,
    tenant: str = TENANT,
) -> TrainingLabel:
    """A label; without `at`, each one is a minute after the one made before."""
    when = at if at is not None else T0 + timedelta(minutes=next(_clock))
    return TrainingLabel(
        feedback_id=f"{tenant}/{message}/{labeller}",
        tenant=tenant,
        source="news",
        message_id=message,
        text=f"text of {message}",
        labeller=labeller,
        sentiment=sentiment,
        risks=risks,
        prediction_correct=False,
        model_version="1",
        updated_at=when,
        received_at=when,
    )


def key(message: str, tenant: str = TENANT) -> MessageKey:
    return (tenant, "news", message)


def by_text(resolution: Resolution) -> dict[str, Example]:
    return {e.text: e for e in [*resolution.train, *resolution.holdout]}


# No hold-out and no cap unless a test asks: the other steps are easier to see.
PLAIN = LabelPolicy(holdout_share=0.0, max_labeller_share=1.0)


# Ten gold messages of every sentiment: too few of each for the per-class test.
GOLD = {key(f"g{n}"): GoldAnswer(SENTIMENT_LABELS[n % 3], ()) for n in range(10)}


def expert_and_novice() -> list[TrainingLabel]:
    """`ann` answers the 10 GOLD messages right; `bob` 6 of them."""
    labels = []
    for n in range(10):
        right = GOLD[key(f"g{n}")].sentiment
        wrong = SENTIMENT_LABELS[(n + 1) % 3]
        labels.append(label("ann", f"g{n}", right))
        labels.append(label("bob", f"g{n}", right if n < 6 else wrong))
    return labels


def test_a_vote_is_weighted_by_gold_accuracy() -> None:
    labels = [*expert_and_novice(), label("ann", "m", "positive"), label("bob", "m", "neutral")]
    resolution = resolve(labels, GOLD, PLAIN)

    ann, bob = resolution.per_labeller["t1/ann"], resolution.per_labeller["t1/bob"]
    assert (ann.weight, ann.weight_basis, ann.gold_labels) == (1.0, "gold", 10)
    assert bob.weight == pytest.approx(0.6)
    assert bob.weight_basis == "gold"
    assert by_text(resolution)["text of m"].sentiment == "positive"
    assert resolution.excluded_labellers == {}
    # Gold messages take their gold answer, whoever voted.
    assert by_text(resolution)["text of g9"].sentiment == "negative"
    assert by_text(resolution)["text of g8"].sentiment == "positive"
    assert resolution.gold_messages == 10


def test_weights_fall_back_to_agreement_then_to_the_prior() -> None:
    labels = []
    for n in range(6):  # cat agrees with dan and eve on 5 messages of 6
        labels += [label(name, f"m{n}", "neutral") for name in ("dan", "eve")]
        labels.append(label("cat", f"m{n}", "neutral" if n else "positive"))
    labels.append(label("fay", "lonely", "positive"))
    quality = resolve(labels, {}, PLAIN).per_labeller
    assert quality["t1/cat"].weight == pytest.approx(5 / 6)
    assert quality["t1/cat"].weight_basis == "agreement"
    assert (quality["t1/fay"].weight, quality["t1/fay"].weight_basis) == (0.5, "prior")


def test_a_tie_drops_the_message() -> None:
    labels = [
        label("ann", "m", "positive"),
        label("bob", "m", "negative"),
        label("ann", "k", "neutral"),
    ]
    resolution = resolve(labels, {}, PLAIN)
    assert resolution.dropped_ties == 1
    assert set(by_text(resolution)) == {"text of k"}


def test_a_risk_needs_half_the_voting_weight() -> None:
    labels = [
        label("ann", "m", "negative", ("fraud", "churn")),
        label("bob", "m", "negative", ("fraud",)),
        label("cat", "m", "negative", ("legal_regulatory",)),
        label("dan", "m", "negative", ("fraud",)),
    ]
    (example,) = resolve(labels, {}, PLAIN).train
    assert example.dataset == "feedback"
    assert example.source == "news"
    # Every risk is known: present if voted, else absent.
    assert dict(example.risks) == {risk: risk == "fraud" for risk in RISK_LABELS}
    two_of_four = [*labels[:3], label("dan", "m", "negative", ("churn",))]
    (example,) = resolve(two_of_four, {}, PLAIN).train
    assert {r for r, present in example.risks.items() if present} == {"fraud", "churn"}


def test_gold_risks_override_the_votes() -> None:
    labels = [label("ann", "g", "positive", ("churn",)), label("bob", "g", "positive")]
    gold = {key("g"): GoldAnswer("negative", ("fraud",))}
    (example,) = resolve(labels, gold, PLAIN).train
    assert example.sentiment == "negative"
    assert {r for r, present in example.risks.items() if present} == {"fraud"}


def test_a_labeller_failing_gold_is_excluded_with_the_reason() -> None:
    gold = {key(f"g{n}"): GoldAnswer("negative", ()) for n in range(10)}
    labels = [label("ann", f"g{n}", "negative") for n in range(10)]
    labels += [label("zed", f"g{n}", "negative" if n < 3 else "positive") for n in range(10)]
    labels += [label("zed", "only-zed", "positive"), label("zed", "m", "positive")]
    labels += [label("ann", "m", "neutral"), label("zed", "gold-only-zed", "positive")]
    gold[key("gold-only-zed")] = GoldAnswer("negative", ())
    resolution = resolve(labels, gold, PLAIN)

    assert set(resolution.excluded_labellers) == {"t1/zed"}
    reason = resolution.excluded_labellers["t1/zed"]
    assert "gold accuracy 0.27 below 0.6 over 11 gold items" in reason
    assert resolution.per_labeller["t1/zed"].excluded == reason
    assert resolution.dropped_unvoted == 1  # only-zed
    assert by_text(resolution)["text of m"].sentiment == "neutral"
    assert "text of only-zed" not in by_text(resolution)
    # A gold message needs no trusted labeller: its answer is known.
    assert by_text(resolution)["text of gold-only-zed"].sentiment == "negative"
    assert resolution.flagged["t1/zed"] == resolution.per_labeller["t1/zed"].flags


def test_labellers_of_different_tenants_are_different_people() -> None:
    labels = [label("ann", "m", "positive", tenant="a"), label("ann", "m", "negative", tenant="b")]
    resolution = resolve(labels, {}, PLAIN)
    assert set(resolution.per_labeller) == {"a/ann", "b/ann"}
    assert sorted(str(e.sentiment) for e in resolution.train) == ["negative", "positive"]


def test_the_newest_label_of_a_labeller_counts() -> None:
    labels = [
        label("ann", "m", "positive", at=T0 + timedelta(hours=1)),
        label("ann", "m", "negative", at=T0),
    ]
    (example,) = resolve(labels, {}, PLAIN).train
    assert example.sentiment == "positive"


def held(share: float, count: int, prefix: str = "m") -> list[str]:
    """Message names (of `prefix`, in order) whose text falls in the held-out share."""
    return [f"{prefix}{n}" for n in range(count) if held_out(f"text of {prefix}{n}", share)]


def test_held_out_texts_are_a_fixed_share_by_hash_never_gold_ones() -> None:
    policy = LabelPolicy(holdout_share=0.2, max_labeller_share=1.0)
    labels = [label("ann", f"m{n}", "neutral", at=T0 + timedelta(minutes=n)) for n in range(200)]
    gold_name = held(0.2, 100, prefix="g")[0]
    labels.append(label("bob", gold_name, "positive"))
    gold = {key(gold_name): GoldAnswer("positive", ())}
    resolution = resolve(labels, gold, policy)
    expected = {f"text of {m}" for m in held(0.2, 200)}
    assert {e.text for e in resolution.holdout} == expected
    assert 0.12 < len(expected) / 200 < 0.28
    # The gold message's text is in the share: not held out, and not trained on either.
    assert f"text of {gold_name}" not in by_text(resolution)
    assert resolution.withheld == 1
    assert not expected & {e.text for e in resolution.train}

    # Another round, with half the messages and newer labels: each text is held out in
    # both rounds or in neither.
    later = [replace(x, updated_at=x.updated_at + timedelta(days=9)) for x in labels[100:]]
    again = resolve(later, gold, policy)
    assert {e.text for e in again.holdout} == {f"text of m{n}" for n in range(100, 200)} & expected


def test_held_out_and_reserved_texts_are_never_trained_on() -> None:
    policy = LabelPolicy(holdout_share=0.1, max_labeller_share=1.0)
    labels = [label("ann", f"m{n}", "neutral") for n in range(40)]
    (one, *_) = held(0.1, 40)
    # A copy of a held-out text under another message id, in other case and spacing.
    copy = label("ann", "copy", "neutral")
    labels.append(replace(copy, text=f"  TEXT of {one} "))
    resolution = resolve(labels, {}, policy, reserved_texts=["Text of m0 "])
    trained = {e.text for e in resolution.train}
    held_texts = {f"text of {m}" for m in held(0.1, 40)}
    # The copy is the same text: held out too, whatever its message.
    assert {e.text.strip().lower() for e in resolution.holdout} == held_texts
    assert len(resolution.holdout) == len(held_texts) + 1
    assert trained == {f"text of m{n}" for n in range(1, 40)} - held_texts
    assert resolution.withheld == 1  # the reserved text
    unseen = resolution.unseen
    assert f"TEXT OF {one}" in unseen
    assert " text of M0" in unseen
    assert not trained & {text for text in trained if text in unseen}


@pytest.mark.reliability("S5")
def test_a_labellers_share_is_capped_newest_first() -> None:
    labels = []
    for n in range(10):  # ann and bob agree: neither decides alone
        labels += [label("ann", f"shared{n}", "neutral"), label("bob", f"shared{n}", "neutral")]
    labels += [label("cat", f"cat{n}", "positive") for n in range(5)]
    labels += [label("flo", f"flo{n}", "negative") for n in range(30)]
    policy = LabelPolicy(holdout_share=0.01, max_labeller_share=0.4)
    resolution = resolve(labels, {}, policy)

    # flo decides 30 of 45; at most 40% is 10 of 25: the 20 newest go.
    assert resolution.capped == {"t1/flo": 20}
    kept = {e.text for e in resolution.train}
    assert {f"text of flo{n}" for n in range(10)} <= kept
    assert not kept & {f"text of flo{n}" for n in range(10, 30)}
    flo = resolution.per_labeller["t1/flo"]
    assert (flo.deciding, flo.capped) == (10, 20)
    assert flo.deciding <= 0.4 * (len(resolution.train) + len(resolution.holdout))
    assert resolution.per_labeller["t1/ann"].deciding == 0

    uncapped = resolve(labels, {}, PLAIN)
    assert uncapped.capped == {}
    assert len(uncapped.train) == 45


def test_a_deciding_voter_counts_towards_the_share() -> None:
    # ann outweighs bob on the contested message (gold accuracy 1.0 against 0.6): she decides.
    labels = [*expert_and_novice(), label("ann", "m", "positive"), label("bob", "m", "neutral")]
    resolution = resolve(labels, GOLD, PLAIN)
    assert resolution.per_labeller["t1/ann"].deciding == 1
    assert resolution.per_labeller["t1/bob"].deciding == 0


def test_flooding_is_flagged_not_excluded() -> None:
    labels = [label(name, f"{name}{n}", "neutral") for name in ("ann", "bob") for n in range(10)]
    labels += [label("flo", f"flo{n}", "positive") for n in range(40)]
    burst = [
        label("bot", f"bot{n}", "positive", at=T0 + timedelta(seconds=n / 2)) for n in range(130)
    ]
    resolution = resolve([*labels, *burst], {}, PLAIN)
    flags = resolution.flagged
    assert set(flags) == {"t1/flo", "t1/bot"}
    assert any("more than 3 times the other labellers' median of 10" in f for f in flags["t1/flo"])
    assert any("130 labels within 120 s" in f for f in flags["t1/bot"])
    assert resolution.excluded_labellers == {}


def test_the_summary_is_json() -> None:
    summary = resolve(expert_and_novice(), GOLD, PLAIN).summary()
    assert json.loads(json.dumps(summary))["labellers"]["t1/bob"]["gold_labels"] == 10
    assert summary["gold_messages"] == 10


def test_policy_from_settings() -> None:
    settings = Settings(retrain_holdout_share=0.3, retrain_max_labeller_share=0.5)
    policy = LabelPolicy.from_settings(settings)
    assert (policy.holdout_share, policy.max_labeller_share) == (0.3, 0.5)


def test_binomial_tail() -> None:
    exact = sum(math.comb(20, i) * 0.1**i * 0.9 ** (20 - i) for i in range(4, 21))
    assert _binomial_tail(4, 20, 0.1) == pytest.approx(exact)
    assert _binomial_tail(0, 20, 0.1) == pytest.approx(1.0)
    assert _binomial_tail(900, 1000, 0.5) < 1e-100
    assert (_binomial_tail(1, 5, 0.0), _binomial_tail(3, 5, 1.0)) == (0.0, 1.0)


# --- M1: colluding labellers; S5: a flood -------------------------------------------------


World = tuple[list[TrainingLabel], dict[str, Sentiment], dict[MessageKey, GoldAnswer]]


def colluders_world(with_gold: bool) -> World:
    """900 messages, a third of each sentiment. Three honest labellers slip on 2% of their
    answers; two colluders give the same 20% of positive messages as negative. 150 gold
    messages are labelled by all five, the others by one or two of them, colluders more
    often than the others."""
    rng = random.Random(7)
    truth: dict[str, Sentiment] = {f"m{n}": SENTIMENT_LABELS[n % 3] for n in range(900)}
    positives = [m for m, s in truth.items() if s == "positive"]
    flipped = set(positives[::5])
    honest, colluders = ["h1", "h2", "h3"], ["c1", "c2"]
    gold_messages = [f"m{n}" for n in range(150)]

    def answer(name: str, message: str) -> Sentiment:
        if name in colluders and message in flipped:
            return "negative"
        if rng.random() < 0.02:
            return rng.choice([s for s in SENTIMENT_LABELS if s != truth[message]])
        return truth[message]

    labels = []
    for message in truth:
        voters = [*honest, *colluders]
        if message not in gold_messages:
            # One or two labellers each; the colluders are the keenest.
            keen = [*honest, *colluders, *colluders]
            voters = list(dict.fromkeys(rng.sample(keen, rng.choice([1, 1, 2]))))
        labels += [label(name, message, answer(name, message)) for name in voters]
    gold = {key(m): GoldAnswer(truth[m], ()) for m in gold_messages} if with_gold else {}
    return labels, truth, gold


def accuracy(resolution: Resolution, truth: dict[str, Sentiment], only: str | None = None) -> float:
    examples = [
        e for e in [*resolution.train, *resolution.holdout]
        if only is None or truth[e.text.removeprefix("text of ")] == only
    ]  # fmt: skip
    right = sum(e.sentiment == truth[e.text.removeprefix("text of ")] for e in examples)
    return right / len(examples)


@pytest.mark.reliability("M1")
def test_colluders_are_caught_by_gold_and_left_out() -> None:
    labels, truth, gold = colluders_world(with_gold=True)
    policy = LabelPolicy(max_labeller_share=1.0)
    resolution = resolve(labels, gold, policy)

    assert set(resolution.excluded_labellers) == {"t1/c1", "t1/c2"}
    for name in ("t1/c1", "t1/c2"):
        reason = resolution.excluded_labellers[name]
        assert "systematic disagreement on gold 'positive' items" in reason
        assert "mostly 'negative'" in reason
    assert accuracy(resolution, truth) >= 0.95
    assert accuracy(resolution, truth, only="positive") >= 0.95
    assert len(resolution.train) + len(resolution.holdout) > 500

    # Without gold they go unnoticed, and the flipped class shows it: the test can fail.
    labels, truth, _ = colluders_world(with_gold=False)
    blind = resolve(labels, {}, policy)
    assert blind.excluded_labellers == {}
    assert accuracy(blind, truth, only="positive") < 0.95


@pytest.mark.reliability("S5")
def test_a_flooding_labeller_is_capped() -> None:
    labels, _, gold = colluders_world(with_gold=True)
    start = T0 + timedelta(days=2)
    flood = [
        label("flo", f"f{n}", "positive", at=start + timedelta(seconds=n)) for n in range(2000)
    ]
    resolution = resolve([*labels, *flood], gold, LabelPolicy(max_labeller_share=0.34))

    flo = resolution.per_labeller["t1/flo"]
    assert any(flag.startswith("flooding") for flag in flo.flags)
    assert flo.excluded is None
    assert resolution.capped["t1/flo"] == flo.capped > 1500
    accepted = len(resolution.train) + len(resolution.holdout) + resolution.withheld
    assert flo.deciding <= 0.34 * accepted
    assert all(q.deciding <= 0.34 * accepted for q in resolution.per_labeller.values())
    # The oldest of the flood stay. The held-out slice, a hash sample of the non-gold
    # messages (of which flo decided about 40% after the cap), is not the flood's.
    assert "text of f0" in by_text(resolution)
    held = [e.text for e in resolution.holdout]
    assert sum(text.startswith("text of f") for text in held) < 0.5 * len(held)
