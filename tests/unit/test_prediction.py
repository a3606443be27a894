import dataclasses

import numpy as np
import pytest

from inference.client import Prediction
from tonewatch.contracts import RISK_LABELS, SENTIMENT_LABELS, Classification

pytestmark = pytest.mark.unit

NO_RISK = [0.0] * 7


def test_label_order_is_the_model_output_order() -> None:
    assert SENTIMENT_LABELS == ("negative", "neutral", "positive")
    assert RISK_LABELS == (
        "fraud",
        "legal_regulatory",
        "financial_distress",
        "service_outage",
        "product_safety",
        "churn",
        "toxicity",
    )


@pytest.mark.parametrize("index", range(3))
def test_the_sentiment_is_the_argmax_label(index: int) -> None:
    row = [0.1, 0.1, 0.1]
    row[index] = 0.8
    prediction = Prediction.from_rows(row, NO_RISK, "1")
    assert prediction.sentiment == SENTIMENT_LABELS[index]


def test_scores_and_risks_map_each_position_to_its_label() -> None:
    risks = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07]
    prediction = Prediction.from_rows([0.2, 0.3, 0.5], risks, "7")
    assert prediction.scores == {"negative": 0.2, "neutral": 0.3, "positive": 0.5}
    assert prediction.risks == {
        "fraud": 0.01,
        "legal_regulatory": 0.02,
        "financial_distress": 0.03,
        "service_outage": 0.04,
        "product_safety": 0.05,
        "churn": 0.06,
        "toxicity": 0.07,
    }
    assert list(prediction.scores) == list(SENTIMENT_LABELS)
    assert list(prediction.risks) == list(RISK_LABELS)
    assert prediction.model_version == "7"


def test_float32_model_rows_become_plain_floats() -> None:
    sentiment = np.array([0.7, 0.2, 0.1], dtype=np.float32)
    risk = np.linspace(0, 1, 7, dtype=np.float32)
    prediction = Prediction.from_rows(sentiment, risk, "2")
    assert prediction.sentiment == "negative"
    assert all(type(v) is float for v in [*prediction.scores.values(), *prediction.risks.values()])
    assert prediction.scores["negative"] == pytest.approx(0.7)
    assert prediction.risks["toxicity"] == pytest.approx(1.0)


def test_a_tie_goes_to_the_first_label_in_order() -> None:
    assert Prediction.from_rows([0.1, 0.45, 0.45], NO_RISK, "1").sentiment == "neutral"


@pytest.mark.parametrize(
    ("sentiment", "risk", "message"),
    [
        ([0.5, 0.5], NO_RISK, r"sentiment_probs row has shape \(2,\), expected \(3,\)"),
        ([0.2, 0.3, 0.5], [0.0] * 8, r"risk_probs row has shape \(8,\), expected \(7,\)"),
        ([[0.2, 0.3, 0.5]], NO_RISK, r"sentiment_probs row has shape \(1, 3\)"),
    ],
)
def test_rows_of_the_wrong_size_are_rejected(
    sentiment: list[float], risk: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Prediction.from_rows(sentiment, risk, "1")


def test_predictions_are_frozen_and_fit_the_shared_contract() -> None:
    prediction = Prediction.from_rows([0.1, 0.2, 0.7], NO_RISK, "4")
    with pytest.raises(dataclasses.FrozenInstanceError):
        prediction.model_version = "5"  # type: ignore[misc]
    result = Classification(id="a", **dataclasses.asdict(prediction))
    assert result.sentiment == "positive"
    assert result.model_version == "4"
