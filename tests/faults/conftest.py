"""Fixtures of the fault tests: the integration fixtures, a `FaultRun` per test, and a clean
slate after each test (every service up again, Triton's models loaded again)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.faults.harness import FaultRun
from tests.integration.api_harness import api, api_env, receiver_port  # noqa: F401 (fixtures)
from tests.integration.conftest import (  # noqa: F401 (fixtures)
    _services,
    engine,
    migrated,
    triton,
)
from tonewatch import services
from tonewatch.config import Settings

RunFactory = Callable[..., FaultRun]


def ready_models(settings: Settings) -> list[str]:
    index = triton(settings, lambda client: client.get_model_repository_index().models)
    return [m.name for m in index if m.state == "READY"]


def load_models(settings: Settings, names: list[str]) -> None:
    triton(settings, lambda client: [client.load_model(name) for name in names])


@pytest.fixture(autouse=True)
def _clean_slate(settings: Settings, running_services: object) -> Iterator[None]:
    """Whatever a fault test stopped is running again before the next test starts."""
    models = ready_models(settings)
    yield
    services.up(settings)
    load_models(settings, [m for m in models if m not in ready_models(settings)])


@pytest_asyncio.fixture(loop_scope="function")
async def fault_run(
    settings: Settings,
    engine: AsyncEngine,  # noqa: F811 (the fixture imported above)
) -> AsyncIterator[RunFactory]:
    """Make a FaultRun (arguments as FaultRun's); each is stopped and cleaned up after."""
    made: list[FaultRun] = []

    def make(**kwargs: object) -> FaultRun:
        run = FaultRun(settings, engine, **kwargs)  # type: ignore[arg-type]
        made.append(run)
        return run

    yield make
    for run in made:
        await run.stop()
    await asyncio.sleep(0)
