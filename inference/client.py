"""The async Triton client the stream agents and the CLI use.

Bounded concurrency (a semaphore), a deadline per call, retries with exponential backoff
and full jitter for transient failures only, and a circuit breaker in front of it all.
Every prediction carries the model version Triton says produced it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
import tritonclient.grpc.aio as grpcclient
from numpy.typing import NDArray
from tritonclient.utils import InferenceServerException

from inference.breaker import CircuitBreaker
from inference.exceptions import (
    InferenceError,
    InferenceTimeout,
    InferenceUnavailable,
    InvalidInferenceResponse,
)
from tonewatch.contracts import RISK_LABELS, SENTIMENT_LABELS, Risk, Sentiment

TRANSIENT = {
    "StatusCode.UNAVAILABLE",
    "StatusCode.DEADLINE_EXCEEDED",
    "StatusCode.RESOURCE_EXHAUSTED",
}
TIMEOUT = "StatusCode.DEADLINE_EXCEEDED"
NOT_SERVED = "StatusCode.NOT_FOUND"  # the model is not loaded


@dataclass(frozen=True)
class Prediction:
    sentiment: Sentiment
    scores: dict[Sentiment, float]
    risks: dict[Risk, float]
    model_version: str

    @classmethod
    def from_rows(
        cls, sentiment: NDArray[np.float32], risk: NDArray[np.float32], model_version: str
    ) -> Prediction:
        scores = {label: float(p) for label, p in zip(SENTIMENT_LABELS, sentiment, strict=True)}
        return cls(
            sentiment=SENTIMENT_LABELS[int(np.argmax(sentiment))],
            scores=scores,
            risks={label: float(p) for label, p in zip(RISK_LABELS, risk, strict=True)},
            model_version=model_version,
        )


class TritonClassifier:
    def __init__(
        self,
        url: str,
        model_name: str = "tonewatch",
        *,
        timeout_s: float = 5.0,
        max_concurrency: int = 8,
        max_batch: int = 64,
        retries: int = 3,
        backoff_base_s: float = 0.05,
        backoff_max_s: float = 2.0,
        breaker: CircuitBreaker | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.url, self.model_name = url, model_name
        self.timeout_s, self.max_batch, self.retries = timeout_s, max_batch, retries
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self.breaker = breaker or CircuitBreaker()
        self.rng = rng or random.Random()
        self.retried = 0
        self._slots = asyncio.Semaphore(max_concurrency)
        self._client = grpcclient.InferenceServerClient(url)

    async def __aenter__(self) -> TritonClassifier:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._client.close()

    async def classify(self, texts: Sequence[str]) -> list[Prediction]:
        """Predictions in input order; larger inputs go out as concurrent chunks."""
        chunks = [texts[i : i + self.max_batch] for i in range(0, len(texts), self.max_batch)]
        results = await asyncio.gather(*(self._classify_chunk(chunk) for chunk in chunks))
        return [p for chunk in results for p in chunk]

    async def _classify_chunk(self, texts: Sequence[str]) -> list[Prediction]:
        attempt = 0
        while True:
            self.breaker.before_call()
            try:
                async with self._slots:
                    predictions = await self._infer(texts)
            except InferenceServerException as exc:
                status = str(exc.status())
                if status not in TRANSIENT:
                    # Our request was wrong, not the server: the breaker stays as it is.
                    self.breaker.record_success()
                    kind = InferenceUnavailable if status == NOT_SERVED else InferenceError
                    raise kind(self._describe(exc)) from exc
                self.breaker.record_failure()
                if attempt >= self.retries:
                    kind = InferenceTimeout if status == TIMEOUT else InferenceUnavailable
                    raise kind(f"{self._describe(exc)} (after {attempt + 1} attempts)") from exc
            else:
                self.breaker.record_success()
                return predictions
            attempt += 1
            self.retried += 1
            ceiling = min(self.backoff_max_s, self.backoff_base_s * 2**attempt)
            await asyncio.sleep(self.rng.uniform(0, ceiling))

    async def _infer(self, texts: Sequence[str]) -> list[Prediction]:
        batch = np.array([[t.encode("utf-8")] for t in texts], dtype=np.object_)
        tensor = grpcclient.InferInput("TEXT", list(batch.shape), "BYTES")
        tensor.set_data_from_numpy(batch)
        outputs = [
            grpcclient.InferRequestedOutput("sentiment_probs"),
            grpcclient.InferRequestedOutput("risk_probs"),
        ]
        result: Any = await self._client.infer(
            self.model_name, [tensor], outputs=outputs, client_timeout=self.timeout_s
        )
        sentiment, risk = result.as_numpy("sentiment_probs"), result.as_numpy("risk_probs")
        n = len(texts)
        if sentiment is None or risk is None or sentiment.shape != (n, 3) or risk.shape != (n, 7):
            shapes = f"{getattr(sentiment, 'shape', None)} and {getattr(risk, 'shape', None)}"
            raise InvalidInferenceResponse(
                f"{self.model_name} at {self.url} returned shapes {shapes} for {n} texts"
            )
        version = str(result.get_response().model_version)
        return [Prediction.from_rows(s, r, version) for s, r in zip(sentiment, risk, strict=True)]

    def _describe(self, exc: InferenceServerException) -> str:
        return f"Triton {self.url}, model {self.model_name!r}: {exc.message() or exc}"


__all__ = ["Prediction", "TritonClassifier"]
