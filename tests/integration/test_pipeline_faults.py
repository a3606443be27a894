"""The pipeline with Redis stopped: alerts reach Postgres, and Redis is refilled when it
returns. The long faults of RELIABILITY.md (F1-F8) are in tests/faults/."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import alerts as alert_store
from storage.cache import AlertCache
from tests.integration.pipeline_harness import (
    PipelineUnderTest,
    count_messages,
    eventually,
    isolated,
    message,
    produce,
)
from tonewatch import services
from tonewatch.config import Settings

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
