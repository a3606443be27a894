"""Feedback labelling through the real API process, Postgres and Kafka: the queue, leases
under concurrency, verdicts on the feedback topic, gold labels and labeller figures, tenant
isolation, and the per-key rate limit on /v1/feedback (RELIABILITY.md S5)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import api_keys, labeling, messages
from storage.tables import FeedbackRow, LabelLeaseRow, Message
from tests.integration.api_harness import ApiServer, Tenant, free_port, new_tenant, start_api
from tests.integration.pipeline_harness import consume
from tonewatch.config import Settings
from tonewatch.contracts import SENTIMENT_LABELS, Feedback, InputMessage, Origin, ScoredMessage

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ITEM_FIELDS = {
    "message_id", "source", "entity", "text", "ts", "prediction", "confidence",
    "lease_expires_at",
}  # fmt: skip


def scored(
    tenant: str,
    message_id: str,
    *,
    source: str = "news",
    sentiment: str = "negative",
    top: float = 0.9,
    risks: dict[str, float] | None = None,
    model_version: str = "v1",
) -> ScoredMessage:
    """A scored message whose predicted `sentiment` has probability `top`."""
    rest = (1 - top) / 2
    fields: dict[str, Any] = {
        "id": message_id, "source": source, "tenant": tenant, "ts": T0,
        "text": f"text of {message_id}",
    }  # fmt: skip
    if source == "chats":
        fields |= {"conversation_id": "conv-1", "speaker": "customer", "turn": 1}
    else:
        fields["entity"] = "ACME"
    return ScoredMessage(
        message=InputMessage.model_validate(fields),
        origin=Origin(topic=source, partition=0, offset=0),
        sentiment=sentiment,
        scores={s: top if s == sentiment else rest for s in SENTIMENT_LABELS},
        risks=risks if risks is not None else {"fraud": 0.01, "churn": 0.02},
        model_version=model_version,
        scored_at=T0,
    )


async def tenant_with(settings: Settings, **keys: tuple[str, ...]) -> Tenant:
    return await asyncio.to_thread(new_tenant, settings, **keys)


def client(api: ApiServer, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0
    )


async def queue(api: ApiServer, token: str, limit: int) -> list[dict[str, Any]]:
    async with client(api, token) as http:
        response = await http.get("/v1/labeling/queue", params={"limit": limit})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()
    return items


async def post_feedback(api: ApiServer, token: str, **body: Any) -> httpx.Response:
    async with client(api, token) as http:
        return await http.post("/v1/feedback", json=body)


async def published_feedback(
    settings: Settings, tenant: str, until: Callable[[list[Feedback]], bool]
) -> list[Feedback]:
    """The tenant's records on the feedback topic, read from the start until `until` holds."""

    def ours(records: list[Any]) -> list[Feedback]:
        found = [Feedback.model_validate_json(r.value) for r in records]
        for record, feedback in zip(records, found, strict=True):
            assert record.key == feedback.message_id.encode()
        return [f for f in found if f.tenant == tenant]

    return ours(await consume(settings, "feedback", lambda records: until(ours(records))))


async def feedback_rows(engine: AsyncEngine, tenant: str) -> list[Any]:
    async with engine.connect() as conn:
        query = select(FeedbackRow).where(FeedbackRow.tenant == tenant).order_by(FeedbackRow.id)
        return list((await conn.execute(query)).mappings().all())


@pytest.fixture
def short_api(api_env: dict[str, str], tmp_path: Path, migrated: None) -> Iterator[ApiServer]:
    """A second API server whose keys may send 2 requests/s, 5 at once (S5)."""
    server = start_api(
        tmp_path / "api-s5.log",
        {**api_env, "TONEWATCH_API_RATE_PER_S": "2", "TONEWATCH_API_RATE_BURST": "5"},
    )
    yield server
    server.stop()


