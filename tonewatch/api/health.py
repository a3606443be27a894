"""Liveness, readiness (the truth about each dependency) and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from storage.db import connection_errors
from storage.exceptions import DatabaseUnavailable
from tonewatch.api.state import ApiState, api_state

router = APIRouter(tags=["health"])
PROBE_TIMEOUT_S = 2.0


class Readiness(BaseModel):
    status: Literal["ready", "degraded", "unavailable"]
    checks: dict[str, bool]


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (says nothing about its dependencies)."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(request: Request) -> JSONResponse:
    """Postgres is required (503 without it); Redis and Kafka only degrade the service
    (no live feed or rate limits; feedback cannot be published)."""
    state = api_state(request)
    postgres, redis, kafka = await asyncio.gather(
        _postgres_up(state), state.cache.ping(), _kafka_up(state)
    )
    checks = {"postgres": postgres, "redis": redis, "kafka": kafka}
    status = "unavailable" if not postgres else "ready" if all(checks.values()) else "degraded"
    return JSONResponse(
        Readiness(status=status, checks=checks).model_dump(),
        status_code=503 if status == "unavailable" else 200,
    )


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def _postgres_up(state: ApiState) -> bool:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            with connection_errors():
                async with state.engine.connect() as conn:
                    await conn.execute(text("select 1"))
        return True
    except (DatabaseUnavailable, TimeoutError):
        return False


async def _kafka_up(state: ApiState) -> bool:
    """A TCP connection to the bootstrap broker (cheap; a metadata call would be slower)."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            _, writer = await asyncio.open_connection(
                state.settings.kafka_host, state.settings.kafka_port
            )
        writer.close()
        await writer.wait_closed()
        return True
    except (OSError, TimeoutError):
        return False
