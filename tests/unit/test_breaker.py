import pytest

from inference.breaker import BreakerState, CircuitBreaker
from inference.exceptions import CircuitOpenError, InferenceUnavailable

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def state(breaker: CircuitBreaker) -> BreakerState:
    """Read the state afresh: mypy would keep the narrowing from an earlier assert."""
    return breaker.state


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def opened(clock: FakeClock, threshold: int = 3, reset_timeout_s: float = 10) -> CircuitBreaker:
    breaker = CircuitBreaker(
        failure_threshold=threshold, reset_timeout_s=reset_timeout_s, clock=clock
    )
    for _ in range(threshold):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    return breaker


def test_starts_closed_and_lets_calls_through(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    assert breaker.state is BreakerState.CLOSED
    assert str(breaker.state) == "closed"  # a str enum, ready for metric labels and logs
    assert all(breaker.allow() for _ in range(100))
    assert breaker.retry_in_s == 0


def test_opens_at_the_threshold_of_consecutive_failures_not_before(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=10, clock=clock)
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.before_call()
    breaker.record_failure()
    assert state(breaker) is BreakerState.OPEN
    assert breaker.failures == 3


def test_a_success_resets_the_count(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=clock)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures == 1


def test_open_fails_fast_and_says_how_long_to_wait(clock: FakeClock) -> None:
    breaker = opened(clock, reset_timeout_s=10)
    clock.now += 4
    assert not breaker.allow()
    assert breaker.retry_in_s == pytest.approx(6)
    with pytest.raises(CircuitOpenError, match=r"next try in 6\.0s") as info:
        breaker.before_call()
    assert info.value.retry_in_s == pytest.approx(6)
    assert isinstance(info.value, InferenceUnavailable)  # callers wait, as for a down server


def test_failures_while_open_do_not_extend_the_wait(clock: FakeClock) -> None:
    breaker = opened(clock, reset_timeout_s=10)
    clock.now += 9
    breaker.record_failure()  # a call that went out before the breaker opened
    clock.now += 1
    assert breaker.state is BreakerState.HALF_OPEN


def test_half_open_after_the_reset_timeout_lets_exactly_one_trial_through(
    clock: FakeClock,
) -> None:
    breaker = opened(clock, reset_timeout_s=5)
    clock.now += 4.999
    assert breaker.state is BreakerState.OPEN
    clock.now += 0.001
    assert state(breaker) is BreakerState.HALF_OPEN
    breaker.before_call()  # the trial
    assert not breaker.allow()
    with pytest.raises(CircuitOpenError):
        breaker.before_call()  # a second caller waits for the trial's outcome
    clock.now += 100
    assert not breaker.allow()  # still one trial at a time, however long it takes


def test_a_successful_trial_closes(clock: FakeClock) -> None:
    breaker = opened(clock, reset_timeout_s=5)
    clock.now += 5
    breaker.before_call()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures == 0
    assert all(breaker.allow() for _ in range(10))


def test_a_failed_trial_reopens_for_a_full_timeout(clock: FakeClock) -> None:
    breaker = opened(clock, threshold=3, reset_timeout_s=5)
    clock.now += 7
    breaker.before_call()
    breaker.record_failure()  # one failure is enough in half-open
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_in_s == pytest.approx(5)
    clock.now += 5
    assert breaker.allow()


def test_a_trial_without_a_verdict_frees_the_slot(clock: FakeClock) -> None:
    breaker = opened(clock, reset_timeout_s=5)
    clock.now += 5
    assert breaker.allow()
    breaker.release()  # e.g. the trial call was cancelled
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()


def test_transitions_are_counted_per_state_entered(clock: FakeClock) -> None:
    breaker = opened(clock, threshold=1, reset_timeout_s=5)
    clock.now += 5
    breaker.before_call()
    breaker.record_failure()
    clock.now += 5
    breaker.before_call()
    breaker.record_success()
    breaker.record_success()  # already closed: no transition
    assert breaker.transitions == {
        BreakerState.OPEN: 2,
        BreakerState.HALF_OPEN: 2,
        BreakerState.CLOSED: 1,
    }


@pytest.mark.parametrize(("threshold", "reset_timeout_s"), [(0, 1.0), (-1, 1.0), (1, -0.1)])
def test_rejects_settings_that_make_no_sense(threshold: int, reset_timeout_s: float) -> None:
    with pytest.raises(ValueError, match="must"):
        CircuitBreaker(failure_threshold=threshold, reset_timeout_s=reset_timeout_s)
