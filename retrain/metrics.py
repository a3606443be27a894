"""Classification metrics, in plain numpy so that they are easy to test and to trust."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class PRF:
    precision: float
    recall: float
    f1: float
    support: int


def confusion_matrix(truth: IntArray, predicted: IntArray, classes: int) -> IntArray:
    """Rows are true labels, columns predicted."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def prf(true_positive: int, false_positive: int, false_negative: int) -> PRF:
    precision = true_positive / (true_positive + false_positive) if true_positive else 0.0
    recall = true_positive / (true_positive + false_negative) if true_positive else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PRF(precision, recall, f1, true_positive + false_negative)


def per_class(matrix: IntArray) -> list[PRF]:
    return [
        prf(
            int(matrix[k, k]),
            int(matrix[:, k].sum() - matrix[k, k]),
            int(matrix[k, :].sum() - matrix[k, k]),
        )
        for k in range(matrix.shape[0])
    ]


def macro_f1(matrix: IntArray) -> float:
    """Mean F1 over the classes that occur in the truth (absent classes would score 0)."""
    scores = [c.f1 for c in per_class(matrix) if c.support > 0]
    return float(np.mean(scores)) if scores else 0.0


def expected_calibration_error(probs: FloatArray, truth: IntArray, bins: int = 15) -> float:
    """ECE of the top-label confidence: the gap between confidence and accuracy, per bin."""
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == truth).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for low, high in itertools.pairwise(edges):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def binary_prf(probs: FloatArray, truth: NDArray[np.bool_], threshold: float = 0.5) -> PRF:
    predicted = probs >= threshold
    return prf(
        int((predicted & truth).sum()),
        int((predicted & ~truth).sum()),
        int((~predicted & truth).sum()),
    )


def paired_bootstrap_gain(
    truth: IntArray,
    first: IntArray,
    second: IntArray,
    classes: int,
    resamples: int = 2000,
    seed: int = 0,
) -> FloatArray:
    """Macro-F1 of the `second` predictions minus that of the `first`, on `resamples`
    resamples of the examples (with replacement, the same rows for both): the spread of the
    gain that the choice of examples alone would give. Seeded, so a decision repeats."""
    rng = np.random.default_rng(seed)
    size = len(truth)
    if not size:
        return np.zeros(resamples, dtype=np.float64)
    cells_first = truth * classes + first
    cells_second = truth * classes + second
    gains = np.empty(resamples, dtype=np.float64)
    for r in range(resamples):
        weights = np.bincount(rng.integers(0, size, size), minlength=size)
        gains[r] = macro_f1(_weighted_matrix(cells_second, weights, classes)) - macro_f1(
            _weighted_matrix(cells_first, weights, classes)
        )
    return gains


def _weighted_matrix(cells: IntArray, weights: IntArray, classes: int) -> IntArray:
    """The confusion matrix of examples each counted `weights` times (true * k + predicted)."""
    counts = np.bincount(cells, weights=weights, minlength=classes * classes)
    return counts.round().astype(np.int64).reshape(classes, classes)
