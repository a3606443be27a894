"""Triton Python backend of the constant-time stub: a fixed keyword lexicon, no encoder.

Same input and outputs as the real `tonewatch` model (TEXT -> sentiment_probs[3],
risk_probs[7]). Used by the end-to-end benchmark (the pipeline's own cost, without the
encoder) and by the fault tests, which need exact, known verdicts for every generated message
(tests/unit/test_generator.py checks the generator's templates against `score`).

Scoring, in microseconds per text and deterministic:
- a risk scores RISK_HIT when one of its phrases occurs, else RISK_MISS;
- sentiment follows (positive phrases) - (negative phrases + risk phrases): 0 is neutral,
  each step away adds 0.1 to the winning side from 0.65 up to 0.95.

Self-contained on purpose: it is copied into the version folder and needs only numpy. It
imports triton_python_backend_utils lazily, so that tests can load `score` without Triton.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

SENTIMENT_LABELS = ("negative", "neutral", "positive")
RISK_LABELS = (
    "fraud",
    "legal_regulatory",
    "financial_distress",
    "service_outage",
    "product_safety",
    "churn",
    "toxicity",
)
RISK_HIT = 0.95
RISK_MISS = 0.02

RISK_PHRASES: dict[str, tuple[str, ...]] = {
    "fraud": (
        "fraud", "fraudulent", "accounting fraud", "securities fraud", "embezzlement",
        "ponzi", "cooked the books", "insider trading",
    ),
    "legal_regulatory": (
        "sec probe", "sec investigation", "lawsuit", "class action", "sued", "subpoena",
        "indicted", "indictment", "charged with", "criminal charges", "fraud charges",
        "antitrust", "fined",
    ),
    "financial_distress": (
        "bankruptcy", "insolvency", "insolvent", "chapter 11", "liquidity crisis",
        "going concern", "debt default", "defaults on",
    ),
    "service_outage": (
        "outage", "service disruption", "site is down", "app is down", "can't log in",
        "cannot log in", "offline for hours",
    ),
    "product_safety": (
        "burn", "burns", "burned", "burnt", "fire", "caught fire", "fire hazard", "overheat",
        "overheats", "overheated", "overheating", "smoke", "electric shock", "sparked",
        "melted", "recall", "recalled", "unsafe",
    ),
    "churn": (
        "closing my account", "close my account", "cancel my subscription",
        "cancelling my subscription", "taking my business elsewhere", "switching banks",
        "switching providers",
    ),
    "toxicity": ("idiot", "idiots", "stupid", "moron", "morons", "clowns", "shut up"),
}  # fmt: skip

NEGATIVE_PHRASES: tuple[str, ...] = (
    "terrible", "awful", "horrible", "worst", "bad", "poor", "broken", "disappointed",
    "disappointing", "angry", "furious", "livid", "unacceptable", "ridiculous", "outrageous",
    "useless", "waste", "hate", "frustrating", "frustrated", "fed up", "sick of", "ignored",
    "still waiting", "nobody", "late", "dangerous", "dangerously", "scary", "plunge", "plunges",
    "plunged", "tumble", "tumbles", "slump", "slumps", "sink", "sinks", "slip", "slips",
    "slide", "slides", "misses", "downgrade", "downgrades", "downgraded", "weak", "worse",
    "scandal", "crisis", "arrested", "flimsy",
)  # fmt: skip

POSITIVE_PHRASES: tuple[str, ...] = (
    "great", "excellent", "love", "loved", "perfect", "perfectly", "amazing", "fantastic",
    "wonderful", "happy", "pleased", "delighted", "brilliant", "superb", "recommend",
    "helpful", "thanks", "thank", "appreciate", "record", "beats", "surge", "surges", "soar",
    "soars", "jump", "jumps", "rally", "rallies", "climb", "climbs", "gains", "upgrade",
    "upgrades", "upgraded", "strong", "growth", "wins", "boost", "boosts", "solid",
    "reliable", "sturdy", "bullish", "all-time high",
)  # fmt: skip


def _pattern(phrases: Iterable[str]) -> re.Pattern[str]:
    """Whole words or phrases, longest first, so that 'caught fire' counts once, not twice."""
    alternation = "|".join(re.escape(p) for p in sorted(set(phrases), key=len, reverse=True))
    return re.compile(rf"(?<![\w'-])(?:{alternation})(?![\w'-])")


_RISK_PATTERNS = [_pattern(RISK_PHRASES[risk]) for risk in RISK_LABELS]
_NEGATIVE = _pattern(NEGATIVE_PHRASES)
_POSITIVE = _pattern(POSITIVE_PHRASES)
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    return _SPACES.sub(" ", text.lower().replace("\u2019", "'"))


def score(text: str) -> tuple[list[float], list[float]]:
    """(sentiment probabilities, risk probabilities) of one text, in label order."""
    text = normalise(text)
    risk_hits = [len(pattern.findall(text)) for pattern in _RISK_PATTERNS]
    negative = len(_NEGATIVE.findall(text)) + sum(risk_hits)
    positive = len(_POSITIVE.findall(text))
    risks = [RISK_HIT if hits else RISK_MISS for hits in risk_hits]
    balance = positive - negative
    if balance == 0:
        sentiment = [0.1, 0.8, 0.1] if negative == 0 else [0.3, 0.4, 0.3]
        return sentiment, risks
    winner = round(0.55 + 0.1 * min(abs(balance), 4), 2)
    rest = 1.0 - winner
    if balance < 0:
        return [winner, rest * 0.75, rest * 0.25], risks
    return [rest * 0.25, rest * 0.75, winner], risks


def score_batch(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    sentiment = np.empty((len(texts), len(SENTIMENT_LABELS)), dtype=np.float32)
    risk = np.empty((len(texts), len(RISK_LABELS)), dtype=np.float32)
    for i, text in enumerate(texts):
        sentiment[i], risk[i] = score(text)
    return sentiment, risk


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        import triton_python_backend_utils as pb_utils

        self.pb_utils = pb_utils

    def execute(self, requests: list[Any]) -> list[Any]:
        pb_utils = self.pb_utils
        responses = []
        for request in requests:
            column = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy().reshape(-1)
            texts = [t.decode("utf-8", errors="replace") for t in column]
            sentiment, risk = score_batch(texts)
            responses.append(
                pb_utils.InferenceResponse(
                    [
                        pb_utils.Tensor("sentiment_probs", sentiment),
                        pb_utils.Tensor("risk_probs", risk),
                    ]
                )
            )
        return responses
