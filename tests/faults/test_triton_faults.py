"""RELIABILITY F4, F5 and F6: Triton down, Triton slow, and model versions swapped (one of
them broken) under steady load."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from sqlalchemy import select

from inference.serving import serve_version, served_version
from storage import tables
from tests.faults.conftest import RunFactory, load_models, ready_models
from tests.faults.harness import FaultRun
from tests.faults.proxy import TcpProxy
from tests.integration.api_harness import free_port
from tests.integration.pipeline_harness import eventually
from tests.integration.traffic import traffic
from tonewatch import services
from tonewatch.config import Settings
from tonewatch.workers import worker_statuses

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STUB_MISS = "RISK_MISS = 0.02\n"  # the stub's score of a risk that its text does not name


async def scrape(port: int) -> dict[str, float]:
    """A worker's /metrics as {series: value}."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    return {
        series: float(value)
        for line in text.splitlines()
        if line and not line.startswith("#")
        for series, _, value in [line.rpartition(" ")]
    }


def breaker_of(settings: Settings, run: FaultRun) -> set[str]:
    """The Triton breaker state each of the run's workers reports in its health file."""
    names = {w.name for w in run.workers}
    return {w.health.breaker for w in worker_statuses(settings) if w.name in names and w.health}


@pytest.mark.reliability("F4")
@pytest.mark.timeout(600)
async def test_triton_down_for_30s_loses_nothing_and_does_not_rebalance(
    settings: Settings, fault_run: RunFactory, figures: dict[str, object]
) -> None:
    metrics_port = free_port()
    run = fault_run(seed=11, messages=2400, rate=40.0,
                    overrides={"worker_metrics_port": metrics_port})  # fmt: skip
    await run.start()
    (worker,) = run.workers
    run.send()
    await run.until_stored(300, timeout_s=120)
    models = ready_models(settings)
    before = await scrape(metrics_port)

    async def reported() -> bool:
        (triton,) = await asyncio.to_thread(services.status, settings, ["triton"])
        return not triton.up and breaker_of(settings, run) == {"open"}

    async with run.fault(detected=reported):
        run.count_inferences_before_restart()
        await asyncio.to_thread(services.down, settings, ["triton"])
        await asyncio.sleep(30)
        during = await scrape(metrics_port)
        await asyncio.to_thread(services.up, settings, ["triton"])
        await asyncio.to_thread(load_models, settings, models)
    ledger = await run.finish()
    figures.update(ledger.as_dict(), retry_amplification=round(1 + ledger.reprocessed
                                                                / ledger.messages, 3))  # fmt: skip

    ledger.assert_intact()
    assert 1 + ledger.reprocessed / ledger.messages <= 1.5  # retry amplification
    assert ledger.detect_s is not None
    assert run.joins(worker) == 1  # waiting for Triton caused no rebalance
    # The worker's metrics told the story while it lasted.
    # Down means not closed: open, or half-open once the reset timeout has passed and no
    # trial call has gone out yet (what the scrape sees depends on its moment).
    state = 'tonewatch_breaker_state{{dependency="triton",tonewatch_breaker_state="{}"}}'
    assert before[state.format("closed")] == 1.0
    assert during[state.format("closed")] == 0.0
    assert during[state.format("open")] + during[state.format("half_open")] == 1.0
    assert during['tonewatch_retries_total{operation="Triton"}'] > 0
    assert before[f'tonewatch_model_version{{model="{run.model}"}}'] == 1.0
    lag = [v for k, v in during.items() if k.startswith("tonewatch_consumer_lag{")]
    assert len(lag) == 3 * settings.kafka_partitions
    assert sum(lag) > 0
    await eventually(  # the next health report has the breaker closed again
        lambda: asyncio.to_thread(breaker_of, settings, run), lambda b: b == {"closed"}, 15
    )


