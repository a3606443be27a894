import logging

import pytest

from retrain.rounds import log_progress

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
