"""The log throttle that keeps a broker outage from flooding the worker's log."""

from __future__ import annotations

import logging

import pytest

from streams.log_throttle import Throttle

pytestmark = pytest.mark.unit


def record(msg: str, *args: object, name: str = "aiokafka.client") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_one_record_per_template_per_period_then_a_count_of_the_rest() -> None:
    now = [0.0]
    throttle = Throttle(every_s=10, clock=lambda: now[0])
    template = "Unable connect to node with id %s: %s"
    assert throttle.filter(record(template, 1, "refused"))
    for step in range(1, 100):
        now[0] = step * 0.1
        assert not throttle.filter(record(template, 1, f"refused {step}"))
    # Another template, or another logger, is not held back by the first.
    assert throttle.filter(record("Unable to update metadata from %s", [1]))
    assert throttle.filter(record(template, 1, "x", name="aiokafka.conn"))
    now[0] = 10.0
    passed = record(template, 1, "refused")
    assert throttle.filter(passed)
    assert passed.getMessage() == (
        "Unable connect to node with id 1: refused [99 more like this in the last 10s]"
    )
    now[0] = 10.5
    assert not throttle.filter(record(template, 1, "refused"))
