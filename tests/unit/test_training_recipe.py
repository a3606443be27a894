"""The training recipe: learning-rate schedule, precision choice, sampling, dev figures."""

from __future__ import annotations

import random
from collections import Counter
from typing import get_args

import pytest

from retrain.datasets import seed
from retrain.datasets.base import Example
from retrain.evaluate import evaluate_examples, predictor_for
from retrain.train import (
    RECIPES,
    EpochStats,
    TrainConfig,
    _draw_sizes,
    _sample,
    split_examples,
    train,
    uses_bf16,
    warmup_then_linear_decay,
)
from tonewatch.commands.model import Recipe


def test_learning_rate_warms_up_then_decays_to_zero() -> None:
    factor = warmup_then_linear_decay(1000, warmup=0.05)
    warm = [factor(step) for step in range(50)]
    assert warm == sorted(warm)
    assert warm[0] == pytest.approx(1 / 50)
    assert factor(49) == pytest.approx(1.0) == factor(50)
    decay = [factor(step) for step in range(50, 1001)]
    assert decay == sorted(decay, reverse=True)
    assert factor(525) == pytest.approx(0.5, abs=0.01)
    assert factor(1000) == 0.0
    assert factor(1200) == 0.0


def test_a_single_step_schedule_still_trains() -> None:
    assert warmup_then_linear_decay(1)(0) == 1.0


def test_precision_names_are_checked() -> None:
    assert uses_bf16("bf16")
    assert not uses_bf16("fp32")
    assert isinstance(uses_bf16("auto"), bool)
    with pytest.raises(ValueError, match="precision"):
        uses_bf16("fp16")


def _pool(name: str, n: int) -> list[Example]:
    return [Example(f"{name} {i}", name, "news", "neutral") for i in range(n)]


def _mix() -> dict[str, list[Example]]:
    """The tweets, a set larger than the caps and one smaller than them."""
    sizes = {"twitter_financial_news": 7000, "davidson": 9000, "uci_yelp": 800}
    return {name: _pool(name, n) for name, n in sizes.items()}


def test_default_recipe_draws_the_finance_tweets_twice_and_caps_the_rest() -> None:
    config = TrainConfig()
    pools = _mix()
    drawn = _sample(pools, _draw_sizes(pools, config), random.Random(0))
    names = Counter(e.dataset for e in drawn)
    assert names == {
        "twitter_financial_news": 14000,
        "davidson": config.per_dataset_cap,
        "uci_yelp": 800,
    }
    tweets = Counter(e.text for e in drawn if e.dataset == "twitter_financial_news")
    assert set(tweets.values()) == {2}, "every tweet twice, none left out"
    assert len({e.text for e in drawn if e.dataset == "davidson"}) == config.per_dataset_cap


def test_the_cli_offers_exactly_the_recipes() -> None:
    assert set(get_args(Recipe)) == set(RECIPES)
    assert RECIPES["full"] == TrainConfig(), "the full recipe is the defaults"


def test_the_quick_recipe_draws_every_set_at_its_smaller_cap_and_repeats_nothing() -> None:
    quick, full = RECIPES["quick"], RECIPES["full"]
    pools = _mix()
    sizes = _draw_sizes(pools, quick)
    assert sizes == {"twitter_financial_news": 1000, "davidson": 1000, "uci_yelp": 800}
    drawn = _sample(pools, sizes, random.Random(0))
    assert len({e.text for e in drawn}) == len(drawn), "no example drawn twice"
    # Fewer epochs of fewer rows: under a sixth of the full recipe's examples.
    total = sum(sizes.values()) * quick.epochs
    assert total * 6 < sum(_draw_sizes(pools, full).values()) * full.epochs


def test_the_dev_figures_of_an_epoch_are_those_of_the_kept_model() -> None:
    """Dev loss and dev metrics come from one pass; the metrics match a fresh evaluation,
    and `on_epoch` hears them."""
    seed_set = seed.load()
    config = TrainConfig(epochs=1, trainable_layers=0, dev_cap=10_000, precision="fp32")
    heard: list[EpochStats] = []
    result = train(config, [seed_set], on_epoch=heard.append)
    assert heard == result.history
    dev = split_examples([seed_set], "dev")["seed"]
    fresh = evaluate_examples("dev", dev, predictor_for(result.model))
    (epoch,) = result.history
    assert fresh.sentiment_macro_f1 is not None
    assert epoch.dev_sentiment_macro_f1 == pytest.approx(fresh.sentiment_macro_f1, abs=1e-9)
    assert epoch.dev_risk_macro_f1 == pytest.approx(fresh.risk_macro_f1, abs=1e-9)
    assert epoch.dev_loss > 0