async def test_queue_is_least_confident_first_balanced_and_hides_gold(
    api: ApiServer, settings: Settings, engine: AsyncEngine
) -> None:
    tenant = await tenant_with(settings, alice=("label",), admin=("admin",))
    batch = [scored(tenant.name, f"n{i}", top=0.40 + i / 100) for i in range(20)]
    batch += [scored(tenant.name, f"r{i}", source="reviews", sentiment="positive",
                     top=0.70 + i / 100) for i in range(5)]  # fmt: skip
    batch += [scored(tenant.name, f"c{i}", source="chats", sentiment="neutral",
                     top=0.80 + i / 100) for i in range(5)]  # fmt: skip
    # A sure sentiment but a coin-toss risk: the least confident of all.
    batch.append(scored(tenant.name, "coin", top=0.95, risks={"fraud": 0.52, "churn": 0.01}))
    assert await messages.record(engine, batch) == len(batch)
    async with client(api, tenant["admin"]) as admin:
        gold = [{"message_id": "r0", "source": "reviews", "sentiment": "positive"},
                {"message_id": "n1", "source": "news", "sentiment": "neutral"}]  # fmt: skip
        assert (await admin.post("/v1/labeling/gold", json=gold)).json() == {"gold": 2}

    items = await queue(api, tenant["alice"], 6)
    assert [i["message_id"] for i in items] == ["coin", "n0", "r0", "r1", "c0", "c1"]
    assert Counter(i["source"] for i in items) == {"news": 2, "reviews": 2, "chats": 2}
    confidences = [i["confidence"] for i in items]
    assert confidences == sorted(confidences)
    assert confidences[0] == pytest.approx(0.04)
    for item in items:
        assert set(item) == ITEM_FIELDS  # the gold items r0 look like any other
        prediction = item["prediction"]
        assert item["confidence"] == labeling.confidence(prediction["scores"], prediction["risks"])
        assert prediction["model_version"] == "v1"
        expires = datetime.fromisoformat(item["lease_expires_at"])
        lease = timedelta(seconds=settings.label_lease_s)
        assert abs(expires - (datetime.now(UTC) + lease)) < timedelta(seconds=30)
    # Asking again gives the same items back (the caller's own leases come first).
    again = await queue(api, tenant["alice"], 6)
    assert [i["message_id"] for i in again] == [i["message_id"] for i in items]
    async with client(api, tenant["alice"]) as alice:
        for limit in (0, 51):
            assert (
                await alice.get("/v1/labeling/queue", params={"limit": limit})
            ).status_code == 422


