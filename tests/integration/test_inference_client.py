"""The async client against the real Triton: order, versions, timeouts, a dead server."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from types import TracebackType

import pytest

from inference.breaker import BreakerState, CircuitBreaker
from inference.client import TritonClassifier
from inference.exceptions import (
    CircuitOpenError,
    InferenceError,
    InferenceTimeout,
    InferenceUnavailable,
    InvalidInferenceResponse,
)
from tests.integration.conftest import ModelFactory
from tonewatch.config import Settings

pytestmark = pytest.mark.integration

CONFIG = """\
backend: "python"
max_batch_size: 64
input [{{ name: "{input}", data_type: TYPE_STRING, dims: [1] }}]
output [
  {{ name: "sentiment_probs", data_type: TYPE_FP32, dims: [{sentiment}] }},
  {{ name: "risk_probs", data_type: TYPE_FP32, dims: [7] }}
]
dynamic_batching {{ max_queue_delay_microseconds: 1000 }}
instance_group [{{ kind: KIND_CPU, count: 1 }}]
"""

# A deterministic stand-in for the real model. The number at the end of the text sets the
# answer: sentiment = number % 3, fraud = number / 1000. legal_regulatory = request size / 100
# shows how the client chunked the input.
ECHO = """\
import time
import numpy as np
import triton_python_backend_utils as pb_utils

DELAY_S = {delay}
SENTIMENTS = {sentiment}


class TritonPythonModel:
    def execute(self, requests):
        time.sleep(DELAY_S)
        responses = []
        for request in requests:
            texts = pb_utils.get_input_tensor_by_name(request, "{input}").as_numpy().reshape(-1)
            numbers = [int(t.decode("utf-8").split()[-1]) for t in texts]
            sentiment = np.zeros((len(numbers), SENTIMENTS), dtype=np.float32)
            sentiment[np.arange(len(numbers)), [n % SENTIMENTS for n in numbers]] = 1.0
            risk = np.zeros((len(numbers), 7), dtype=np.float32)
            risk[:, 0] = [n / 1000 for n in numbers]
            risk[:, 1] = len(numbers) / 100
            responses.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("sentiment_probs", sentiment),
                pb_utils.Tensor("risk_probs", risk),
            ]))
        return responses
"""


def echo_model(
    python_model: ModelFactory,
    *,
    delay: float = 0,
    version: str = "1",
    input_name: str = "TEXT",
    sentiments: int = 3,
) -> str:
    config = CONFIG.format(input=input_name, sentiment=sentiments)
    source = ECHO.format(delay=delay, input=input_name, sentiment=sentiments)
    return python_model(config, source, version)


def closed_port() -> int:
    """A localhost port that nothing listens on (bound once by the OS, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TcpRelay:
    """Forwards a local port to Triton while it runs: a server that can go away and come back."""

    def __init__(self, port: int, upstream_port: int) -> None:
        self.port, self.upstream_port = port, upstream_port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> TcpRelay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass  # the other side went away: close this side too
        finally:
            writer.close()
            self._writers.discard(writer)


def text(n: int) -> str:
    return f"message {n}" if n % 2 else f"Nachricht für {n}"  # non-ASCII on the way


async def test_results_keep_input_order_across_concurrent_chunks(
    settings: Settings, python_model: ModelFactory
) -> None:
    name = echo_model(python_model, version="3")
    async with TritonClassifier(
        url=settings.triton_grpc_url, model_name=name, max_batch=16, max_concurrency=4
    ) as client:
        predictions = await client.classify([text(n) for n in range(150)])
    assert [p.sentiment for p in predictions] == [
        ("negative", "neutral", "positive")[n % 3] for n in range(150)
    ]
    assert [round(p.risks["fraud"], 3) for p in predictions] == [n / 1000 for n in range(150)]
    request_sizes = [round(p.risks["legal_regulatory"] * 100) for p in predictions[::16]]
    assert request_sizes == [16] * 9 + [6]
    assert client.retried == 0


async def test_concurrency_is_bounded_by_max_concurrency(
    settings: Settings, python_model: ModelFactory
) -> None:
    """Each model execution takes 0.4 s, and Triton batches the requests that wait meanwhile."""
    name = echo_model(python_model, delay=0.4)
    texts = [text(n) for n in range(4)]  # four chunks of one text
    elapsed = {}
    for concurrency in (1, 4):
        async with TritonClassifier(
            url=settings.triton_grpc_url, model_name=name, max_batch=1,
            max_concurrency=concurrency,
        ) as client:  # fmt: skip
            started = time.monotonic()
            predictions = await client.classify(texts)
            elapsed[concurrency] = time.monotonic() - started
        assert [round(p.risks["fraud"] * 1000) for p in predictions] == [0, 1, 2, 3]
    assert elapsed[1] >= 4 * 0.4  # one request at a time: four executions in a row
    assert elapsed[4] < 3 * 0.4  # all in flight: the first execution, then one batch of three


async def test_the_model_version_comes_from_the_server(
    settings: Settings, python_model: ModelFactory
) -> None:
    name = echo_model(python_model, version="3")
    async with TritonClassifier(url=settings.triton_grpc_url, model_name=name) as client:
        assert await client.is_ready()
        assert await client.model_version() == "3"
        predictions = await client.classify([text(1), text(2)])
    assert {p.model_version for p in predictions} == {"3"}


async def test_nothing_to_send_never_touches_the_network() -> None:
    breaker = CircuitBreaker(failure_threshold=1)
    async with TritonClassifier(url=f"127.0.0.1:{closed_port()}", breaker=breaker) as client:
        assert await client.classify([]) == []
        with pytest.raises(InferenceError, match="text 1 cannot be sent as UTF-8"):
            await client.classify(["fine", "half a surrogate pair \ud800"])
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures == 0


async def test_a_slow_model_times_out_after_retries_without_hanging(
    settings: Settings, python_model: ModelFactory
) -> None:
    name = echo_model(python_model, delay=1.5)
    breaker = CircuitBreaker(failure_threshold=10)
    async with TritonClassifier(
        url=settings.triton_grpc_url, model_name=name, timeout_s=0.3, retries=2,
        backoff_base_s=0.01, breaker=breaker,
    ) as client:  # fmt: skip
        started = time.monotonic()
        with pytest.raises(InferenceTimeout, match="gave up after 3 attempts") as info:
            await client.classify([text(1)])
        elapsed = time.monotonic() - started
    assert 0.85 <= elapsed < 2.5  # three 0.3 s deadlines and short backoffs, not the 1.5 s model
    assert client.retried == 2
    assert breaker.failures == 3
    assert name in str(info.value)
    assert settings.triton_grpc_url in str(info.value)


async def test_a_dead_server_fails_fast_then_the_breaker_opens() -> None:
    url = f"127.0.0.1:{closed_port()}"
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=60)
    async with TritonClassifier(
        url=url, model_name="tonewatch", timeout_s=1.0, retries=2, backoff_base_s=0.01,
        breaker=breaker,
    ) as client:  # fmt: skip
        started = time.monotonic()
        with pytest.raises(InferenceUnavailable, match="gave up after 3 attempts") as info:
            await client.classify([text(1)])
        assert time.monotonic() - started < 1.0  # refused at once, not a deadline per attempt
        assert url in str(info.value)
        assert "'tonewatch'" in str(info.value)
        assert breaker.state is BreakerState.OPEN

        started = time.monotonic()
        for _ in range(20):
            with pytest.raises(CircuitOpenError, match=url) as opened:
                await client.classify([text(2), text(3)])
        assert time.monotonic() - started < 0.1  # no network touched
        assert opened.value.retry_in_s == pytest.approx(60, abs=1)
        assert client.retried == 2


