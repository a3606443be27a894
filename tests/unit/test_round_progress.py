"""retrain.rounds: what a round logs, draws and trains on."""

import logging

import pytest

from retrain.datasets import seed
from retrain.datasets.base import Dataset, Example, LoadReport
from retrain.labels import UnseenTexts
from retrain.rounds import (
    FEEDBACK_DATASET,
    fingerprints,
    log_progress,
    round_config,
    training_sets,
)
from retrain.splits import fingerprint, held_out, split_of
from retrain.train import _draw_sizes, split_examples
from tonewatch.config import Settings

pytestmark = pytest.mark.unit


def test_training_progress_is_logged_each_quarter_of_an_epoch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="retrain.rounds"):
        for done in range(1, 11):
            log_progress("epoch 1/3", done, 10)
    assert [r.getMessage() for r in caplog.records] == [
        "training epoch 1/3: 2/10 batches",
        "training epoch 1/3: 4/10 batches",
        "training epoch 1/3: 6/10 batches",
        "training epoch 1/3: 8/10 batches",
        "training epoch 1/3: 10/10 batches",
    ]


def test_a_round_draws_all_its_feedback_and_every_base_set_at_the_base_cap() -> None:
    settings = Settings(retrain_base_cap=40, retrain_epochs=3, retrain_time_budget_s=120.0)
    config = round_config(settings, feedback_examples=720, run_id=7)

    def pool(size: int) -> list[Example]:
        return [Example(f"text {i}", "any", "news", "neutral") for i in range(size)]

    pools = {
        "twitter_financial_news": pool(9000),
        "banking77": pool(50),
        FEEDBACK_DATASET: pool(720),
    }
    assert _draw_sizes(pools, config) == {
        "twitter_financial_news": 40,
        "banking77": 40,
        FEEDBACK_DATASET: 720,
    }
    assert (config.epochs, config.time_budget_s, config.seed) == (3, 120.0, 7)


def example(text: str, dataset: str = "seed") -> Example:
    return Example(text, dataset, "news", "neutral")


def test_no_held_out_or_gold_text_reaches_training() -> None:
    held = next(f"text {i}" for i in range(100) if held_out(f"text {i}", 0.2))
    kept = [f"text {i}" for i in range(100) if not held_out(f"text {i}", 0.2)][:2]
    unseen = UnseenTexts.of(0.2, ["A gold sentence."])
    base = Dataset(
        "seed", "", [example(held), example(" a GOLD sentence. "), example(kept[0])],
        LoadReport("seed"),
    )  # fmt: skip
    feedback = [example(f" {held.upper()}"), example("a gold sentence."), example(kept[1])]
    sets = training_sets([base], feedback, 3, unseen)
    assert [d.name for d in sets] == ["seed", FEEDBACK_DATASET]
    assert [e.text for e in sets[0].examples] == [kept[0]]
    assert [e.text for e in sets[1].examples] == [kept[1]] * 3
    assert fingerprints(sets) == sorted({fingerprint(kept[0]), fingerprint(kept[1])})


def test_base_replay_of_feedback_texts_is_filtered_too() -> None:
    # The retrain-loop test's case: the feedback is the seed set's training sentences, so
    # base replay holds every held-out text, and the gold set is the seed test split.
    base = seed.load()
    feedback = [e for e in base.examples if e.sentiment and split_of(e.text) == "train"][:80]
    gold = [e.text for e in base.examples if split_of(e.text) == "test"]
    unseen = UnseenTexts.of(0.25, gold)
    held = [e.text for e in feedback if e.text in unseen]
    assert held, "no feedback text in the held-out share: the test would prove nothing"
    replayed = {e.text for pool in split_examples([base], "train").values() for e in pool}
    assert set(held) <= replayed  # what a round would train on, unfiltered

    sets = training_sets([base], [e for e in feedback if e.text not in unseen], 2, unseen)
    for split in ("train", "dev", "test"):  # train() reads train and dev; test: not even there
        pools = split_examples(sets, split)
        assert not [e.text for pool in pools.values() for e in pool if e.text in unseen]
    assert {fingerprint(t) for t in [*held, *gold]}.isdisjoint(fingerprints(sets))
    assert len(sets[0].examples) == len(base.examples) - sum(
        e.text in unseen for e in base.examples
    )
