"""Evaluate a model per dataset: sentiment accuracy/macro-F1/ECE, per-risk P/R/F1."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from inference.model import LoadedModel
from retrain.datasets.base import Example
from retrain.metrics import (
    binary_prf,
    confusion_matrix,
    expected_calibration_error,
    macro_f1,
)
from tonewatch.contracts import RISK_LABELS, SENTIMENT_LABELS

Probabilities = NDArray[np.float64]
Predictor = Callable[[list[str]], tuple[Probabilities, Probabilities]]
# One batch's (sentiment, risk) probabilities, in any float precision.
BatchPredictor = Callable[[list[str]], tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]]]]


@dataclass
class DatasetMetrics:
    dataset: str
    examples: int
    sentiment_examples: int = 0
    sentiment_accuracy: float | None = None
    sentiment_macro_f1: float | None = None
    sentiment_ece: float | None = None
    confusion: list[list[int]] | None = None
    risk: dict[str, dict[str, float]] = field(default_factory=dict)
    risk_macro_f1: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def batched(predict_batch: BatchPredictor, batch_size: int = 64) -> Predictor:
    """`predict_batch` over length-sorted batches, to keep padding small."""

    def predict(texts: list[str]) -> tuple[Probabilities, Probabilities]:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        sentiment = np.zeros((len(texts), len(SENTIMENT_LABELS)), dtype=np.float64)
        risk = np.zeros((len(texts), len(RISK_LABELS)), dtype=np.float64)
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            sentiment[index], risk[index] = predict_batch([texts[i] for i in index])
        return sentiment, risk

    return predict


def predictor_for(loaded: LoadedModel, batch_size: int = 64) -> Predictor:
    """In-process torch (fp32) prediction."""

    def predict_batch(
        texts: list[str],
    ) -> tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]]]:
        sentiment, risk = loaded.predict(texts)
        return sentiment.numpy(), risk.numpy()

    return batched(predict_batch, batch_size)


def served_predictor(version_dir: Path, batch_size: int = 64) -> Predictor:
    """A version folder's ONNX graph (int8 as exported), as Triton's backend runs it."""
    from inference.onnx_graph import load_graph

    return batched(load_graph(version_dir), batch_size)


def sentiment_truth(examples: Sequence[Example]) -> tuple[list[int], NDArray[np.int64]]:
    """The positions of the examples that have a sentiment, and their true classes."""
    labelled = [i for i, e in enumerate(examples) if e.sentiment is not None]
    truth = [SENTIMENT_LABELS.index(examples[i].sentiment) for i in labelled]  # type: ignore[arg-type,unused-ignore]
    return labelled, np.array(truth, dtype=np.int64)


def evaluate_examples(name: str, examples: Sequence[Example], predict: Predictor) -> DatasetMetrics:
    metrics = DatasetMetrics(dataset=name, examples=len(examples))
    if not examples:
        return metrics
    sentiment_probs, risk_probs = predict([e.text for e in examples])
    labelled, truth = sentiment_truth(examples)
    if labelled:
        probs = sentiment_probs[labelled]
        predicted = probs.argmax(axis=1).astype(np.int64)
        matrix = confusion_matrix(truth, predicted, len(SENTIMENT_LABELS))
        metrics.sentiment_examples = len(labelled)
        metrics.sentiment_accuracy = float((predicted == truth).mean())
        metrics.sentiment_macro_f1 = macro_f1(matrix)
        metrics.sentiment_ece = expected_calibration_error(probs, truth)
        metrics.confusion = matrix.tolist()
    f1s = []
    for k, risk in enumerate(RISK_LABELS):
        known = [i for i, e in enumerate(examples) if risk in e.risks]
        if not known:
            continue
        truth_risk = np.array([examples[i].risks[risk] for i in known], dtype=np.bool_)
        scores = binary_prf(risk_probs[known, k], truth_risk)
        metrics.risk[risk] = {
            "precision": scores.precision,
            "recall": scores.recall,
            "f1": scores.f1,
            "support": float(scores.support),
            "labelled": float(len(known)),
        }
        if scores.support:
            f1s.append(scores.f1)
    metrics.risk_macro_f1 = float(np.mean(f1s)) if f1s else None
    return metrics


def evaluate(
    examples_by_dataset: dict[str, list[Example]], predict: Predictor
) -> dict[str, DatasetMetrics]:
    return {
        name: evaluate_examples(name, examples, predict)
        for name, examples in sorted(examples_by_dataset.items())
    }
