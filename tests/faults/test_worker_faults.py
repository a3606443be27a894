"""RELIABILITY F1 and F2: workers killed -9 mid-batch, and workers leaving and rejoining the
group (rebalances), under steady load."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import pytest

from tests.faults.conftest import RunFactory
from tests.integration.conftest import run_cli
from tests.integration.pipeline_harness import eventually
from tonewatch.config import Settings
from tonewatch.services.process import ManagedProcess
from tonewatch.workers import kill_worker, worker_statuses

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def reported_as(settings: Settings, worker: ManagedProcess, state: str) -> bool:
    """What `tonewatch services status` says of the worker."""
    return any(w.name == worker.name and w.state == state for w in worker_statuses(settings))


@pytest.mark.reliability("F1")
@pytest.mark.timeout(600)
async def test_a_worker_killed_mid_batch_three_times_loses_and_doubles_nothing(
    settings: Settings, fault_run: RunFactory, figures: dict[str, object]
) -> None:
    run = fault_run(seed=1, messages=1800, rate=40.0)
    await run.start(workers=1)
    (worker,) = run.workers
    total = len(run.workload.messages)
    run.send()
    for share in (0.2, 0.45, 0.7):
        await run.until_stored(int(share * total), timeout_s=120)

        async def down() -> bool:
            return not await asyncio.to_thread(reported_as, settings, worker, "running")

        async with run.fault(detected=down):
            await asyncio.to_thread(kill_worker, worker)
            if share == 0.2:  # the command itself, once: exit 1 and the dead worker named
                status = await asyncio.to_thread(run_cli, "services", "status", "--json")
                assert status.returncode == 1
                assert json.loads(status.stdout)[worker.name]["state"] == "dead"
            await run.restart_worker(worker)
    ledger = await run.finish()
    recoveries = [
        None if (r := run.recovery_s(f)) is None or f.ended is None else r + f.ended - f.began
        for f in run.faults
    ]
    figures.update(ledger.as_dict(), kill_to_recovered_s=recoveries)

    ledger.assert_intact()
    assert all(r is not None and r < 60 for r in recoveries), recoveries
    assert ledger.detect_s is not None
    await eventually(  # and its health reports say so
        lambda: asyncio.to_thread(reported_as, settings, worker, "running"), bool, 15
    )


@pytest.mark.reliability("F2")
@pytest.mark.timeout(600)
async def test_workers_leaving_and_rejoining_skip_no_offset(
    settings: Settings, fault_run: RunFactory, figures: dict[str, object]
) -> None:
    """Two workers split the partitions; one stops (SIGTERM), the other takes them all, the
    first comes back and takes its share again: three rebalances under load."""
    run = fault_run(seed=2, messages=1600, rate=40.0)
    await run.start(workers=2)
    first, second = run.workers
    total = len(run.workload.messages)
    everything = set(range(settings.kafka_partitions))
    run.send()
    await run.until_stored(total // 4, timeout_s=120)

    def split() -> bool:
        """Each has some of the partitions, none is read twice, and all are read."""
        shares = [run.assigned(first), run.assigned(second)]
        return all(shares) and not shares[0] & shares[1] and shares[0] | shares[1] == everything

    await eventually(lambda: asyncio.to_thread(split), bool, timeout_s=30)

    async def absent() -> bool:
        return not any(w.name == first.name for w in worker_statuses(settings))

    async with run.fault(detected=absent):
        await asyncio.to_thread(first.stop)  # SIGTERM: a clean leave
        await eventually(lambda: asyncio.to_thread(run.assigned, second),
                         lambda owned: owned == everything, timeout_s=30)  # fmt: skip
        await run.until_stored(total // 2, timeout_s=120)
        await run.restart_worker(first)
    await eventually(lambda: asyncio.to_thread(split), bool, timeout_s=30)
    ledger = await run.finish()
    skipped = await run.skipped_offsets()
    figures.update(ledger.as_dict(), skipped_offsets=sum(skipped.values()),
                   joins=[run.joins(w) for w in run.workers])  # fmt: skip

    ledger.assert_intact()
    assert skipped == {}
    assert run.joins(second) >= 3  # it saw the leave and the return


@pytest.mark.reliability("F1")
@pytest.mark.timeout(600)
async def test_the_survivor_takes_over_a_killed_workers_partitions(
    settings: Settings, fault_run: RunFactory, figures: dict[str, object]
) -> None:
    """Two workers; one is killed -9 and not restarted: the other redoes its uncommitted work
    without duplicates, once the broker's session timeout hands the partitions over."""
    run = fault_run(seed=5, messages=1200, rate=60.0)
    await run.start(workers=2)
    first, second = run.workers
    run.send()
    await run.until_stored(len(run.workload.messages) // 3, timeout_s=120)
    everything = set(range(settings.kafka_partitions))

    async def taken_over() -> bool:
        return await asyncio.to_thread(run.assigned, second) == everything

    async with run.fault(detected=taken_over):
        await asyncio.to_thread(kill_worker, first, signal.SIGKILL)
        await eventually(taken_over, bool, timeout_s=60)
    ledger = await run.finish()
    figures.update(ledger.as_dict())

    ledger.assert_intact()
    assert second.pid() is not None


@pytest.mark.reliability("F2")
@pytest.mark.timeout(600)
async def test_a_frozen_worker_loses_its_partitions_and_rejoins_when_thawed(
    settings: Settings, fault_run: RunFactory, figures: dict[str, object]
) -> None:
    """SIGSTOP one of two workers for longer than the session timeout: the group moves its
    partitions to the other; on SIGCONT it finds itself fenced out, rejoins, and whatever it
    had in hand is redone without a duplicate."""
    run = fault_run(seed=4, messages=1600, rate=40.0)
    await run.start(workers=2)
    frozen, other = run.workers
    run.send()
    await run.until_stored(400, timeout_s=120)

    async def reported() -> bool:
        return await asyncio.to_thread(reported_as, settings, frozen, "frozen")

    async with run.fault(detected=reported):
        await asyncio.to_thread(kill_worker, frozen, signal.SIGSTOP)
        await asyncio.sleep(25)  # > the 10 s session timeout
        pid = frozen.pid()
        assert pid is not None
        os.killpg(pid, signal.SIGCONT)
    ledger = await run.finish()
    skipped = await run.skipped_offsets()
    figures.update(ledger.as_dict(), skipped_offsets=sum(skipped.values()),
                   joins=[run.joins(w) for w in run.workers])  # fmt: skip

    ledger.assert_intact()
    assert skipped == {}
    assert run.joins(other) >= 2  # it took the frozen worker's partitions
    assert frozen.pid() == pid  # the same process carried on after the thaw
