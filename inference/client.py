"""The async Triton client that the stream agents and the CLI use.

It bounds concurrency with a semaphore, gives each call a deadline, and retries transient
failures only, with exponential backoff and full jitter. A circuit breaker sits in front of
it all. Every prediction carries the model version that Triton says produced it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, TypeAlias

import numpy as np
import tritonclient.grpc.aio as grpcclient
from numpy.typing import NDArray
from tritonclient.grpc import MAX_GRPC_MESSAGE_SIZE
from tritonclient.utils import InferenceServerException

from inference.breaker import BreakerState, CircuitBreaker
from inference.exceptions import (
    CircuitOpenError,
    InferenceError,
    InferenceTimeout,
    InferenceUnavailable,
    InvalidInferenceResponse,
)
from tonewatch.backoff import backoff_s
from tonewatch.contracts import RISK_LABELS, SENTIMENT_LABELS, Risk, Sentiment

log = logging.getLogger(__name__)

INPUT: Final = "TEXT"
SENTIMENT_OUTPUT: Final = "sentiment_probs"
RISK_OUTPUT: Final = "risk_probs"

# tritonclient turns gRPC status codes into these strings.
_DEADLINE: Final = "StatusCode.DEADLINE_EXCEEDED"
_TRANSIENT: Final = frozenset(
    {"StatusCode.UNAVAILABLE", "StatusCode.RESOURCE_EXHAUSTED", _DEADLINE}
)
_NOT_SERVED: Final = "StatusCode.NOT_FOUND"  # the server is up, but the model is not loaded

_CHANNEL_ARGS: Final = [
    ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
    ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
    # By default gRPC waits up to 120 s between reconnects. During that wait, every call fails
    # at once, even after Triton is back.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]

FloatRow: TypeAlias = Sequence[float] | NDArray[np.floating[Any]]


@dataclass(frozen=True)
class Prediction:
    """What the model says about one text, and which model version said it."""

    sentiment: Sentiment
    scores: dict[Sentiment, float]
    risks: dict[Risk, float]
    model_version: str

    @classmethod
    def from_rows(
        cls, sentiment_probs: FloatRow, risk_probs: FloatRow, model_version: str
    ) -> Prediction:
        """Label one row of each model output. The rows follow SENTIMENT_LABELS and RISK_LABELS.

        The sentiment is the most likely label. On a tie it is the first in label order.
        """
        sentiment = _row(SENTIMENT_OUTPUT, sentiment_probs, len(SENTIMENT_LABELS))
        risk = _row(RISK_OUTPUT, risk_probs, len(RISK_LABELS))
        return cls(
            sentiment=SENTIMENT_LABELS[int(np.argmax(sentiment))],
            scores=dict(zip(SENTIMENT_LABELS, map(float, sentiment), strict=True)),
            risks=dict(zip(RISK_LABELS, map(float, risk), strict=True)),
            model_version=model_version,
        )


def _row(name: str, values: FloatRow, size: int) -> NDArray[np.float64]:
    row = np.asarray(values, dtype=np.float64)
    if row.shape != (size,):
        raise ValueError(f"{name} row has shape {row.shape}, expected ({size},)")
    return row


class TritonClassifier:
    """Classifies texts with the model that Triton serves. Many tasks may share one instance.

    Create it and use it inside one running event loop, because the gRPC channel belongs to
    that loop. Close it with `close()` or `async with`.
    """

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
        if timeout_s <= 0 or max_concurrency < 1 or max_batch < 1 or retries < 0:
            raise ValueError(
                "need timeout_s > 0, max_concurrency >= 1, max_batch >= 1 and retries >= 0; got "
                f"{timeout_s}, {max_concurrency}, {max_batch} and {retries}"
            )
        if not 0 <= backoff_base_s <= backoff_max_s:
            raise ValueError(
                f"need 0 <= backoff_base_s <= backoff_max_s; got {backoff_base_s}, {backoff_max_s}"
            )
        self.url = url
        self.model_name = model_name
        self.timeout_s = timeout_s
        self.max_batch = max_batch
        self.retries = retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.breaker = (
            breaker
            if breaker is not None
            else CircuitBreaker(failure_threshold=5, reset_timeout_s=10.0)
        )
        self.rng = rng if rng is not None else random.Random()
        self.retried = 0
        """Retries made so far, over all calls (for metrics)."""
        self.in_flight = 0
        """Calls in flight now; never above max_concurrency."""
        self.peak_in_flight = 0
        self.last_version: str | None = None
        """The model version of the latest answer."""
        self._target = f"Triton at {url}, model {model_name!r}"
        self._slots = asyncio.Semaphore(max_concurrency)
        self._client = grpcclient.InferenceServerClient(url, channel_args=_CHANNEL_ARGS)

    async def __aenter__(self) -> TritonClassifier:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the gRPC channel. Calls still in flight fail."""
        await self._client.close()

    async def is_ready(self) -> bool:
        """Whether the server answers and has the model loaded.

        This is a health probe. It skips the breaker and returns False rather than raising.
        """
        try:
            ready = await self._client.is_model_ready(
                self.model_name, client_timeout=self.timeout_s
            )
        except InferenceServerException:
            return False
        return bool(ready)

    async def model_version(self) -> str:
        """The newest version of the model that Triton serves, for health and status pages.

        Predictions do not use this: each one carries the version from its own response.
        """
        try:
            metadata = await self._client.get_model_metadata(
                self.model_name, client_timeout=self.timeout_s
            )
        except InferenceServerException as exc:
            raise self._error(exc) from exc
        versions = [str(v) for v in metadata.versions]
        if not versions:
            raise InferenceUnavailable(f"{self._target}: no version is loaded")
        return max(versions, key=int)

    async def classify(self, texts: Sequence[str]) -> list[Prediction]:
        """One prediction per text, in input order.

        Inputs larger than max_batch go out as concurrent chunks, which the semaphore bounds.
        If any chunk fails, the others are cancelled and the error propagates.
        """
        if not texts:
            return []
        encoded = self._encode(texts)
        chunks = [encoded[i : i + self.max_batch] for i in range(0, len(encoded), self.max_batch)]
        predictions: list[Prediction] = []
        if self.breaker.state is not BreakerState.CLOSED:
            # A recovering server gets a single trial call. The first chunk goes alone, as that
            # trial. Sent with the rest, it would be cancelled when they fail fast.
            predictions += await self._classify_chunk(chunks.pop(0))
        for chunk in await self._classify_concurrently(chunks):
            predictions += chunk
        return predictions

    async def _classify_concurrently(self, chunks: list[list[bytes]]) -> list[list[Prediction]]:
        tasks = [asyncio.create_task(self._classify_chunk(chunk)) for chunk in chunks]
        try:
            return await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            raise

    def _encode(self, texts: Sequence[str]) -> list[bytes]:
        encoded = []
        for index, text in enumerate(texts):
            try:
                encoded.append(text.encode("utf-8"))
            except UnicodeEncodeError as exc:
                raise InferenceError(
                    f"{self._target}: text {index} cannot be sent as UTF-8 ({exc.reason} at "
                    f"character {exc.start})"
                ) from exc
        return encoded

    async def _classify_chunk(self, batch: Sequence[bytes]) -> list[Prediction]:
        """Retry transient failures with exponential backoff and full jitter."""
        attempt = 0
        last: InferenceServerException | None = None
        while True:
            try:
                return await self._attempt(batch)
            except InferenceServerException as exc:
                last = exc
                if attempt >= self.retries:
                    note = f" (gave up after {attempt + 1} attempts of at most {self.timeout_s}s)"
                    raise self._error(exc, note) from exc
            except CircuitOpenError as exc:
                if last is None:
                    raise
                raise exc from last  # the breaker opened while this chunk was retrying
            attempt += 1
            self.retried += 1
            delay = backoff_s(attempt - 1, self.backoff_base_s, self.backoff_max_s, self.rng)
            log.info("%s: %s; retry %d in %.2fs", self._target, last.message(), attempt, delay)
            await asyncio.sleep(delay)

    async def _attempt(self, batch: Sequence[bytes]) -> list[Prediction]:
        """Make one call through the breaker and feed it the outcome.

        It raises InferenceServerException only for a transient failure, which may be retried.
        """
        async with self._slots:
            if not self.breaker.allow():
                raise CircuitOpenError(self.breaker.retry_in_s, self._target)
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                result = await self._infer(batch)
            except InferenceServerException as exc:
                status = str(exc.status())
                if status in _TRANSIENT:
                    self.breaker.record_failure()
                    raise
                if status == _NOT_SERVED:
                    self.breaker.record_failure()
                elif exc.status() is None:
                    self.breaker.release()  # it failed in the client; nothing reached the server
                else:
                    self.breaker.record_success()  # the server answered: the request was wrong
                raise self._error(exc) from exc
            except BaseException:
                self.breaker.release()
                raise
            finally:
                self.in_flight -= 1
        try:
            predictions = self._predictions(result, len(batch))
        except InvalidInferenceResponse:
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        return predictions

    async def _infer(self, batch: Sequence[bytes]) -> Any:
        array = np.array([[text] for text in batch], dtype=np.object_)
        tensor = grpcclient.InferInput(INPUT, list(array.shape), "BYTES")
        tensor.set_data_from_numpy(array)
        outputs = [
            grpcclient.InferRequestedOutput(SENTIMENT_OUTPUT),
            grpcclient.InferRequestedOutput(RISK_OUTPUT),
        ]
        return await self._client.infer(
            self.model_name, [tensor], outputs=outputs, client_timeout=self.timeout_s
        )

    def _predictions(self, result: Any, n: int) -> list[Prediction]:
        sentiment = result.as_numpy(SENTIMENT_OUTPUT)
        risk = result.as_numpy(RISK_OUTPUT)
        expected = ((n, len(SENTIMENT_LABELS)), (n, len(RISK_LABELS)))
        shapes = (getattr(sentiment, "shape", None), getattr(risk, "shape", None))
        if shapes != expected:
            raise InvalidInferenceResponse(
                f"{self._target} returned {SENTIMENT_OUTPUT} {shapes[0]} and {RISK_OUTPUT} "
                f"{shapes[1]} for {n} texts; expected {expected[0]} and {expected[1]}"
            )
        version = str(result.get_response().model_version)
        if not version:
            raise InvalidInferenceResponse(f"{self._target} returned no model version")
        self.last_version = version
        return [Prediction.from_rows(s, r, version) for s, r in zip(sentiment, risk, strict=True)]

    def _error(self, exc: InferenceServerException, note: str = "") -> InferenceError:
        status = str(exc.status())
        kind: type[InferenceError] = InferenceError
        if status == _DEADLINE:
            kind = InferenceTimeout
        elif status in _TRANSIENT or status == _NOT_SERVED:
            kind = InferenceUnavailable
        return kind(f"{self._target}: {exc.message() or status}{note}")


__all__ = ["Prediction", "TritonClassifier"]
