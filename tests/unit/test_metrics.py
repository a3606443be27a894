import numpy as np
import pytest

from retrain.metrics import (
    binary_prf,
    confusion_matrix,
    expected_calibration_error,
    macro_f1,
    paired_bootstrap_gain,
    per_class,
)
from retrain.splits import fingerprint, held_out, split_of

pytestmark = pytest.mark.unit


def test_confusion_and_macro_f1_by_hand() -> None:
    truth = np.array([0, 0, 1, 1, 2, 2], dtype=np.int64)
    predicted = np.array([0, 1, 1, 1, 2, 0], dtype=np.int64)
    matrix = confusion_matrix(truth, predicted, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    scores = per_class(matrix)
    assert scores[1].precision == pytest.approx(2 / 3)
    assert scores[1].recall == 1.0
    # F1 per class: 0.5, 0.8, 0.667
    assert macro_f1(matrix) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_macro_f1_ignores_classes_absent_from_the_truth() -> None:
    matrix = confusion_matrix(np.array([0, 0]), np.array([0, 0]), 3)
    assert macro_f1(matrix) == 1.0


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_overconfident() -> None:
    # Four predictions at confidence 0.75, three of them right: perfectly calibrated.
    probs = np.array([[0.75, 0.25, 0.0]] * 4)
    assert expected_calibration_error(probs, np.array([0, 0, 0, 1])) == pytest.approx(0.0)
    confident_and_wrong = np.array([[0.99, 0.01, 0.0]] * 4)
    assert expected_calibration_error(confident_and_wrong, np.array([1, 1, 1, 1])) == (
        pytest.approx(0.99)
    )


def test_binary_prf_at_threshold() -> None:
    scores = binary_prf(np.array([0.9, 0.6, 0.4, 0.1]), np.array([True, False, True, False]))
    assert (scores.precision, scores.recall, scores.support) == (0.5, 0.5, 2)


def test_split_is_stable_and_near_80_10_10() -> None:
    texts = [f"sentence number {i}" for i in range(20_000)]
    splits: list[str] = [split_of(t) for t in texts]
    assert splits == [split_of(t) for t in texts]
    assert split_of("  Sentence Number 5 ") == split_of("sentence number 5")
    for name, share in (("train", 0.8), ("dev", 0.1), ("test", 0.1)):
        assert splits.count(name) / len(splits) == pytest.approx(share, abs=0.01)


def test_the_held_out_share_is_stable_normalised_growing_and_not_a_split() -> None:
    texts = [f"sentence number {i}" for i in range(20_000)]
    held = [t for t in texts if held_out(t, 0.2)]
    assert len(held) / len(texts) == pytest.approx(0.2, abs=0.01)
    assert held_out("  Sentence Number 5 ", 0.2) == held_out("sentence number 5", 0.2)
    # A larger share only adds texts.
    assert set(held) <= {t for t in texts if held_out(t, 0.3)}
    # Salted: the held-out texts fall in every split, in the splits' own proportions.
    splits = [split_of(t) for t in held]
    assert splits.count("test") / len(held) == pytest.approx(0.1, abs=0.02)
    assert fingerprint(" A Text") == fingerprint("a text") != fingerprint("a text.")


def test_the_paired_bootstrap_spreads_the_gain_around_the_observed_one() -> None:
    truth = np.array([i % 3 for i in range(90)], dtype=np.int64)
    same = paired_bootstrap_gain(truth, truth, truth, 3, resamples=200)
    assert np.all(same == 0.0)
    # The second model fixes every error of the first and makes none: never a loss.
    first = np.where(np.arange(90) < 30, (truth + 1) % 3, truth)
    gains = paired_bootstrap_gain(truth, first, truth, 3, resamples=500)
    observed = macro_f1(confusion_matrix(truth, truth, 3)) - macro_f1(
        confusion_matrix(truth, first, 3)
    )
    assert gains.min() > 0
    assert np.median(gains) == pytest.approx(observed, abs=0.05)
    # Seeded: the same resamples every time; swapping the models negates every gain.
    assert np.array_equal(gains, paired_bootstrap_gain(truth, first, truth, 3, resamples=500))
    assert np.allclose(paired_bootstrap_gain(truth, truth, first, 3, resamples=500), -gains)
    assert (
        paired_bootstrap_gain(truth[:0], truth[:0], truth[:0], 3, resamples=5).tolist() == [0] * 5
    )
