"""A frozen train/dev/test split of every dataset, by a hash of each text.

Hashing the text (not shuffling rows) keeps an example in the same split whatever else the
file holds, across runs and machines: the test split is a stable gold set for the gate.
"""

from __future__ import annotations

import hashlib
from typing import Literal

Split = Literal["train", "dev", "test"]
DEV_SHARE = 0.1
TEST_SHARE = 0.1


def split_of(text: str) -> Split:
    digest = hashlib.sha256(text.strip().lower().encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    if position < TEST_SHARE:
        return "test"
    if position < TEST_SHARE + DEV_SHARE:
        return "dev"
    return "train"
