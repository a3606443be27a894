"""The data contracts every part of tonewatch shares: a leaf module that anything may import.

Keep these stable; version them when they change.
"""

from __future__ import annotations

from typing import Final, Literal

Sentiment = Literal["negative", "neutral", "positive"]
Risk = Literal[
    "fraud",
    "legal_regulatory",
    "financial_distress",
    "service_outage",
    "product_safety",
    "churn",
    "toxicity",
]
Source = Literal["news", "reviews", "chats"]

# Order matters: it is the order of the model's output vectors (sentiment_probs[3], risk_probs[7]).
SENTIMENT_LABELS: Final[tuple[Sentiment, ...]] = ("negative", "neutral", "positive")
RISK_LABELS: Final[tuple[Risk, ...]] = (
    "fraud",
    "legal_regulatory",
    "financial_distress",
    "service_outage",
    "product_safety",
    "churn",
    "toxicity",
)
SOURCES: Final[tuple[Source, ...]] = ("news", "reviews", "chats")