async def test_concurrent_labellers_never_share_an_item_and_expired_leases_return(
    api: ApiServer, settings: Settings, engine: AsyncEngine
) -> None:
    names = ("ann", "ben", "cat", "dan", "eve")
    tenant = await tenant_with(settings, **{name: ("label",) for name in names})
    sources = ("news", "reviews", "chats")
    batch = [
        scored(tenant.name, f"m{i:02}", source=sources[i % 3], top=0.4 + i / 100) for i in range(40)
    ]
    await messages.record(engine, batch)

    claims = await asyncio.gather(*(queue(api, tenant[name], 10) for name in names[:4]))
    held = [{i["message_id"] for i in items} for items in claims]
    assert [len(h) for h in held] == [10, 10, 10, 10]
    assert set.union(*held) == {m.message.id for m in batch}  # disjoint, all 40 served
    assert await queue(api, tenant["eve"], 10) == []  # everything is leased

    # ann's leases run out: her items go to the next labeller who asks.
    ours = select(Message.id).where(Message.tenant == tenant.name)
    async with engine.begin() as conn:
        await conn.execute(
            update(LabelLeaseRow)
            .where(LabelLeaseRow.labeller == "ann", LabelLeaseRow.message_pk.in_(ours))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert {i["message_id"] for i in await queue(api, tenant["eve"], 20)} == held[0]
    assert {i["message_id"] for i in await queue(api, tenant["ann"], 10)} == set()


async def test_feedback_lands_in_postgres_and_on_kafka_and_a_relabel_replaces_it(
    api: ApiServer, settings: Settings, engine: AsyncEngine
) -> None:
    tenant = await tenant_with(settings, alice=("label",), bob=("label",))
    risks = {"fraud": 0.7, "churn": 0.2, "toxicity": 0.5}
    await messages.record(engine, [scored(tenant.name, "m1", risks=risks, model_version="v7")])
    assert [i["message_id"] for i in await queue(api, tenant["alice"], 5)] == ["m1"]

    first = await post_feedback(api, tenant["alice"], message_id="m1", source="news", correct=True)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["sentiment"] == "negative"
    assert body["risks"] == ["fraud", "toxicity"]  # p >= 0.5, in the contract's order
    assert (body["prediction_correct"], body["model_version"], body["labeller"]) == (
        True, "v7", "alice",
    )  # fmt: skip
    # The lease is released and alice is done with m1; bob may still label it.
    async with engine.connect() as conn:
        leases = select(LabelLeaseRow.labeller).join(
            Message, Message.id == LabelLeaseRow.message_pk
        )
        assert (await conn.execute(leases.where(Message.tenant == tenant.name))).all() == []
    assert await queue(api, tenant["alice"], 5) == []
    assert [i["message_id"] for i in await queue(api, tenant["bob"], 5)] == ["m1"]

    # A retry is the same record; a new verdict replaces the old, under the same id.
    retry = await post_feedback(api, tenant["alice"], message_id="m1", source="news", correct=True)
    assert retry.json() == body
    relabel = await post_feedback(
        api, tenant["alice"], message_id="m1", source="news", sentiment="positive",
        risks=["churn"],
    )  # fmt: skip
    assert relabel.status_code == 201, relabel.text
    second = relabel.json()
    assert second["feedback_id"] == body["feedback_id"]
    assert second["updated_at"] > body["updated_at"]
    assert second["created_at"] == body["created_at"]
    assert (second["sentiment"], second["risks"], second["prediction_correct"]) == (
        "positive", ["churn"], False,
    )  # fmt: skip

    (row,) = await feedback_rows(engine, tenant.name)
    assert (row["feedback_id"], row["labeller"], row["model_version"]) == (
        body["feedback_id"], "alice", "v7",
    )  # fmt: skip
    assert (row["sentiment"], row["risks"], row["prediction_correct"]) == (
        "positive",
        ["churn"],
        False,
    )
    assert row["key_id"] == api_keys.split_token(tenant["alice"])[0]  # type: ignore[index]

    newest_at = datetime.fromisoformat(second["updated_at"])
    published = await published_feedback(
        settings, tenant.name, lambda found: any(f.updated_at == newest_at for f in found)
    )
    assert {f.feedback_id for f in published} == {body["feedback_id"]}
    versions = {f.updated_at: f for f in published}
    assert sorted(versions) == [
        datetime.fromisoformat(body["updated_at"]), datetime.fromisoformat(second["updated_at"])
    ]  # fmt: skip
    newest = versions[max(versions)]
    assert (newest.tenant, newest.source, newest.message_id, newest.text) == (
        tenant.name, "news", "m1", "text of m1",
    )  # fmt: skip
    assert (newest.sentiment, newest.risks, newest.prediction_correct) == (
        "positive",
        ["churn"],
        False,
    )
    assert (newest.labeller, newest.model_version, newest.version) == ("alice", "v7", 1)
    assert versions[min(versions)].risks == ["fraud", "toxicity"]

    async with client(api, tenant["bob"]) as bob:
        listed = (await bob.get("/v1/feedback")).json()
        assert [f["feedback_id"] for f in listed] == [body["feedback_id"]]
        assert listed[0]["updated_at"] == second["updated_at"]
        later = await bob.get("/v1/feedback", params={"since": second["updated_at"]})
        assert later.json() == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"message_id": "m1", "source": "news", "correct": True, "sentiment": "neutral"}, 422),
        ({"message_id": "m1", "source": "news", "correct": True, "risks": []}, 422),
        ({"message_id": "m1", "source": "news"}, 422),
        ({"message_id": "m1", "source": "news", "correct": False}, 422),
        ({"message_id": "m1", "source": "news", "sentiment": "neutral",
          "risks": ["fraud", "fraud"]}, 422),
        ({"message_id": "m1", "source": "news", "sentiment": "neutral", "risks": ["arson"]}, 422),
        ({"message_id": "m1", "source": "news", "sentiment": "angry"}, 422),
        ({"message_id": "m1", "source": "news", "correct": True, "extra": 1}, 422),
        ({"message_id": "m1", "source": "tweets", "correct": True}, 422),
        ({"message_id": "nope", "source": "news", "correct": True}, 404),
        ({"message_id": "m1", "source": "reviews", "correct": True}, 404),
        ({"message_id": "m1", "source": "news", "sentiment": "neutral", "correct": False}, 201),
    ],
)  # fmt: skip
async def test_feedback_bodies_are_checked(
    api: ApiServer, settings: Settings, engine: AsyncEngine, body: dict[str, Any], status: int
) -> None:
    tenant = await tenant_with(settings, alice=("label",), reader=("read",))
    await messages.record(engine, [scored(tenant.name, "m1")])
    response = await post_feedback(api, tenant["alice"], **body)
    assert response.status_code == status, response.text
    assert (await post_feedback(api, tenant["reader"], **body)).status_code == 403
    assert len(await feedback_rows(engine, tenant.name)) == (status == 201)


