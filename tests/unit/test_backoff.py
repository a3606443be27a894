"""The one retry delay (tonewatch.backoff), shared by the Triton client, the sinks and the
webhook deliveries."""

from __future__ import annotations

import random

import pytest

from tonewatch.backoff import backoff_s

pytestmark = pytest.mark.unit


def test_retry_delays_use_full_jitter_under_a_cap() -> None:
    random.seed(7)
    for attempts, ceiling in [(0, 2.0), (1, 4.0), (3, 16.0), (10, 60.0), (1000, 60.0)]:
        delays = [backoff_s(attempts, 2.0, 60.0) for _ in range(300)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > 0.8 * ceiling  # spread over the whole range, not a fixed step
        assert min(delays) < 0.2 * ceiling


def test_a_seeded_generator_repeats_its_delays() -> None:
    first = [backoff_s(n, 0.05, 2.0, random.Random(3)) for n in range(8)]
    assert first == [backoff_s(n, 0.05, 2.0, random.Random(3)) for n in range(8)]
    assert all(0 <= d <= min(2.0, 0.05 * 2**n) for n, d in enumerate(first))
