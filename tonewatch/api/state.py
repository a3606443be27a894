"""What the API's handlers share in one process: settings and the clients of the services."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.cache import AlertCache
from storage.db import create_engine
from storage.ratelimit import RateLimiter
from streams.topics import Producer, new_producer
from tonewatch.config import Settings


@dataclass
class ApiState:
    settings: Settings
    engine: AsyncEngine
    cache: AlertCache
    limiter: RateLimiter
    _producer: Producer | None = None
    _producer_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def open(cls, settings: Settings) -> ApiState:
        cache = AlertCache.from_settings(settings)
        limiter = RateLimiter(cache.client, settings.api_rate_per_s, settings.api_rate_burst)
        return cls(settings, create_engine(settings), cache, limiter)

    async def producer(self) -> Producer:
        """The process's Kafka producer (acks=all, idempotent), started on first use so that
        the API starts, and serves reads, while Kafka is down."""
        async with self._producer_lock:
            if self._producer is None:
                producer = new_producer(self.settings, request_timeout_ms=10_000)
                await producer.start()
                self._producer = producer
            return self._producer

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
        await self.cache.close()
        await self.engine.dispose()


def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.tonewatch
    return state
