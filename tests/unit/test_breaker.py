import pytest

from inference.breaker import BreakerState, CircuitBreaker
from inference.exceptions import CircuitOpenError

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_and_fails_fast_with_the_wait() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=10, clock=clock)
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state.value == "open"
    clock.now += 4
    with pytest.raises(CircuitOpenError) as info:
        breaker.before_call()
    assert info.value.retry_in_s == pytest.approx(6)


def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_half_open_lets_exactly_one_trial_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=5, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.before_call()  # the trial
    with pytest.raises(CircuitOpenError):
        breaker.before_call()  # a second caller waits for the trial's outcome


def test_trial_success_closes_and_trial_failure_reopens() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=5, clock=clock)
    breaker.record_failure()
    clock.now += 5
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state.value == "open"
    clock.now += 5
    breaker.before_call()
    breaker.record_success()
    assert breaker.state.value == "closed"
    assert breaker.transitions[BreakerState.OPEN] == 2
    assert breaker.transitions[BreakerState.CLOSED] == 1
