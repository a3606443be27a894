"""Alert history, the live SSE feed and entity timelines, through the real API process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import alerts as alert_store
from storage import messages
from storage.cache import AlertCache
from tests.integration.api_harness import ApiServer, Tenant, new_tenant
from tests.integration.storage_fixtures import T0, alert, scored
from tonewatch.config import Settings
from tonewatch.contracts import Alert

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(loop_scope="function")
async def cache(settings: Settings) -> AsyncIterator[AlertCache]:
    cache = AlertCache.from_settings(settings)
    yield cache
    await cache.close()


async def emit(engine: AsyncEngine, cache: AlertCache, alerts: Sequence[Alert]) -> None:
    """What the pipeline's alert sink does: Postgres, then Redis (lists + live channel)."""
    await cache.push(await alert_store.record(engine, alerts))


@pytest.fixture
def tenant(settings: Settings) -> Tenant:
    return new_tenant(settings, reader=("read",), labeller=("label",))


async def test_history_pages_filters_and_tenancy(
    api: ApiServer, settings: Settings, engine: AsyncEngine, cache: AlertCache, tenant: Tenant
) -> None:
    made = [alert(tenant.name, n) for n in range(5)]
    made += [alert(tenant.name, 9, kind="message_risk", severity="critical", source="reviews")]
    await emit(engine, cache, made)
    async with httpx.AsyncClient(
        base_url=api.url, headers={"Authorization": f"Bearer {tenant['reader']}"}
    ) as client:
        keys, cursor = [], None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/v1/alerts", params=params)).json()
            keys += [a["dedup_key"] for a in page["items"]]
            if not (cursor := page["next_cursor"]):
                break
        assert keys == [a.dedup_key for a in sorted(made, key=lambda a: a.created_at)][::-1]

        critical = (await client.get("/v1/alerts", params={"min_severity": "critical"})).json()
        assert [a["kind"] for a in critical["items"]] == ["message_risk"]
        news = (await client.get("/v1/alerts", params={"source": "news", "limit": 200})).json()
        assert len(news["items"]) == 5
        assert (await client.get("/v1/alerts", params={"cursor": "garbage"})).status_code == 422
        assert (await client.get("/v1/alerts", params={"kind": "nope"})).status_code == 422

    other = new_tenant(settings, reader=("read",))
    with api.client(other["reader"]) as client:
        assert client.get("/v1/alerts").json()["items"] == []
    with api.client(tenant["labeller"]) as client:
        assert client.get("/v1/alerts").status_code == 403  # label scope cannot read alerts


async def _events(
    lines: httpx.Response | AsyncIterator[str], count: int, timeout_s: float = 10.0
) -> list[dict]:  # type: ignore[type-arg]
    """The next `count` SSE alert events: (id, alert JSON). Pass the response, or its
    `aiter_lines()` to read more events from it later."""
    if isinstance(lines, httpx.Response):
        lines = lines.aiter_lines()
    found: list[dict] = []  # type: ignore[type-arg]
    event: dict[str, str] = {}
    async with asyncio.timeout(timeout_s):
        async for line in lines:
            if line.startswith(("id: ", "event: ", "data: ")):
                name, _, value = line.partition(": ")
                event[name] = value
            elif line == "" and "data" in event:
                found.append({"id": int(event["id"]), "alert": json.loads(event["data"])})
                event = {}
                if len(found) == count:
                    return found
    raise AssertionError("stream ended")


async def test_live_stream_delivers_new_alerts_and_resumes_after_last_event_id(
    api: ApiServer, settings: Settings, engine: AsyncEngine, cache: AlertCache, tenant: Tenant
) -> None:
    other = new_tenant(settings, reader=("read",))
    await emit(engine, cache, [alert(tenant.name, 0)])  # history before connecting: not sent
    headers = {"Authorization": f"Bearer {tenant['reader']}"}
    async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=30) as client:
        async with client.stream("GET", "/v1/alerts/stream") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            await asyncio.sleep(0.5)  # let the stream subscribe
            await emit(engine, cache, [alert(other.name, 1), alert(tenant.name, 1)])
            (first,) = await _events(response, 1)
        assert first["alert"]["dedup_key"] == alert(tenant.name, 1).dedup_key

        # Disconnected: three more alerts; a reconnect with Last-Event-ID gets all of them.
        missed = [alert(tenant.name, n) for n in (2, 3, 4)]
        await emit(engine, cache, missed)
        resume = {"Last-Event-ID": str(first["id"])}
        async with client.stream("GET", "/v1/alerts/stream", headers=resume) as response:
            caught_up = await _events(response, 3)
        assert [e["alert"]["dedup_key"] for e in caught_up] == [a.dedup_key for a in missed]
        assert [e["id"] for e in caught_up] == sorted(e["id"] for e in caught_up)

        bad = await client.get("/v1/alerts/stream", headers={"Last-Event-ID": "x"})
        assert bad.status_code == 422


