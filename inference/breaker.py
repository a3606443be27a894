"""A circuit breaker: stop hammering a server that keeps failing, and probe it now and then.

closed --(failure_threshold consecutive failures)--> open --(reset_timeout_s)--> half_open
half_open --(the one trial call succeeds)--> closed
half_open --(the trial call fails)--> open

Pure logic with no I/O and an injected clock, so tests can drive every transition.
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
    """Tracks the consecutive failures of one downstream and decides whether a call may go out.

    Not thread-safe. It is meant for one asyncio event loop, where nothing runs between
    `allow()` and the call it permits.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, got {failure_threshold}")
        if reset_timeout_s < 0:
            raise ValueError(f"reset_timeout_s must not be negative, got {reset_timeout_s}")
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self.clock = clock
        self.failures = 0
        """Consecutive failures since the last success."""
        self.transitions: Counter[BreakerState] = Counter()
        """How often the breaker entered each state, for metrics."""
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._trial_out = False

    @property
    def state(self) -> BreakerState:
        """The current state. An open breaker turns half-open once its reset timeout has passed."""
        if (
            self._state is BreakerState.OPEN
            and self.clock() - self._opened_at >= self.reset_timeout_s
        ):
            self._enter(BreakerState.HALF_OPEN)
        return self._state

    @property
    def retry_in_s(self) -> float:
        """Seconds until an open breaker lets a trial through (0 when it is not open)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.reset_timeout_s - (self.clock() - self._opened_at))

    def allow(self) -> bool:
        """Whether a call may go out now. When half-open, a True claims the single trial."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial_out:
            self._trial_out = True
            return True
        return False

    def before_call(self) -> None:
        """Like `allow()`, but raises CircuitOpenError when the call may not go out."""
        if not self.allow():
            raise CircuitOpenError(self.retry_in_s)

    def record_success(self) -> None:
        """The server answered: close the breaker and forget earlier failures."""
        self.failures = 0
        self._trial_out = False
        self._enter(BreakerState.CLOSED)

    def record_failure(self) -> None:
        """A failed trial re-opens the breaker; in closed state the threshold opens it."""
        self.failures += 1
        self._trial_out = False
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.CLOSED and self.failures >= self.failure_threshold
        ):
            self._opened_at = self.clock()
            self._enter(BreakerState.OPEN)

    def release(self) -> None:
        """A call ended without a verdict (it was cancelled): free the half-open trial."""
        self._trial_out = False

    def _enter(self, state: BreakerState) -> None:
        if state is not self._state:
            self._state = state
            self.transitions[state] += 1