@pytest.mark.reliability("F5")
@pytest.mark.timeout(600)
async def test_a_slow_triton_keeps_calls_in_flight_bounded_without_rebalancing(
    settings: Settings, fault_run: RunFactory, figures: dict[str, object]
) -> None:
    """+2 s on about half the calls, through a TCP proxy between the worker and Triton."""
    proxy = TcpProxy(settings.triton_host, settings.triton_grpc_port, seed=5).start()
    metrics_port = free_port()
    through_proxy = {"triton_grpc_port": proxy.port, "worker_metrics_port": metrics_port}
    run = fault_run(seed=13, messages=2000, rate=40.0, overrides=through_proxy)
    try:
        await run.start()
        (worker,) = run.workers
        run.send()
        await run.until_stored(300, timeout_s=120)
        peaks = []
        async with run.fault():
            proxy.slow(2.0, share=0.5)
            until = time.monotonic() + 30
            while time.monotonic() < until:
                peaks.append((await scrape(metrics_port))["tonewatch_triton_in_flight_peak"])
                await asyncio.sleep(1)
            proxy.slow(0.0, share=0.0)
        ledger = await run.finish()
    finally:
        proxy.stop()
    figures.update(ledger.as_dict(), in_flight_peak=max(peaks),
                   delayed_chunks=proxy.stats.delayed_chunks)  # fmt: skip

    assert proxy.stats.delayed_chunks > 10  # the fault really happened
    assert 0 < max(peaks) <= settings.triton_max_concurrency
    ledger.assert_intact()
    p99 = ledger.p99_ms
    assert p99["during"] is not None
    assert p99["before"] is not None
    assert p99["during"] > p99["before"]  # the latency was felt...
    assert run.joins(worker) == 1  # ...but the worker kept its partitions


@pytest.mark.reliability("F6")
@pytest.mark.timeout(600)
async def test_model_versions_swapped_under_load_fail_no_inference(
    settings: Settings, fault_run: RunFactory, figures: dict[str, object]
) -> None:
    """Version 2, whose scores differ, replaces version 1 while messages flow; then a version
    3 that cannot load is tried, and version 2 goes on serving. Failed inferences are counted
    by callers with retries off (the workers retry, which would hide them)."""
    run = fault_run(seed=17, messages=1500, rate=40.0)
    await run.start()
    model_dir = settings.model_repository.resolve() / run.model
    stub = (model_dir / "1" / "model.py").read_text()
    assert STUB_MISS in stub
    (model_dir / "2").mkdir()
    (model_dir / "2" / "model.py").write_text(stub.replace(STUB_MISS, "RISK_MISS = 0.03\n"))
    (model_dir / "3").mkdir()
    (model_dir / "3" / "model.py").write_text("raise RuntimeError('a broken export')\n")
    texts = [m.text for m in run.workload.messages[:8]]
    run.send()
    await run.until_stored(300, timeout_s=120)
    async with traffic(settings, run.model, texts, tasks=2) as seen:
        async with run.fault():
            await asyncio.to_thread(serve_version, settings, run.model, 2)
        swapped = time.monotonic()
        await run.until_stored(800, timeout_s=120)
        async with run.fault():
            with pytest.raises(Exception, match="3"):
                await asyncio.to_thread(serve_version, settings, run.model, 3)
            assert served_version(settings.triton_grpc_url, run.model) == 2
        await seen.more()
    ledger = await run.finish()
    misses = await risk_values(run)
    figures.update(ledger.as_dict(), failed_inferences=len(seen.failures),
                   versions=sorted(misses))  # fmt: skip

    assert seen.failures == []
    assert seen.versions_since(swapped) == {"2"}
    # The stored scores show the change of version: each version's own "no risk" score.
    assert {version: min(values) for version, values in misses.items()} == {"1": 0.02, "2": 0.03}
    ledger.assert_intact()


async def risk_values(run: FaultRun) -> dict[str, set[float]]:
    """The risk probabilities of the run's stored predictions, by model version."""
    async with run.engine.connect() as conn:
        rows = await conn.execute(
            select(tables.Prediction.model_version, tables.Prediction.risks)
            .join(tables.Message)
            .where(tables.Message.tenant == run.tenant)
        )
        found: dict[str, set[float]] = {}
        for version, risks in rows:
            found.setdefault(version, set()).update(round(p, 3) for p in risks.values())
    return found
