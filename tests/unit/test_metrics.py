import numpy as np
import pytest

from retrain.metrics import (
    binary_prf,
    confusion_matrix,
    expected_calibration_error,
    macro_f1,
    per_class,
)
from retrain.splits import split_of

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
