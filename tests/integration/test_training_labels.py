"""storage.training_labels against the real Postgres: idempotent, order-proof upserts of
feedback records, counting new labels, and gold answers read from the API's tables."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import labeling, messages, training_labels
from storage.training_labels import GoldAnswer
from tests.integration.storage_fixtures import T0, new_tenant, scored
from tonewatch.contracts import Feedback

pytestmark = pytest.mark.integration


def feedback(tenant: str, message_id: str, labeller: str = "alice", **fields: Any) -> Feedback:
    """A verdict of `labeller` on a news message, last changed at T0 unless told."""
    values: dict[str, Any] = {
        "feedback_id": labeling.feedback_id(tenant, "news", message_id, labeller),
        "tenant": tenant,
        "source": "news",
        "message_id": message_id,
        "text": f"text of {message_id}",
        "labeller": labeller,
        "sentiment": "negative",
        "risks": ["fraud"],
        "prediction_correct": False,
        "model_version": "1",
        "created_at": T0,
        "updated_at": T0,
    } | fields
    return Feedback.model_validate(values)


async def db_now(engine: AsyncEngine) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.now()))).scalar_one()


async def test_upsert_is_idempotent(engine: AsyncEngine) -> None:
    tenant = new_tenant()
    a, b = feedback(tenant, "m1"), feedback(tenant, "m2", labeller="bob")
    assert await training_labels.upsert(engine, [a, b]) == 2
    # Redelivered: nothing changes, whether alone, twice in a batch or with the others.
    assert await training_labels.upsert(engine, [a]) == 0
    assert await training_labels.upsert(engine, [a, a, b]) == 0
    # A new record given twice in one batch counts once.
    c = feedback(tenant, "m3")
    assert await training_labels.upsert(engine, [c, c]) == 1
    assert await training_labels.upsert(engine, []) == 0

    stored = await training_labels.load(engine, tenant)
    assert [(s.feedback_id, s.labeller, s.sentiment, s.risks) for s in stored] == sorted(
        (r.feedback_id, r.labeller, "negative", ("fraud",)) for r in (a, b, c)
    )
    first = stored[0]
    assert first.key == (tenant, "news", first.message_id)
    assert first.text == f"text of {first.message_id}"
    assert first.updated_at == T0
    assert first.model_version == "1"
    assert not first.prediction_correct


async def test_an_older_version_never_overwrites_a_newer_one(engine: AsyncEngine) -> None:
    tenant = new_tenant()
    current = feedback(tenant, "m1", sentiment="neutral", risks=[], updated_at=T0)
    assert await training_labels.upsert(engine, [current]) == 1

    older = feedback(tenant, "m1", sentiment="positive", updated_at=T0 - timedelta(minutes=1))
    assert await training_labels.upsert(engine, [older]) == 0
    (stored,) = await training_labels.load(engine, tenant)
    assert (stored.sentiment, stored.risks, stored.updated_at) == ("neutral", (), T0)

    # The labeller changes their mind: the newer version wins, whichever order a batch
    # brings the versions in.
    later = T0 + timedelta(minutes=5)
    newer = feedback(tenant, "m1", sentiment="positive", risks=["churn"], updated_at=later)
    newest = feedback(tenant, "m1", sentiment="negative", updated_at=later + timedelta(seconds=1))
    assert await training_labels.upsert(engine, [newest, newer, older]) == 1
    (stored,) = await training_labels.load(engine, tenant)
    assert (stored.sentiment, stored.risks) == ("negative", ("fraud",))
    assert stored.updated_at == later + timedelta(seconds=1)
    assert await training_labels.upsert(engine, [newer]) == 0


async def test_concurrent_upserts_of_the_same_records(engine: AsyncEngine) -> None:
    tenant = new_tenant()
    records = [feedback(tenant, f"m{n}", labeller=f"l{n % 3}") for n in range(30)]
    # Workers of a rebalance writing the same batch, in different orders: each row once.
    batches = [records, records[::-1], records[10:] + records[:10]]
    counts = await asyncio.gather(*(training_labels.upsert(engine, b) for b in batches))
    assert sum(counts) == 30
    assert await training_labels.count_since(engine, None, tenant) == 30


async def test_count_since_counts_received_and_changed_labels(engine: AsyncEngine) -> None:
    tenant = new_tenant()
    await training_labels.upsert(engine, [feedback(tenant, f"m{n}") for n in range(3)])
    mark = await db_now(engine)
    assert await training_labels.count_since(engine, mark, tenant) == 0

    await training_labels.upsert(engine, [feedback(tenant, f"m{n}") for n in range(3, 5)])
    assert await training_labels.count_since(engine, mark, tenant) == 2
    # A changed verdict is news for the retrain trigger; a redelivered one is not.
    changed = feedback(tenant, "m0", sentiment="positive", updated_at=T0 + timedelta(hours=1))
    await training_labels.upsert(engine, [changed, feedback(tenant, "m1")])
    assert await training_labels.count_since(engine, mark, tenant) == 3
    assert await training_labels.count_since(engine, None, tenant) == 5
    assert await training_labels.count_since(engine, None) >= 5  # every tenant


async def test_gold_answers_come_from_the_api_tables(engine: AsyncEngine) -> None:
    tenant, other = new_tenant(), new_tenant()
    await messages.record(engine, [scored(tenant, "g1"), scored(tenant, "g2"), scored(tenant, "x")])
    await messages.record(engine, [scored(other, "g1")])
    await labeling.set_gold(
        engine,
        tenant,
        [
            labeling.GoldItem("g1", "news", "negative", ("product_safety", "fraud")),
            labeling.GoldItem("g2", "news", "positive"),
        ],
    )
    await labeling.set_gold(engine, other, [labeling.GoldItem("g1", "news", "neutral")])

    assert await training_labels.gold(engine, tenant) == {
        # set_gold keeps risks in RISK_LABELS order.
        (tenant, "news", "g1"): GoldAnswer("negative", ("fraud", "product_safety")),
        (tenant, "news", "g2"): GoldAnswer("positive", ()),
    }
    everyone = await training_labels.gold(engine)
    assert everyone[other, "news", "g1"] == GoldAnswer("neutral", ())
    assert everyone[tenant, "news", "g2"] == GoldAnswer("positive", ())
    assert (tenant, "news", "x") not in everyone
