"""The data contracts every part of tonewatch shares: a leaf module that anything may import.

Keep these stable; version them when they change.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

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
SENTIMENT_LABELS: Final[tuple[Sentiment, ...]] = get_args(Sentiment)
RISK_LABELS: Final[tuple[Risk, ...]] = get_args(Risk)
SOURCES: Final[tuple[Source, ...]] = get_args(Source)

# Longer texts are rejected, never silently cut (the model itself truncates to its tokens).
MAX_TEXT_CHARS: Final = 20_000


class ClassifyRequest(BaseModel):
    """One line of `tonewatch classify` input."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=256)
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    source: Source | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Classification(BaseModel):
    """What the model says about one text, and which model version said it."""

    id: str
    sentiment: Sentiment
    scores: dict[Sentiment, float]
    risks: dict[Risk, float]
    model_version: str