async def test_the_client_recovers_once_the_server_is_back(
    settings: Settings, python_model: ModelFactory
) -> None:
    name = echo_model(python_model)
    port = closed_port()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=0.2)
    async with TritonClassifier(
        url=f"127.0.0.1:{port}", model_name=name, retries=0, max_batch=8, breaker=breaker
    ) as client:
        down_until = time.monotonic() + 5  # long enough for gRPC's reconnect backoff to grow
        while time.monotonic() < down_until:
            with pytest.raises(InferenceUnavailable):
                await client.classify([text(1)])
            await asyncio.sleep(0.05)
        assert breaker.transitions[BreakerState.OPEN] > 1

        async with TcpRelay(port, settings.triton_grpc_port):
            back = time.monotonic()
            while True:
                try:
                    predictions = await client.classify([text(n) for n in range(40)])  # 5 chunks
                    break
                except InferenceUnavailable:
                    assert time.monotonic() - back < 3, "still failing 3 s after the server is back"
                    await asyncio.sleep(0.05)
            assert [p.risks["fraud"] for p in predictions] == pytest.approx(
                [n / 1000 for n in range(40)]
            )
            assert breaker.state is BreakerState.CLOSED


async def test_an_unknown_model_is_a_clear_error_not_a_retry_loop(settings: Settings) -> None:
    name = f"no_such_model_{uuid.uuid4().hex[:8]}"
    async with TritonClassifier(url=settings.triton_grpc_url, model_name=name, retries=5) as client:
        with pytest.raises(InferenceUnavailable, match=f"model '{name}'.*not found"):
            await client.classify([text(1)])
        assert not await client.is_ready()
        with pytest.raises(InferenceUnavailable, match=name):
            await client.model_version()
    assert client.retried == 0
    assert client.breaker.state is BreakerState.CLOSED


async def test_a_rejected_request_is_not_retried_and_keeps_the_breaker_closed(
    settings: Settings, python_model: ModelFactory
) -> None:
    name = echo_model(python_model, input_name="TOKENS")  # the client sends TEXT
    breaker = CircuitBreaker(failure_threshold=1)
    async with TritonClassifier(
        url=settings.triton_grpc_url, model_name=name, breaker=breaker
    ) as client:
        with pytest.raises(InferenceError, match="TEXT") as info:
            await client.classify([text(1)])
    assert type(info.value) is InferenceError  # not "unavailable": waiting will not fix it
    assert client.retried == 0
    assert breaker.state is BreakerState.CLOSED


async def test_outputs_of_the_wrong_shape_are_rejected(
    settings: Settings, python_model: ModelFactory
) -> None:
    name = echo_model(python_model, sentiments=2)
    async with TritonClassifier(url=settings.triton_grpc_url, model_name=name) as client:
        with pytest.raises(InvalidInferenceResponse, match=r"sentiment_probs \(2, 2\)"):
            await client.classify([text(1), text(2)])
    assert client.retried == 0