async def test_tenants_never_see_each_other(
    api: ApiServer, settings: Settings, engine: AsyncEngine
) -> None:
    ours = await tenant_with(settings, alice=("label",), admin=("admin",))
    theirs = await tenant_with(settings, mallory=("label",), boss=("admin",))
    await messages.record(engine, [scored(ours.name, f"m{i}") for i in range(3)])
    await messages.record(engine, [scored(theirs.name, "x1")])
    mine = await post_feedback(api, ours["alice"], message_id="m0", source="news", correct=True)
    assert mine.status_code == 201

    stolen = await post_feedback(
        api, theirs["mallory"], message_id="m1", source="news", correct=True
    )
    assert stolen.status_code == 404
    assert [i["message_id"] for i in await queue(api, theirs["mallory"], 50)] == ["x1"]
    async with client(api, theirs["boss"]) as boss:
        assert (await boss.get("/v1/feedback")).json() == []
        assert (await boss.get("/v1/labelers")).json() == []
        gold = [{"message_id": "m1", "source": "news", "sentiment": "positive"}]
        assert (await boss.post("/v1/labeling/gold", json=gold)).status_code == 404
    async with client(api, ours["admin"]) as admin:
        assert [s["labeller"] for s in (await admin.get("/v1/labelers")).json()] == ["alice"]
    async with client(api, ours["alice"]) as alice:
        assert (await alice.get("/v1/labelers")).status_code == 403  # admin only
        assert (await alice.post("/v1/labeling/gold", json=gold)).status_code == 403
    assert len(await feedback_rows(engine, theirs.name)) == 0


async def test_labeller_agreement_and_gold_accuracy(
    api: ApiServer, settings: Settings, engine: AsyncEngine
) -> None:
    # 3 labellers, 5 messages, gold on m1 (negative) and m2 (positive).
    table = {
        "m1": {"ann": "negative", "ben": "negative", "cat": "positive"},
        "m2": {"ann": "positive", "ben": "positive", "cat": "negative"},
        "m3": {"ann": "neutral", "ben": "neutral", "cat": "neutral"},
        "m4": {"ann": "negative", "ben": "negative"},
        "m5": {"ann": "positive"},
    }
    tenant = await tenant_with(
        settings, ann=("label",), ben=("label",), cat=("label",), admin=("admin",)
    )
    await messages.record(engine, [scored(tenant.name, m) for m in table])
    async with client(api, tenant["admin"]) as admin:
        gold = [
            {"message_id": "m1", "source": "news", "sentiment": "negative"},
            {"message_id": "m2", "source": "news", "sentiment": "positive", "risks": ["fraud"]},
        ]
        unknown = [*gold, {"message_id": "m9", "source": "news", "sentiment": "neutral"}]
        missing = await admin.post("/v1/labeling/gold", json=unknown)
        assert missing.status_code == 404
        assert missing.json()["detail"]["unknown"] == ["news/m9"]
        assert (await admin.get("/v1/labelers")).json() == []
        assert (await admin.post("/v1/labeling/gold", json=gold)).json() == {"gold": 2}
        for message_id, verdicts in table.items():
            for labeller, sentiment in verdicts.items():
                response = await post_feedback(
                    api, tenant[labeller], message_id=message_id, source="news",
                    sentiment=sentiment,
                )  # fmt: skip
                assert response.status_code == 201, response.text
        stats = {s["labeller"]: s for s in (await admin.get("/v1/labelers")).json()}
    assert {name: s["labels"] for name, s in stats.items()} == {"ann": 5, "ben": 4, "cat": 3}
    assert stats["ann"]["share"] == pytest.approx(5 / 12)
    # ann and ben: m1 and m2 are left out (the other two tie), m3 and m4 agree.
    assert (stats["ann"]["agreement_with_others"], stats["ann"]["agreement_items"]) == (1.0, 2)
    assert (stats["ben"]["agreement_with_others"], stats["ben"]["agreement_items"]) == (1.0, 2)
    assert stats["cat"]["agreement_with_others"] == pytest.approx(1 / 3)
    assert [(s["gold_accuracy"], s["gold_labels"]) for s in stats.values()] == [
        (1.0, 2), (1.0, 2), (0.0, 2),
    ]  # fmt: skip
    assert all(s["flags"] == [] for s in stats.values())  # too little evidence by default
    # The retrain worker calls the same function, with its own policy.
    policy = labeling.StatsPolicy(min_gold_items=2, min_agreement_items=3)
    (_, _, cat) = await labeling.labeller_stats(engine, tenant.name, policy)
    assert cat.flags == [
        "gold accuracy 0.00 below 0.6 over 2 gold items",
        "agrees with others 0.33 of the time over 3 items",
    ]


