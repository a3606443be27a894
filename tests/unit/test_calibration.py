"""The texts that calibrate an int8 export (retrain/calibration.py)."""

from __future__ import annotations

from collections import Counter

import pytest

from retrain.calibration import calibration_texts
from retrain.datasets import seed
from retrain.datasets.base import Dataset, Example, LoadReport
from retrain.splits import split_of

pytestmark = pytest.mark.unit


def _dataset(name: str, count: int) -> Dataset:
    examples = [Example(f"{name} text {i}", name, "news", "neutral") for i in range(count)]
    return Dataset(name, "test", examples, LoadReport(name))


def test_only_dev_texts_each_once_and_the_same_every_time() -> None:
    datasets = [_dataset("big", 3000), seed.load(), _dataset("mid", 900)]
    drawn = calibration_texts(datasets, count=200)
    assert len(drawn) == len(set(drawn)) == 200
    assert {split_of(t) for t in drawn} == {"dev"}  # never train, never test
    assert calibration_texts(list(reversed(datasets)), count=200) == drawn


def test_every_dataset_weighs_alike_and_a_small_one_leaves_its_share() -> None:
    small, mid, big = _dataset("small", 40), _dataset("mid", 900), _dataset("big", 3000)
    drawn = calibration_texts([small, mid, big], count=150)
    by_source = Counter(t.split()[0] for t in drawn)
    small_dev = sum(split_of(e.text) == "dev" for e in small.examples)
    assert by_source["small"] == small_dev < 50
    assert by_source["mid"] + by_source["big"] == 150 - small_dev
    assert abs(by_source["mid"] - by_source["big"]) <= 1
