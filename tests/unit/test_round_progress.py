import logging

import pytest

from retrain.datasets.base import Example
from retrain.rounds import FEEDBACK_DATASET, log_progress, round_config
from retrain.train import _draw_sizes
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
