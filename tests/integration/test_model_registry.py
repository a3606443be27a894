"""The model registry and retrain runs (storage/model_registry.py) on the real Postgres."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import model_registry
from storage.tables import ModelVersionRow, RetrainRunRow

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(loop_scope="function")
async def name(engine: AsyncEngine) -> AsyncIterator[str]:
    """A model name of the test's own; its rows are deleted afterwards."""
    model_name = f"selftest_registry_{uuid.uuid4().hex[:8]}"
    yield model_name
    async with engine.begin() as conn:
        await conn.execute(delete(ModelVersionRow).where(ModelVersionRow.model_name == model_name))


async def statuses(engine: AsyncEngine, name: str) -> dict[int | None, tuple[str, str | None]]:
    return {v.version: (v.status, v.reason) for v in await model_registry.history(engine, name)}


async def test_promotion_retires_the_champion_and_rollback_goes_back_in_order(
    engine: AsyncEngine, name: str
) -> None:
    assert await model_registry.champion(engine, name) is None
    adopted = await model_registry.adopt_existing(engine, name, 8, "old", {"seed": {"f1": 0.8}})
    assert (adopted.version, adopted.status, adopted.reason) == (
        8,
        "champion",
        model_registry.ADOPTED,
    )
    # Adopting again changes nothing: there is a champion.
    assert (await model_registry.adopt_existing(engine, name, 5, "x", {})).version == 8
    for version in (9, 10):
        await model_registry.record_candidate(engine, name, f"t{version}", {}, version=version)
        await model_registry.promote(engine, name, version)
    await model_registry.record_candidate(
        engine, name, "t-bad", {}, status="rejected", reason="worse on feedback"
    )
    assert await statuses(engine, name) == {
        None: ("rejected", "worse on feedback"),
        10: ("champion", None),
        9: ("retired", "replaced by version 10"),
        8: ("retired", "replaced by version 9"),
    }
    previous = await model_registry.previous_champion(engine, name)
    assert previous is not None
    assert previous.version == 9
    await model_registry.promote(engine, name, 9, retire_reason=model_registry.ROLLED_BACK)
    previous = await model_registry.previous_champion(engine, name)
    assert previous is not None
    assert previous.version == 8  # not 10, which was just rolled back
    champion = await model_registry.champion(engine, name)
    assert champion is not None
    assert champion.version == 9


async def test_there_is_never_more_than_one_champion(engine: AsyncEngine, name: str) -> None:
    for version in (1, 2, 3):
        await model_registry.record_candidate(engine, name, f"t{version}", {}, version=version)
    await asyncio.gather(*(model_registry.promote(engine, name, v) for v in (1, 2, 3)))
    champions = [v for v in await model_registry.history(engine, name) if v.status == "champion"]
    assert len(champions) == 1
    with pytest.raises(model_registry.UnknownVersion):
        await model_registry.promote(engine, name, 99)
    # The failed promotion retired nobody.
    assert await model_registry.champion(engine, name) == champions[0]
    retired = await model_registry.set_status(engine, name, 1, "rejected", "smoke test failed")
    assert (retired.status, retired.reason) == ("rejected", "smoke test failed")
    with pytest.raises(ValueError, match="set_status takes"):
        await model_registry.set_status(engine, name, 1, "champion")
    with pytest.raises(model_registry.UnknownVersion):
        await model_registry.set_status(engine, name, 42, "retired")


async def test_a_retrain_run_is_recorded_from_start_to_finish(engine: AsyncEngine) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    run_id = await model_registry.start_run(engine, "manual")
    abandoned = None
    try:
        await model_registry.finish_run(
            engine, run_id, "rejected", summary={"reasons": ["worse"]}, report_dir="/r",
            labels_used=12,
        )  # fmt: skip
        last = await model_registry.last_run_started(engine)
        assert last is not None
        assert last >= before
        # A round a killed worker left behind does not count as the last round.
        abandoned = await model_registry.start_run(engine, "labels")
        assert await model_registry.abandon_running(engine) >= 1
        assert await model_registry.last_run_started(engine) == last
        (run,) = [r for r in await model_registry.recent_runs(engine, 50) if r.id == run_id]
        assert (run.trigger, run.status, run.labels_used, run.report_dir) == (
            "manual", "rejected", 12, "/r",
        )  # fmt: skip
        assert run.summary == {"reasons": ["worse"]}
        assert run.finished_at is not None
        assert run.error is None
    finally:
        async with engine.begin() as conn:
            await conn.execute(
                delete(RetrainRunRow).where(RetrainRunRow.id.in_([run_id, abandoned or 0]))
            )
