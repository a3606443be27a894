import pytest

from tonewatch import contracts

pytestmark = pytest.mark.unit


def test_label_order_is_the_model_output_order() -> None:
    assert contracts.SENTIMENT_LABELS == ("negative", "neutral", "positive")
    assert contracts.RISK_LABELS == (
        "fraud",
        "legal_regulatory",
        "financial_distress",
        "service_outage",
        "product_safety",
        "churn",
        "toxicity",
    )
    assert contracts.SOURCES == ("news", "reviews", "chats")
