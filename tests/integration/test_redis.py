import asyncio
import uuid

import pytest
import redis.asyncio as redis

from tonewatch.config import Settings

pytestmark = pytest.mark.integration


async def test_round_trip_and_pubsub(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    key = f"selftest:{uuid.uuid4().hex}"
    try:
        assert await client.set(key, "héllo", ex=60, nx=True)
        assert await client.set(key, "again", nx=True) is None  # NX: a second write is a no-op
        assert await client.get(key) == "héllo"

        pubsub = client.pubsub()
        await pubsub.subscribe(key)
        await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
        assert await client.publish(key, "alert") == 1
        message = None
        for _ in range(20):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if message:
                break
            await asyncio.sleep(0.05)
        assert message is not None
        assert message["data"] == "alert"
        await pubsub.aclose()  # type: ignore[no-untyped-call]
    finally:
        await client.delete(key)
        await client.aclose()
