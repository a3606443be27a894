"""One message, one score: through the real Triton, a message's probabilities are the same
alone, in any batch and in any order (the int8 graph's activation scales are fixed at
export; dynamic quantisation computed them per batch, and scores moved by up to 0.36)."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
import pytest

from retrain.datasets import seed
from tests.integration.conftest import infer_texts
from tonewatch.config import Settings

pytestmark = pytest.mark.integration

Scores = npt.NDArray[np.float32]
# Batch sizes of the shuffled runs: a whole batch, then mixed sizes sent at once, so that
# Triton's dynamic batcher also merges requests and the backend pads each text differently.
BATCHINGS = ((64,), (1, 3, 7, 13, 40), (16, 16, 16, 16), (5, 59))
TOLERANCE = 1e-4


def _scores(settings: Settings, model: str, texts: list[str]) -> Scores:
    """One request: (n, 10) sentiment then risk probabilities."""
    sentiment, risk, _ = infer_texts(settings, model, texts)
    return np.concatenate([sentiment, risk], axis=1)


def largest_difference(
    settings: Settings, model: str, texts: list[str], shuffle_seed: int = 7
) -> float:
    """Most any probability of any text moves between scoring it alone (one request each)
    and within shuffled batches of BATCHINGS' sizes, sent concurrently."""
    alone = np.concatenate([_scores(settings, model, [t]) for t in texts])
    rng = random.Random(shuffle_seed)
    worst = 0.0
    for sizes in BATCHINGS:
        order = rng.sample(range(len(texts)), len(texts))
        groups, start = [], 0
        for size in sizes:
            groups.append(order[start : start + size])
            start += size
        with ThreadPoolExecutor(len(groups)) as pool:
            batches = pool.map(lambda g: _scores(settings, model, [texts[i] for i in g]), groups)
            for group, scores in zip(groups, batches, strict=True):
                worst = max(worst, float(np.abs(scores - alone[group]).max()))
    return worst


def test_a_message_scores_the_same_alone_and_in_any_batch(
    settings: Settings, served_seed_model: str
) -> None:
    # 64 seed sentences of every style and length (3 to 40+ tokens).
    texts = sorted({e.text for e in seed.load().examples})
    texts = random.Random(3).sample(texts, 64)
    assert largest_difference(settings, served_seed_model, texts) <= TOLERANCE