@pytest.mark.slow  # starts its own API server
async def test_kafka_down_answers_503_keeps_the_verdict_and_a_retry_publishes_it(
    api: ApiServer, api_env: dict[str, str], settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    tenant = await tenant_with(settings, alice=("label",))
    await messages.record(engine, [scored(tenant.name, "m1")])
    verdict = {"message_id": "m1", "source": "news", "sentiment": "neutral", "risks": ["churn"]}
    # An API whose Kafka is a closed port: the broker is down for it alone.
    env = {**api_env, "TONEWATCH_KAFKA_PORT": str(free_port())}
    no_kafka = await asyncio.to_thread(start_api, tmp_path / "api-no-kafka.log", env)
    try:
        refused = await post_feedback(no_kafka, tenant["alice"], **verdict)
    finally:
        await asyncio.to_thread(no_kafka.stop)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5"
    assert "saved" in refused.json()["detail"]
    (kept,) = await feedback_rows(engine, tenant.name)
    # The client's retry (Kafka is back) is the same verdict, and it is published.
    retried = await post_feedback(api, tenant["alice"], **verdict)
    assert retried.status_code == 201, retried.text
    assert retried.json()["feedback_id"] == kept["feedback_id"]
    assert datetime.fromisoformat(retried.json()["updated_at"]) == kept["updated_at"]
    assert len(await feedback_rows(engine, tenant.name)) == 1
    published = await published_feedback(settings, tenant.name, bool)
    assert [(f.feedback_id, f.updated_at) for f in published] == [
        (kept["feedback_id"], kept["updated_at"])
    ]


@pytest.mark.slow  # starts its own API server
@pytest.mark.reliability("S5")
async def test_a_flooding_key_gets_429_while_other_keys_are_served(
    short_api: ApiServer, settings: Settings, engine: AsyncEngine
) -> None:
    tenant = await tenant_with(settings, flood=("label",), calm=("label",))
    await messages.record(engine, [scored(tenant.name, "m1")])
    verdict = {"message_id": "m1", "source": "news", "correct": True}
    async with (
        client(short_api, tenant["flood"]) as flood,
        client(short_api, tenant["calm"]) as calm,
    ):
        started = time.monotonic()
        statuses: list[int] = []
        while 429 not in statuses:
            assert len(statuses) < 40, f"no 429 after {len(statuses)} requests"
            refused = await flood.post("/v1/feedback", json=verdict)
            statuses.append(refused.status_code)
        elapsed = time.monotonic() - started
        served = statuses.count(201)
        assert statuses == [201] * served + [429]
        assert 5 <= served <= 5 + 2 * elapsed + 1  # the burst, plus what refilled meanwhile
        retry_after = refused.headers["retry-after"]
        assert retry_after.isdigit()
        assert int(retry_after) >= 1
        # Limits are per key: another key of the same tenant is still served.
        assert (await calm.post("/v1/feedback", json=verdict)).status_code == 201
        await asyncio.sleep(int(retry_after))
        assert (await flood.post("/v1/feedback", json=verdict)).status_code == 201
