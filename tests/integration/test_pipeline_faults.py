"""The pipeline under real faults: Redis stopped, Triton stopped for 30 s (RELIABILITY F4), two
workers sharing the partitions while one is killed. Counts come from the ledger: the
generator's planted incidents (scored by the keyword stub model, so the expected alerts are
exact) against what Postgres holds."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest
import tritonclient.grpc as grpcclient
from sqlalchemy.ext.asyncio import AsyncEngine

from inference.stub import install_stub
from storage import alerts as alert_store
from storage.cache import AlertCache
from streams.generator import generate
from streams.replay import replay_messages
from tests.integration.pipeline_harness import (
    PipelineUnderTest,
    assigned_partitions,
    count_messages,
    eventually,
    isolated,
    message,
    predictions,
    produce,
    settled_ledger,
)
from tonewatch import services
from tonewatch.config import Settings
from tonewatch.workers import kill_worker

pytestmark = pytest.mark.integration


@pytest.fixture
def pipeline(settings: Settings, stub_model: str) -> Iterator[PipelineUnderTest]:
    under_test = PipelineUnderTest(isolated(settings, stub_model))
    under_test.start()
    yield under_test
    under_test.stop()


def tenant() -> str:
    return f"f-{uuid.uuid4().hex[:10]}"


async def test_with_redis_down_alerts_reach_postgres_and_redis_is_refilled(
    settings: Settings, pipeline: PipelineUnderTest, engine: AsyncEngine
) -> None:
    pipeline.add_worker()
    who = tenant()
    bodies = [
        message(who, n, entity="$RDS", text="ACME charged with accounting fraud", seconds=n)
        for n in range(3)
    ]
    cache = AlertCache.from_settings(settings)
    try:
        await asyncio.to_thread(services.down, settings, ["redis"])
        assert not await cache.ping()
        await produce(pipeline.settings, "news", bodies)
        await eventually(lambda: count_messages(engine, who), lambda n: n == 3)
        recorded = await eventually(
            lambda: alert_store.recent(engine, who, limit=None), lambda found: len(found) == 1
        )
        await asyncio.to_thread(services.up, settings, ["redis"])
        cached = await eventually(lambda: cache.recent(who), lambda found: len(found) == 1)
    finally:
        await asyncio.to_thread(services.up, settings, ["redis"])
        await cache.close()
    assert [a.dedup_key for a in cached] == [a.dedup_key for a in recorded]
    assert recorded[0].kind == "message_risk"
    assert all(w.pid() is not None for w in pipeline.workers)


def _ready_models(settings: Settings) -> list[str]:
    client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
    try:
        index = client.get_model_repository_index().models
        return [m.name for m in index if m.state == "READY"]
    finally:
        client.close()


def _inference_count(settings: Settings, model: str) -> int:
    client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
    try:
        stats = client.get_inference_statistics(model).model_stats
        return sum(int(s.inference_count) for s in stats)
    finally:
        client.close()


def _restart_triton(settings: Settings, down_s: float, models: list[str]) -> None:
    services.down(settings, ["triton"])
    time.sleep(down_s)
    services.up(settings, ["triton"])
    client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
    try:
        for name in models:
            client.load_model(name)
    finally:
        client.close()


@pytest.mark.slow
async def test_triton_down_for_30s_loses_nothing(
    settings: Settings, pipeline: PipelineUnderTest, engine: AsyncEngine
) -> None:
    """RELIABILITY F4 at steady load: messages wait while Triton is down, then drain."""
    own_stub = f"f4_stub_{uuid.uuid4().hex[:8]}"
    install_stub(settings.model_repository.resolve(), own_stub)
    _restart = [*_ready_models(settings), own_stub]
    client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
    client.load_model(own_stub)
    client.close()
    pipeline.settings = pipeline.settings.model_copy(update={"triton_model_name": own_stub})
    worker = pipeline.add_worker()
    workload = generate(seed=11, messages=1200, tenant=tenant())
    total = len(workload.messages)
    who = workload.messages[0].tenant

    replay = asyncio.create_task(replay_messages(pipeline.settings, workload.messages, rate=40.0))
    await asyncio.sleep(5)
    before = _inference_count(settings, own_stub)
    await asyncio.to_thread(_restart_triton, settings, 30.0, _restart)
    report = await replay
    assert report.sent == total
    await eventually(lambda: count_messages(engine, who), lambda n: n == total, timeout_s=180)

    after = _inference_count(settings, own_stub)
    ledger = await settled_ledger(engine, workload)
    assert ledger.lost == 0, ledger.missing
    assert ledger.dup_alerts == 0
    assert ledger.unexpected == 0
    assert len(await predictions(engine, who)) == total
    assert (before + after) / total <= 1.5  # retry amplification
    log = worker.log_path.read_text()
    assert log.count("Joined group") == 1  # waiting for Triton caused no rebalance
    assert "Triton failed" in log  # the outage was seen, and waited out


@pytest.mark.slow
async def test_two_workers_share_the_partitions_and_survive_one_killed(
    pipeline: PipelineUnderTest, engine: AsyncEngine
) -> None:
    """Together they store every message once; after one is killed -9 mid-stream, the other
    takes over its partitions and redoes its uncommitted work without duplicates."""
    first, second = pipeline.add_worker(), pipeline.add_worker()
    workload = generate(seed=5, messages=1200, tenant=tenant())
    total = len(workload.messages)
    who = workload.messages[0].tenant
    replay = asyncio.create_task(replay_messages(pipeline.settings, workload.messages, rate=120.0))
    await eventually(lambda: count_messages(engine, who), lambda n: n >= total // 3)
    news = f"{pipeline.settings.kafka_topic_prefix}news"
    shares = [assigned_partitions(w.log_path.read_text(), news) for w in (first, second)]
    assert all(shares), shares  # each has some of the partitions...
    assert not shares[0] & shares[1]  # ...and no partition is read twice
    assert shares[0] | shares[1] == set(range(pipeline.settings.kafka_partitions))
    await asyncio.to_thread(kill_worker, first)
    await replay
    await eventually(lambda: count_messages(engine, who), lambda n: n == total, timeout_s=180)

    assert len(await predictions(engine, who)) == total
    ledger = await settled_ledger(engine, workload)
    assert ledger.lost == 0, ledger.missing
    assert ledger.dup_alerts == 0
    assert ledger.unexpected == 0
    assert second.pid() is not None
