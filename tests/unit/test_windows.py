import pytest

from streams.windows import MAX_EMPTY_WINDOWS, Baseline, Stat, Window, advance, window_start

pytestmark = pytest.mark.unit


def test_window_start_floors_to_the_window() -> None:
    assert window_start(125.0, 60) == 120.0
    assert window_start(120.0, 60) == 120.0
    assert window_start(119.999, 60) == 60.0


def test_ew_stat_starts_at_the_first_value_then_weighs_the_newest() -> None:
    stat = Stat().update(10.0, 0.5, first=True)
    assert (stat.mean, stat.var) == (10.0, 0.0)
    stat = stat.update(20.0, 0.5, first=False)
    assert stat.mean == pytest.approx(15.0)
    assert stat.var == pytest.approx(25.0)  # (1 - a) * (0 + 10 * 5)
    assert stat.std(floor=1.0) == pytest.approx(5.0)
    assert Stat(3.0, 0.0).z(6.0, floor=1.0) == pytest.approx(3.0)  # the floor stops z = inf


def test_a_constant_series_has_no_variance() -> None:
    stat = Stat()
    for i in range(50):
        stat = stat.update(4.0, 0.2, first=i == 0)
    assert stat.mean == pytest.approx(4.0)
    assert stat.var == pytest.approx(0.0)


def test_window_counts_and_shares() -> None:
    window = Window(0.0)
    for i, sentiment in enumerate(["negative", "negative", "positive", "neutral"]):
        window.add(f"m{i}", sentiment)
    assert (window.count, window.negatives, window.positives) == (4, 2, 1)
    assert window.negative_share == 0.5
    assert window.net_sentiment == pytest.approx(-0.25)
    assert window.negative_ids == ["m0", "m1"]


def test_advance_folds_closed_and_empty_windows() -> None:
    window = Window(0.0)
    for i in range(4):
        window.add(f"m{i}", "neutral")
    moved = advance(window, Baseline(), 180.0, 60, alpha=0.5)
    assert moved is not None
    new, baseline = moved
    assert new.start == 180.0
    assert new.count == 0
    # the closed window (4 messages) and the two empty ones between
    assert baseline.windows == 3
    assert baseline.volume.mean == pytest.approx(1.0)  # 4 -> 2 -> 1
    assert baseline.share_windows == 1  # empty windows carry no share


def test_advance_keeps_the_open_window_and_refuses_late_messages() -> None:
    window = Window(120.0)
    assert advance(window, Baseline(), 120.0, 60, 0.2) == (window, Baseline())
    assert advance(window, Baseline(), 60.0, 60, 0.2) is None


def test_a_long_silence_folds_a_bounded_number_of_empty_windows() -> None:
    moved = advance(Window(0.0), Baseline(), 60.0 * 100_000, 60, 0.2)
    assert moved is not None
    assert moved[1].windows == 1 + MAX_EMPTY_WINDOWS
