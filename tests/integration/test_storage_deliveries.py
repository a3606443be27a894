"""storage.deliveries and the webhook side of storage.subscriptions against the real
Postgres: idempotent fan-out, claims that two workers never share, the states of a
delivery, and which secrets sign during a rotation.

Claims are global (any tenant's due rows), so every assertion looks at this test's rows
only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import deliveries, subscriptions
from storage.db import create_engine
from tests.integration.storage_fixtures import new_tenant
from tonewatch.config import Settings

pytestmark = pytest.mark.integration

SECRET = "whsec_" + "A" * 32
NEXT_SECRET = "whsec_" + "B" * 32


@pytest_asyncio.fixture(loop_scope="function")
async def webhook(engine: AsyncEngine) -> AsyncIterator[subscriptions.Subscription]:
    """A webhook subscription of a fresh tenant; deleted (with its deliveries) after."""
    made = await subscriptions.create(
        engine, new_tenant(), name="hook", sources=[], entities=[], kinds=[],
        min_severity="low", channel="webhook", url="http://127.0.0.1:9/", secret=SECRET,
    )  # fmt: skip
    yield made
    await subscriptions.delete(engine, made.tenant, made.id)


def new(sub: subscriptions.Subscription, n: int) -> deliveries.NewDelivery:
    return deliveries.NewDelivery(sub.id, sub.tenant, f"evt_{n}", {"n": n})


def mine(claimed: list[deliveries.Delivery], sub: subscriptions.Subscription) -> set[str]:
    return {d.event_id for d in claimed if d.subscription_id == sub.id}


async def test_fan_out_is_idempotent(
    engine: AsyncEngine, webhook: subscriptions.Subscription
) -> None:
    assert await deliveries.create(engine, [new(webhook, 1), new(webhook, 2)]) == 2
    assert await deliveries.create(engine, [new(webhook, 2), new(webhook, 3), new(webhook, 3)]) == 1
    assert await deliveries.create(engine, []) == 0
    listed = await deliveries.listed(engine, webhook.tenant, webhook.id)
    assert [d.event_id for d in listed] == ["evt_3", "evt_2", "evt_1"]  # newest first
    assert {(d.status, d.attempts) for d in listed} == {("pending", 0)}


async def test_two_workers_never_claim_the_same_delivery(
    engine: AsyncEngine, settings: Settings, webhook: subscriptions.Subscription
) -> None:
    await deliveries.create(engine, [new(webhook, n) for n in range(40)])
    other = create_engine(settings)
    try:
        first, second = await asyncio.gather(
            deliveries.claim(engine, 1000, lease_s=60), deliveries.claim(other, 1000, lease_s=60)
        )
    finally:
        await other.dispose()
    assert mine(first, webhook).isdisjoint(mine(second, webhook))
    assert mine(first, webhook) | mine(second, webhook) == {f"evt_{n}" for n in range(40)}
    # Leased: nobody takes them again until the lease ends or an attempt is recorded.
    assert mine(await deliveries.claim(engine, 1000, lease_s=60), webhook) == set()
    taken = [d for d in first + second if d.subscription_id == webhook.id]
    assert await deliveries.retry_later(engine, taken[0].id, 0, 503, "HTTP 503")
    again = [d for d in await deliveries.claim(engine, 1000, 60) if d.subscription_id == webhook.id]
    assert [(d.id, d.attempts, d.last_status_code) for d in again] == [(taken[0].id, 1, 503)]


async def test_states_redelivery_and_tenant_scope(
    engine: AsyncEngine, webhook: subscriptions.Subscription
) -> None:
    await deliveries.create(engine, [new(webhook, n) for n in range(3)])
    rows = {d.event_id: d for d in await deliveries.listed(engine, webhook.tenant, webhook.id)}
    ok, dead, gone = rows["evt_0"], rows["evt_1"], rows["evt_2"]
    assert await deliveries.mark_delivered(engine, ok.id, 204)
    assert not await deliveries.mark_delivered(engine, ok.id, 204)  # no longer pending
    assert await deliveries.mark_dead(engine, dead.id, None, "x" * 2000)
    assert await deliveries.mark_gone(engine, gone.id, 410)

    def by_status(status: str) -> list[str]:
        return [d.event_id for d in listed if d.status == status]

    listed = await deliveries.listed(engine, webhook.tenant, webhook.id)
    assert (by_status("delivered"), by_status("dead"), by_status("gone")) == (
        ["evt_0"], ["evt_1"], ["evt_2"]
    )  # fmt: skip
    delivered = await deliveries.get(engine, webhook.tenant, webhook.id, ok.id)
    assert delivered is not None
    assert (delivered.attempts, delivered.last_status_code) == (1, 204)
    assert delivered.delivered_at is not None
    dead_now = await deliveries.get(engine, webhook.tenant, webhook.id, dead.id)
    assert dead_now is not None
    assert dead_now.last_error is not None
    assert len(dead_now.last_error) == deliveries.MAX_ERROR_CHARS
    only_dead = await deliveries.listed(engine, webhook.tenant, webhook.id, "dead", limit=5)
    assert [d.id for d in only_dead] == [dead.id]

    assert await deliveries.redeliver(engine, "someone-else", webhook.id, dead.id) is None
    assert await deliveries.redeliver(engine, webhook.tenant, webhook.id, ok.id) is None
    requeued = await deliveries.redeliver(engine, webhook.tenant, webhook.id, dead.id)
    assert requeued is not None
    assert (requeued.status, requeued.attempts) == ("pending", 0)
    assert await deliveries.listed(engine, "someone-else", webhook.id) == []


async def test_disabled_subscriptions_hold_their_deliveries(
    engine: AsyncEngine, webhook: subscriptions.Subscription
) -> None:
    await deliveries.create(engine, [new(webhook, 1)])
    await subscriptions.disable(engine, webhook.id, "receiver answered 410 Gone")
    assert mine(await deliveries.claim(engine, 1000, 60), webhook) == set()
    assert await subscriptions.webhook_target(engine, webhook.id) is None
    assert webhook.id not in {s.id for s in await subscriptions.webhooks(engine, [webhook.tenant])}
    enabled = await subscriptions.update(engine, webhook.tenant, webhook.id, {}, enabled=True)
    assert enabled is not None
    assert (enabled.enabled, enabled.disabled_reason) == (True, None)
    assert mine(await deliveries.claim(engine, 1000, 60), webhook) == {"evt_1"}


async def test_rotation_signs_with_both_secrets_during_the_grace_only(
    engine: AsyncEngine, webhook: subscriptions.Subscription
) -> None:
    target = await subscriptions.webhook_target(engine, webhook.id)
    assert target is not None
    assert (target.url, target.secrets) == ("http://127.0.0.1:9/", (SECRET,))
    until = await subscriptions.rotate_secret(engine, webhook.tenant, webhook.id, NEXT_SECRET, 60)
    assert until is not None
    target = await subscriptions.webhook_target(engine, webhook.id)
    assert target is not None
    assert target.secrets == (NEXT_SECRET, SECRET)
    await subscriptions.rotate_secret(engine, webhook.tenant, webhook.id, SECRET, 0)
    target = await subscriptions.webhook_target(engine, webhook.id)
    assert target is not None
    assert target.secrets == (SECRET,)  # a grace of 0: the old secret stops at once
    assert await subscriptions.rotate_secret(engine, "someone-else", webhook.id, SECRET, 60) is None
    # The Subscription never carries a secret.
    found = await subscriptions.get(engine, webhook.tenant, webhook.id)
    assert found is not None
    assert SECRET not in repr(found)
    assert NEXT_SECRET not in repr(found)
