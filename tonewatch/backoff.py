"""The one retry delay of every retrier (Triton calls, sinks waiting out an outage, webhook
deliveries): exponential, capped, with full jitter, so that clients that failed together do
not retry in step. A leaf: it imports nothing of the project."""

from __future__ import annotations

import random


def backoff_s(
    doublings: int, base_s: float, cap_s: float, rng: random.Random | None = None
) -> float:
    """A uniform delay up to `base_s` * 2**`doublings`, capped at `cap_s`."""
    ceiling = min(cap_s, base_s * 2.0 ** min(max(doublings, 0), 32))
    return (rng or random).uniform(0.0, ceiling)
