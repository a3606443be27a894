"""What every dataset loader returns: examples in our label space, plus what it skipped."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from tonewatch.contracts import Risk, Sentiment, Source


@dataclass(frozen=True)
class Example:
    """One labelled text. Labels a dataset does not annotate are absent, not negative.

    `risks` holds only the risk labels this dataset can vouch for (True = present,
    False = known absent); a risk missing from the mapping is unknown and masked in training.
    """

    text: str
    dataset: str
    source: Source
    sentiment: Sentiment | None
    risks: Mapping[Risk, bool] = field(default_factory=dict)


@dataclass
class LoadReport:
    """How a load went: how many rows became examples, and why the others did not."""

    dataset: str
    loaded: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


@dataclass
class Dataset:
    name: str
    licence: str
    examples: list[Example]
    report: LoadReport
