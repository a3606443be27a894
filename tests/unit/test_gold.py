"""retrain.gold: the frozen gold sets are the test splits, capped by a fixed order, with the
seed set always among them."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from retrain.datasets import airline, seed
from retrain.datasets.base import Example
from retrain.gold import first_by_hash, gold_sets
from retrain.splits import split_of
from tonewatch.config import Settings

pytestmark = pytest.mark.unit


def settings(data_dir: Path, cap: int) -> Settings:
    return Settings(data_dir=data_dir, retrain_gold_cap=cap)


def seed_test_split() -> list[Example]:
    return [e for e in seed.load().examples if split_of(e.text) == "test"]


def test_the_seed_set_is_a_gold_set_without_shared_data(tmp_path: Path) -> None:
    sets = gold_sets(settings(tmp_path, 1000))
    assert list(sets) == ["seed"]
    assert sorted(e.text for e in sets["seed"]) == sorted(e.text for e in seed_test_split())
    assert all(split_of(e.text) == "test" for e in sets["seed"])


def test_gold_sets_are_capped_deterministically(tmp_path: Path) -> None:
    small = gold_sets(settings(tmp_path, 10))["seed"]
    assert len(small) == 10
    assert gold_sets(settings(tmp_path, 10))["seed"] == small
    # A fixed order, not a draw: a larger cap only adds examples.
    assert gold_sets(settings(tmp_path, 20))["seed"][:10] == small


def test_the_order_does_not_depend_on_the_input_order() -> None:
    examples = seed_test_split()
    assert first_by_hash(examples, 15) == first_by_hash(examples[::-1], 15)
    assert first_by_hash(examples, 15) != examples[:15]


def test_every_available_base_dataset_gives_a_gold_set(tmp_path: Path) -> None:
    (tmp_path / airline.CSV_PATH).parent.mkdir(parents=True)
    with (tmp_path / airline.CSV_PATH).open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["tweet_id", "airline_sentiment", "negativereason", "airline", "text"])
        for n in range(300):
            writer.writerow([n, "positive", "", "Virgin America", f"@airline thanks, trip {n}!"])
    sets = gold_sets(settings(tmp_path, 12))
    assert sorted(sets) == ["airline", "seed"]
    assert len(sets["airline"]) == 12  # about 30 of the 300 are in the test split
    assert all(e.dataset == "airline" and split_of(e.text) == "test" for e in sets["airline"])
