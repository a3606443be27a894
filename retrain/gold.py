"""The frozen gold sets of the promotion gate: each base dataset's test split, capped.

Frozen twice over: the split hashes each text (retrain.splits), so a text is in the test
split on every machine and in every run; and the cap keeps the first N in another hash
order (not a random draw), so a set changes only when its data does, and a larger cap
only adds examples. The seed set ships with the repository, so there is a gold set even
without ../shared/data. Evaluation-only subsets (datasets.EVALUATION_ONLY) are left out:
their sentences are a base set's, and the gate would count them twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from retrain import datasets
from retrain.datasets import seed
from retrain.datasets.base import Example
from retrain.train import split_examples

if TYPE_CHECKING:
    from tonewatch.config import Settings

# Salted, so that the cap's order is not the split's (which put these texts in "test").
_ORDER_SALT: Final = b"tonewatch:gold:"


def gold_sets(settings: Settings) -> dict[str, list[Example]]:
    """Gold set name (the dataset's) -> at most `retrain_gold_cap` test-split examples."""
    names = datasets.trainable(settings.data_dir)
    if seed.NAME not in names:  # `available` always lists it; this only makes it certain
        names.append(seed.NAME)
    loaded = datasets.load_all(settings.data_dir, names)
    test = split_examples(loaded, "test")
    return {name: first_by_hash(test[name], settings.retrain_gold_cap) for name in sorted(test)}


def first_by_hash(examples: Sequence[Example], cap: int) -> list[Example]:
    """The first `cap` examples in a fixed order given by a hash of their text (and, for
    repeated texts, by their labels): the same whatever order the file had."""
    return sorted(examples, key=_order)[:cap]


def _order(example: Example) -> tuple[str, str, str, list[tuple[str, bool]]]:
    digest = hashlib.sha256(_ORDER_SALT + example.text.encode()).hexdigest()
    return (digest, example.text, example.sentiment or "", sorted(example.risks.items()))