async def test_live_stream_filters_by_kind(
    api: ApiServer, engine: AsyncEngine, cache: AlertCache, tenant: Tenant
) -> None:
    headers = {"Authorization": f"Bearer {tenant['reader']}"}
    async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=30) as client:
        params = {"kind": "message_risk"}
        async with client.stream("GET", "/v1/alerts/stream", params=params) as response:
            await asyncio.sleep(0.5)
            await emit(
                engine, cache, [alert(tenant.name, 1), alert(tenant.name, 2, kind="message_risk")]
            )
            (event,) = await _events(response, 1)
        assert event["alert"]["kind"] == "message_risk"


async def test_timeline_buckets_volume_and_sentiment(
    api: ApiServer, engine: AsyncEngine, cache: AlertCache, tenant: Tenant
) -> None:
    rows = [scored(tenant.name, f"m{n}", offset=n, ts=T0 + timedelta(minutes=n)) for n in range(3)]
    rows.append(
        scored(tenant.name, "m9", offset=9, ts=T0 + timedelta(minutes=12)).model_copy(
            update={
                "sentiment": "positive",
                "scores": {"negative": 0.1, "neutral": 0.1, "positive": 0.8},
            }
        )
    )
    await messages.record(engine, rows)
    await emit(engine, cache, [alert(tenant.name, 1)])
    with api.client(tenant["reader"]) as client:
        response = client.get(
            "/v1/entities/acme/timeline",
            params={"source": "news", "bucket_s": 600, "since": T0.isoformat(),
                    "until": (T0 + timedelta(hours=1)).isoformat()},
        )  # fmt: skip
        assert response.status_code == 200, response.text
        body = response.json()
        assert [(b["volume"], b["negative"], b["positive"]) for b in body["buckets"]] == [
            (3, 3, 0), (1, 0, 1)
        ]  # fmt: skip
        assert body["buckets"][0]["net_sentiment"] == pytest.approx(-0.6)
        assert body["buckets"][1]["net_sentiment"] == pytest.approx(0.7)
        assert [a["dedup_key"] for a in body["alerts"]] == [alert(tenant.name, 1).dedup_key]
        too_many = client.get(
            "/v1/entities/acme/timeline",
            params={"source": "news", "bucket_s": 10, "since": T0.isoformat(),
                    "until": (T0 + timedelta(days=30)).isoformat()},
        )  # fmt: skip
        assert too_many.status_code == 422


async def test_live_stream_of_a_subscription_carries_exactly_its_matches(
    api: ApiServer, settings: Settings, engine: AsyncEngine, cache: AlertCache
) -> None:
    tenant = new_tenant(settings, analyst=("read", "subscribe"))
    headers = {"Authorization": f"Bearer {tenant['analyst']}"}
    rule = {
        "name": "acme risk", "channel": "sse", "sources": ["news"], "entities": ["acme*"],
        "kinds": ["message_risk", "negative_spike"], "min_severity": "high",
    }  # fmt: skip
    matching = [
        alert(tenant.name, 1, entity="acme"),
        alert(tenant.name, 2, entity="acme-eu", kind="message_risk", severity="critical"),
    ]
    missing = [
        alert(tenant.name, 3, entity="acme", severity="medium"),  # below the severity
        alert(tenant.name, 4, entity="globex"),  # another entity
        alert(tenant.name, 5, entity="acme", source="reviews"),  # another source
        alert(tenant.name, 6, entity="acme", kind="volume_spike"),  # another kind
        alert(tenant.name, 7, entity=None),  # no entity: an entity rule cannot match
    ]
    async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=30) as client:
        sub = (await client.post("/v1/subscriptions", json=rule)).json()["id"]
        params = {"subscription": sub}
        async with client.stream("GET", "/v1/alerts/stream", params=params) as response:
            lines = response.aiter_lines()
            await asyncio.sleep(0.5)
            await emit(engine, cache, [missing[0], matching[0], *missing[1:], matching[1]])
            received = await _events(lines, 2)
            # Nothing else comes: a marker alert after them arrives next, not a miss.
            marker = alert(tenant.name, 8, entity="acme-marker")
            await emit(engine, cache, [marker])
            (after,) = await _events(lines, 1)
    assert [e["alert"]["dedup_key"] for e in received] == [a.dedup_key for a in matching]
    assert after["alert"]["dedup_key"] == marker.dedup_key
