"""Tumbling event-time windows and per-entity baselines: the maths behind the spike rules.

Pure functions over small dataclasses, so that a faust table can keep them as JSON and the
rules can be tested without Kafka. A window collects one entity's messages between
`start` and `start + window_s` by the messages' own timestamps, so a replay at any speed
makes the same windows. When a later window opens, the closed one is folded into the
entity's baseline, an exponentially weighted mean and variance of its volume, negative
share and net sentiment; empty windows in between count as volume 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

# Empty windows folded at most when an entity comes back from a long silence: enough to pull
# the volume baseline down, without looping over days of minutes.
MAX_EMPTY_WINDOWS: Final = 30
# Evidence ids kept per window (the newest win): enough to show, small enough for a table.
MAX_EVIDENCE: Final = 25


def window_start(epoch_s: float, window_s: int) -> float:
    return math.floor(epoch_s / window_s) * window_s


@dataclass
class Window:
    """The open window of one entity."""

    start: float
    count: int = 0
    negatives: int = 0
    positives: int = 0
    ids: list[str] = field(default_factory=list)
    negative_ids: list[str] = field(default_factory=list)

    def add(self, message_id: str, sentiment: str) -> None:
        self.count += 1
        self.ids = [*self.ids, message_id][-MAX_EVIDENCE:]
        if sentiment == "negative":
            self.negatives += 1
            self.negative_ids = [*self.negative_ids, message_id][-MAX_EVIDENCE:]
        elif sentiment == "positive":
            self.positives += 1

    @property
    def negative_share(self) -> float:
        return self.negatives / self.count if self.count else 0.0

    @property
    def net_sentiment(self) -> float:
        """(positives - negatives) / count, in [-1, 1]."""
        return (self.positives - self.negatives) / self.count if self.count else 0.0


@dataclass(frozen=True)
class Stat:
    """An exponentially weighted mean and variance."""

    mean: float = 0.0
    var: float = 0.0

    def update(self, value: float, alpha: float, first: bool) -> Stat:
        if first:
            return Stat(value, 0.0)
        # West's incremental form: the variance weighs each deviation like the mean does.
        diff = value - self.mean
        increment = alpha * diff
        return Stat(self.mean + increment, (1 - alpha) * (self.var + diff * increment))

    def std(self, floor: float) -> float:
        return max(math.sqrt(self.var), floor)

    def z(self, value: float, floor: float) -> float:
        return (value - self.mean) / self.std(floor)


@dataclass(frozen=True)
class Baseline:
    """What is normal for one entity, per window."""

    windows: int = 0
    volume: Stat = field(default_factory=Stat)
    negative_share: Stat = field(default_factory=Stat)
    net_sentiment: Stat = field(default_factory=Stat)
    # Shares are only defined for windows with messages.
    share_windows: int = 0

    def fold(self, window: Window, alpha: float) -> Baseline:
        first_share = self.share_windows == 0
        return Baseline(
            windows=self.windows + 1,
            volume=self.volume.update(window.count, alpha, self.windows == 0),
            negative_share=self.negative_share.update(window.negative_share, alpha, first_share)
            if window.count
            else self.negative_share,
            net_sentiment=self.net_sentiment.update(window.net_sentiment, alpha, first_share)
            if window.count
            else self.net_sentiment,
            share_windows=self.share_windows + (1 if window.count else 0),
        )


def advance(
    window: Window | None, baseline: Baseline, start: float, window_s: int, alpha: float
) -> tuple[Window, Baseline] | None:
    """Move an entity to the window that starts at `start`.

    Returns the window to add to and the baseline to judge it by, or None for a message
    older than the open window (a late message: it is scored and stored, but the window it
    belonged to has been judged already).
    """
    if window is None:
        return Window(start), baseline
    if start < window.start:
        return None
    if start == window.start:
        return window, baseline
    baseline = baseline.fold(window, alpha)
    empty = min(int((start - window.start) // window_s) - 1, MAX_EMPTY_WINDOWS)
    for _ in range(empty):
        baseline = baseline.fold(Window(0.0), alpha)
    return Window(start), baseline
