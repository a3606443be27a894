"""A frozen train/dev/test split of every dataset, and the held-out feedback, by a hash of
each text.

Hashing the text (not shuffling rows) keeps an example in the same split whatever else the
file holds, across runs and machines: the test split is a stable gold set for the gate,
and a feedback text is held out in every retrain round or in none.
"""

from __future__ import annotations

import hashlib
from typing import Final, Literal

Split = Literal["train", "dev", "test"]
DEV_SHARE = 0.1
TEST_SHARE = 0.1
# Salted, so that the held-out feedback is not the test split's texts (nor any split's).
_HOLDOUT_SALT: Final = b"tonewatch:holdout:"


def normalise(text: str) -> str:
    """The form texts are compared in: the same text in any case or outer spacing."""
    return text.strip().lower()


def split_of(text: str) -> Split:
    position = _position(text)
    if position < TEST_SHARE:
        return "test"
    if position < TEST_SHARE + DEV_SHARE:
        return "dev"
    return "train"


def held_out(text: str, share: float) -> bool:
    """Whether labelled feedback on `text` is held out to judge challengers (and never
    trained on). A larger share only adds texts."""
    return _position(text, _HOLDOUT_SALT) < share


def _position(text: str, salt: bytes = b"") -> float:
    """Where the normalised text falls in [0, 1)."""
    digest = hashlib.sha256(salt + normalise(text).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def fingerprint(text: str) -> str:
    """The sha256 of the normalised text: the same text in any case or outer spacing."""
    return hashlib.sha256(normalise(text).encode()).hexdigest()
