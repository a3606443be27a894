"""The texts that calibrate an int8 export's activation scales (see inference.repository).

A fixed sample of the training mix's dev split: held back from training, never the test
split, and the same texts for the same data, so an export is reproducible.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from retrain.datasets import available, load
from retrain.datasets.base import Dataset
from retrain.train import split_examples

CALIBRATION_TEXTS: Final = 320
CALIBRATION_SEED: Final = 13


def calibration_texts(datasets: Sequence[Dataset], count: int = CALIBRATION_TEXTS) -> list[str]:
    """Up to `count` distinct dev-split texts, taken from the datasets in turn (each
    shuffled with a fixed seed), so that every source weighs alike and a small one (the
    seed set has 25 dev texts) leaves its share to the others."""
    rng = random.Random(CALIBRATION_SEED)
    dev = split_examples(datasets, "dev")
    pools = []
    for name in sorted(dev):
        texts = sorted({e.text for e in dev[name]})
        rng.shuffle(texts)
        pools.append(texts)
    drawn: list[str] = []
    seen: set[str] = set()
    for rank in range(max((len(p) for p in pools), default=0)):
        for pool in pools:
            if rank < len(pool) and pool[rank] not in seen and len(drawn) < count:
                seen.add(pool[rank])
                drawn.append(pool[rank])
    return drawn


def calibration_for(model_dir: Path, data_dir: Path) -> list[str]:
    """Calibration texts of a trained version: from the datasets it was trained on
    (training.json's `train_counts`) that are still in `data_dir`."""
    trained_on = json.loads((model_dir / "training.json").read_text())["train_counts"]
    names = [name for name in available(data_dir) if name in trained_on]
    return calibration_texts([load(name, data_dir) for name in names])
