"""A circuit breaker: stop hammering a server that keeps failing, probe it now and then.

closed --(threshold consecutive failures)--> open --(reset timeout)--> half-open
half-open --(trial succeeds)--> closed;  half-open --(trial fails)--> open
"""

from __future__ import annotations

import enum
import time
from collections import Counter
from collections.abc import Callable

from inference.exceptions import CircuitOpenError


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self.clock = clock
        self.failures = 0
        self.opened_at = 0.0
        self.trial_in_flight = False
        self._state = BreakerState.CLOSED
        self.transitions: Counter[BreakerState] = Counter()

    @property
    def state(self) -> BreakerState:
        if (
            self._state is BreakerState.OPEN
            and self.clock() - self.opened_at >= self.reset_timeout_s
        ):
            self._move(BreakerState.HALF_OPEN)
        return self._state

    def _move(self, state: BreakerState) -> None:
        if state is not self._state:
            self._state = state
            self.transitions[state] += 1
        if state is BreakerState.OPEN:
            self.opened_at = self.clock()
        self.trial_in_flight = False

    def before_call(self) -> None:
        """Raise CircuitOpenError unless a call may go out now."""
        state = self.state
        if state is BreakerState.OPEN:
            raise CircuitOpenError(self.reset_timeout_s - (self.clock() - self.opened_at))
        if state is BreakerState.HALF_OPEN:
            if self.trial_in_flight:
                raise CircuitOpenError(0.0)
            self.trial_in_flight = True

    def record_success(self) -> None:
        self.failures = 0
        self._move(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self.failures += 1
        if self._state is BreakerState.HALF_OPEN or self.failures >= self.failure_threshold:
            self._move(BreakerState.OPEN)
