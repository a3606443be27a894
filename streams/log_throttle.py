"""Keep a broker outage from flooding the logs.

While Kafka is down, aiokafka logs each failed connect and metadata refresh at ERROR, about a
thousand lines a second per worker (seen in the F3 fault test: 137k lines in 60 s). The
throttle lets the first record of each message template through, then at most one every
`every_s`, and says how many it held back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Final

AIOKAFKA_LOGGERS: Final = (
    "aiokafka", "aiokafka.client", "aiokafka.conn", "aiokafka.cluster",
    "aiokafka.consumer.fetcher", "aiokafka.consumer.group_coordinator",
    "aiokafka.producer.sender", "aiokafka.producer.producer",
)  # fmt: skip


class Throttle(logging.Filter):
    def __init__(self, every_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every_s = every_s
        self.clock = clock
        self._seen: dict[tuple[str, object], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)  # the template, whatever its arguments
        now = self.clock()
        last, held = self._seen.get(key, (-float("inf"), 0))
        if now - last < self.every_s:
            self._seen[key] = (last, held + 1)
            return False
        self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} [{held} more like this in the last {now - last:.0f}s]"
        return True


def throttle(loggers: Iterable[str] = AIOKAFKA_LOGGERS, every_s: float = 10.0) -> Throttle:
    """Install one throttle on each named logger (filters do not apply to child loggers)."""
    shared = Throttle(every_s)
    for name in loggers:
        logging.getLogger(name).addFilter(shared)
    return shared
