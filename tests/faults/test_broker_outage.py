"""RELIABILITY F3: the Kafka broker stopped for 60-90 s under steady load, workers left running."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.conftest import RunFactory
from tests.faults.harness import readiness
from tests.integration.api_harness import ApiServer
from tonewatch import services
from tonewatch.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_S = 60.0


@pytest.mark.reliability("F3")
@pytest.mark.timeout(600)
async def test_broker_outage_every_partition_resumes_without_restarting_workers(
    settings: Settings, fault_run: RunFactory, api: ApiServer, figures: dict[str, object]
) -> None:
    run = fault_run(seed=3, messages=2400, rate=25.0)
    await run.start(workers=2)
    pids = [w.pid() for w in run.workers]
    run.send()
    await run.until_stored(300)

    async def reported() -> bool:
        """`services status` and the API's /readyz both say that Kafka is down."""
        (kafka,) = await asyncio.to_thread(services.status, settings, ["kafka"])
        _, ready = await readiness(api)
        return not kafka.up and ready["checks"]["kafka"] is False and ready["status"] == "degraded"

    async with run.fault(detected=reported):
        await asyncio.to_thread(services.down, settings, ["kafka"])
        await asyncio.sleep(OUTAGE_S)
        await asyncio.to_thread(services.up, settings, ["kafka"])
    ledger = await run.finish()
    figures.update(ledger.as_dict())
    lag = await run.group_lag()
    figures["group_lag_after"] = sum(lag.values())

    assert ledger.detect_s is not None
    assert ledger.detect_s < 10
    ledger.assert_intact()
    # Both workers rode it out: same processes, and every partition committed to its end.
    assert [w.pid() for w in run.workers] == pids
    assert all(n == 0 for n in lag.values()), lag
    assert len(lag) == 3 * settings.kafka_partitions
