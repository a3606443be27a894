"""The async client against the real Triton: order, versions, timeouts, a dead server."""

from __future__ import annotations

import hashlib
import socket
import time

import pytest

from inference.breaker import BreakerState, CircuitBreaker
from inference.client import TritonClassifier
from inference.exceptions import CircuitOpenError, InferenceTimeout, InferenceUnavailable
from tests.integration.conftest import ModelFactory
from tonewatch.config import Settings

pytestmark = pytest.mark.integration

CONFIG = """\
backend: "python"
max_batch_size: 64
input [{ name: "TEXT", data_type: TYPE_STRING, dims: [1] }]
output [
  { name: "sentiment_probs", data_type: TYPE_FP32, dims: [3] },
  { name: "risk_probs", data_type: TYPE_FP32, dims: [7] }
]
dynamic_batching { max_queue_delay_microseconds: 1000 }
instance_group [{ kind: KIND_CPU, count: 1 }]
"""

# Deterministic "model": the sentiment is the text's number modulo 3, risk[0] = number / 1000.
ECHO = """\
import time
import numpy as np
import triton_python_backend_utils as pb_utils

DELAY_S = {delay}


class TritonPythonModel:
    def execute(self, requests):
        time.sleep(DELAY_S)
        responses = []
        for request in requests:
            texts = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy().reshape(-1)
            numbers = [int(t.decode().split()[-1]) for t in texts]
            sentiment = np.zeros((len(numbers), 3), dtype=np.float32)
            sentiment[np.arange(len(numbers)), [n % 3 for n in numbers]] = 1.0
            risk = np.zeros((len(numbers), 7), dtype=np.float32)
            risk[:, 0] = [n / 1000 for n in numbers]
            responses.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("sentiment_probs", sentiment),
                pb_utils.Tensor("risk_probs", risk),
            ]))
        return responses
"""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_results_keep_input_order_across_chunks_and_carry_the_server_version(
    settings: Settings, python_model: ModelFactory
) -> None:
    name = python_model(CONFIG, ECHO.format(delay=0), "3")
    texts = [f"message {n}" for n in range(150)]
    async with TritonClassifier(
        url=settings.triton_grpc_url, model_name=name, max_batch=16, max_concurrency=4
    ) as client:
        predictions = await client.classify(texts)
    assert [p.sentiment for p in predictions] == [
        ("negative", "neutral", "positive")[n % 3] for n in range(150)
    ]
    assert [round(p.risks["fraud"], 3) for p in predictions] == [n / 1000 for n in range(150)]
    assert {p.model_version for p in predictions} == {"3"}
    assert await TritonClassifier(url=settings.triton_grpc_url).classify([]) == []


async def test_a_slow_model_times_out_after_retries_without_hanging(
    settings: Settings, python_model: ModelFactory
) -> None:
    name = python_model(CONFIG, ECHO.format(delay=1.5), "1")
    client = TritonClassifier(
        url=settings.triton_grpc_url, model_name=name, timeout_s=0.3, retries=2,
        backoff_base_s=0.01,
    )  # fmt: skip
    started = time.monotonic()
    with pytest.raises(InferenceTimeout, match="after 3 attempts"):
        await client.classify(["message 1"])
    assert time.monotonic() - started < 5
    assert client.retried == 2
    await client.close()


async def test_a_dead_server_fails_fast_then_the_breaker_opens() -> None:
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=60)
    client = TritonClassifier(
        url=f"127.0.0.1:{_closed_port()}", timeout_s=1.0, retries=2, backoff_base_s=0.01,
        breaker=breaker,
    )  # fmt: skip
    started = time.monotonic()
    with pytest.raises(InferenceUnavailable, match=r"127\.0\.0\.1"):
        await client.classify(["message 1"])
    assert time.monotonic() - started < 5
    assert breaker.state is BreakerState.OPEN
    started = time.monotonic()
    with pytest.raises(CircuitOpenError):
        await client.classify(["message 2"])
    assert time.monotonic() - started < 0.1  # no network touched
    await client.close()


async def test_an_unknown_model_is_a_clear_error_not_a_retry_loop(settings: Settings) -> None:
    name = "no_such_model_" + hashlib.sha1(b"x").hexdigest()[:6]
    client = TritonClassifier(url=settings.triton_grpc_url, model_name=name, retries=5)
    with pytest.raises(InferenceUnavailable, match=name):
        await client.classify(["message 1"])
    assert client.retried == 0
    assert client.breaker.state is BreakerState.CLOSED
    await client.close()
