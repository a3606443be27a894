"""Signed webhooks end to end (RELIABILITY S1, S2): the real API, a real `tonewatch webhooks
worker` process on topics of its own, alerts produced to the alerts topic as the pipeline
does, and the reference receiver served by uvicorn on the one allowed loopback port.

The receiver port hosts several receivers, one per path (`/<name>/webhook`), each with its
own secrets, store and test hook. A canary TCP listener on another loopback port counts
connections: every internal target aims at it, and it must see none.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from storage import subscriptions
from storage.db import create_engine
from streams.topics import delete_topics, ensure_topics, new_producer, publish, topic_name
from streams.webhooks import ResolvedTarget, event_id, headers, post
from tests.integration.api_harness import ApiServer, Tenant, free_port, new_tenant
from tests.integration.webhook_harness import ReceiverHub
from tonewatch.config import Settings
from tonewatch.contracts import Alert
from tonewatch.webhook_receiver import (
    verify,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MAX_ATTEMPTS = 3
T = TypeVar("T")


def eventually(probe: Callable[[], T], ok: Callable[[T], bool], timeout_s: float = 20.0) -> T:
    """Poll until ok(probe()) holds; fail with the last value after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not there after {timeout_s}s: {value!r}")
        time.sleep(0.1)


# ---- the receivers, the canary and the worker ---------------------------------------------


class Canary:
    """A plain TCP listener on loopback (IPv4, and IPv6 when it can) counting connections."""

    def __init__(self) -> None:
        self.port = free_port()
        self.connections = 0
        self.sockets = [socket.create_server(("127.0.0.1", self.port))]
        try:
            self.sockets.append(socket.create_server(("::1", self.port), family=socket.AF_INET6))
            self.ipv6 = True
        except OSError:
            self.ipv6 = False
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while self.running:
            ready, _, _ = select.select(self.sockets, [], [], 0.1)
            for listener in ready:
                connection, _ = listener.accept()
                self.connections += 1
                connection.close()

    def close(self) -> None:
        self.running = False
        self.thread.join(5)
        for listener in self.sockets:
            listener.close()


@dataclass
class WebhookWorker:
    settings: Settings
    process: subprocess.Popen[bytes]
    log: Path
    metrics_url: str

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(self.metrics_url, timeout=5).text
        selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
        pattern = rf"^{re.escape(name)}{re.escape('{' + selector + '}') if labels else ''} (\S+)$"
        found = re.search(pattern, text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0


@pytest.fixture(scope="module")
def receivers(receiver_port: int) -> Iterator[ReceiverHub]:
    hub = ReceiverHub(receiver_port)
    hub.start()
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    listener = Canary()
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def worker(
    settings: Settings, api_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebhookWorker]:
    """`tonewatch webhooks worker` on topics and a consumer group of its own, fast retries."""
    run = f"whtest-{uuid.uuid4().hex[:8]}"
    own = settings.model_copy(update={"kafka_topic_prefix": f"{run}.", "worker_app_id": run})
    asyncio.run(ensure_topics(own))
    env = {
        **api_env,
        "TONEWATCH_KAFKA_TOPIC_PREFIX": own.kafka_topic_prefix,
        "TONEWATCH_WORKER_APP_ID": run,
        "TONEWATCH_WEBHOOK_BACKOFF_S": "0.2",
        "TONEWATCH_WEBHOOK_BACKOFF_MAX_S": "0.5",
        "TONEWATCH_WEBHOOK_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "TONEWATCH_WEBHOOK_TIMEOUT_S": "3",
    }
    port = free_port()
    log = tmp_path_factory.mktemp("webhooks") / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "tonewatch"), "webhooks", "worker",
             "--metrics-port", str(port)],
            cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    under_test = WebhookWorker(own, process, log, f"http://127.0.0.1:{port}/metrics")

    def up() -> bool:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            return httpx.get(under_test.metrics_url, timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    eventually(up, bool, timeout_s=30)
    yield under_test
    process.terminate()
    try:
        code = process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        code = None
    asyncio.run(delete_topics(own))
    assert code == 0, f"the worker did not stop cleanly: {log.read_text()[-3000:]}"


# ---- alerts and the API -------------------------------------------------------------------


def alert(tenant: str, entity: str, *, ago_s: float = 0, **fields: Any) -> Alert:
    now = datetime.now(UTC) - timedelta(seconds=ago_s)
    values: dict[str, Any] = {
        "tenant": tenant, "kind": "negative_spike", "severity": "high", "source": "news",
        "entity": entity, "window_start": now - timedelta(minutes=1), "window_end": now,
        "figures": {"negative_share": 0.8}, "evidence": ["m1", "m2"],
        "summary": f"{entity}: negative spike", "model_version": "1", "created_at": now,
    } | fields  # fmt: skip
    values["dedup_key"] = "/".join(
        (tenant, values["source"], entity, values["kind"], uuid.uuid4().hex[:8])
    )
    return Alert.model_validate(values)


def produce(worker: WebhookWorker, alerts: list[Alert], garbage: Sequence[bytes] = ()) -> None:
    """Put alerts on the alerts topic as the alert sink does (key: dedup key), after
    `garbage` records."""

    async def send() -> None:
        producer = new_producer(worker.settings)
        await producer.start()
        try:
            records = [(b"garbage", value) for value in garbage]
            records += [(a.dedup_key.encode(), a.model_dump_json().encode()) for a in alerts]
            await publish(producer, topic_name(worker.settings, "alerts"), records)
        finally:
            await producer.stop()

    asyncio.run(send())


def wait_fanned_out(worker: WebhookWorker, timeout_s: float = 30.0) -> None:
    """Until the worker's group has committed every alert produced so far: it commits after
    writing the deliveries, so every delivery row there will ever be exists."""
    topic = topic_name(worker.settings, "alerts")
    group = f"{worker.settings.worker_app_id}-webhooks"

    async def wait() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=worker.settings.kafka_bootstrap)
        admin = AIOKafkaAdminClient(bootstrap_servers=worker.settings.kafka_bootstrap)
        await consumer.start()
        await admin.start()
        try:
            parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            ends = await consumer.end_offsets(parts)
            deadline = time.monotonic() + timeout_s
            while True:
                committed = await admin.list_consumer_group_offsets(group)
                behind = {p: e for p, e in ends.items()
                          if e and (p not in committed or committed[p].offset < e)}  # fmt: skip
                if not behind:
                    return
                assert time.monotonic() < deadline, f"fan-out behind on {behind}"
                await asyncio.sleep(0.2)
        finally:
            await admin.close()
            await consumer.stop()

    asyncio.run(wait())


def subscribe(client: httpx.Client, url: str | None, **rule: Any) -> dict[str, Any]:
    body = {"name": "hook", "channel": "webhook" if url else "sse"} | rule
    if url:
        body["url"] = url
    made = client.post("/v1/subscriptions", json=body)
    assert made.status_code == 201, made.text
    return dict(made.json())


def deliveries(
    client: httpx.Client, sub: dict[str, Any], status: str | None = None
) -> list[dict[str, Any]]:
    params = {"status": status} if status else {}
    listed = client.get(f"/v1/subscriptions/{sub['id']}/deliveries", params=params)
    assert listed.status_code == 200, listed.text
    return list(listed.json())


def settled(client: httpx.Client, sub: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """The subscription's deliveries once `count` exist and none is pending."""
    return eventually(
        lambda: deliveries(client, sub),
        lambda d: len(d) == count and all(x["status"] != "pending" for x in d),
    )


@pytest.fixture
def tenant(settings: Settings) -> Tenant:
    return new_tenant(settings, hooks=("subscribe",), reader=("read",))


# ---- the tests ----------------------------------------------------------------------------


def test_subscriptions_api_crud_validation_and_tenancy(
    api: ApiServer, settings: Settings, tenant: Tenant, receivers: ReceiverHub
) -> None:
    other = new_tenant(settings, hooks=("subscribe",))
    url = receivers.add().url
    with api.client(tenant["hooks"]) as mine, api.client(other["hooks"]) as theirs:
        made = subscribe(mine, url, entities=["ACME", "ACME-*"], sources=["news"],
                         kinds=["message_risk"], min_severity="high")  # fmt: skip
        secret = made["secret"]
        assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{32}", secret)
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 24
        sse = subscribe(mine, None, name="live")
        assert sse["secret"] is None
        sub = f"/v1/subscriptions/{made['id']}"
        shown = mine.get(sub).json()
        assert shown["entities"] == ["ACME", "ACME-*"]
        assert shown["enabled"] is True
        listed = mine.get("/v1/subscriptions").json()
        assert [s["id"] for s in listed] == [made["id"], sse["id"]]
        assert secret not in json.dumps(listed) + json.dumps(shown)
        assert all("secret" not in s for s in [*listed, shown])

        patched = mine.patch(sub, json={"min_severity": "critical", "entities": ["X*"]})
        assert patched.status_code == 200, patched.text
        assert (patched.json()["min_severity"], patched.json()["entities"]) == ("critical", ["X*"])
        assert mine.patch(sub, json={"enabled": False}).json()["enabled"] is False
        assert mine.patch(sub, json={"enabled": True}).json()["enabled"] is True

        # Another tenant's subscription does not exist for them: 404 everywhere.
        for method, path in [
            ("GET", sub), ("PATCH", sub), ("DELETE", sub), ("POST", f"{sub}/rotate-secret"),
            ("GET", f"{sub}/deliveries"), ("POST", f"{sub}/deliveries/1/retry"),
        ]:  # fmt: skip
            body = {"name": "x"} if method == "PATCH" else None
            answer = theirs.request(method, path, json=body)
            assert answer.status_code == 404, (method, path, answer.text)
        assert theirs.get("/v1/subscriptions").json() == []
        with api.client(tenant["reader"]) as reader:
            assert reader.get("/v1/subscriptions").status_code == 403
            assert reader.post("/v1/subscriptions", json={}).status_code == 403

        bad_bodies: list[dict[str, Any]] = [
            {"name": "x", "channel": "webhook"},  # no url
            {"name": "x", "channel": "sse", "url": url},
            {"name": "x", "channel": "email"},
            {"name": "x", "channel": "sse", "sources": ["tweets"]},
            {"name": "x", "channel": "sse", "kinds": ["anything"]},
            {"name": "x", "channel": "sse", "min_severity": "urgent"},
            {"name": "x", "channel": "sse", "entities": [f"e{i}" for i in range(51)]},
            {"name": "x", "channel": "sse", "entities": ["e" * 201]},
            {"name": "", "channel": "sse"},
            {"name": "x", "channel": "sse", "secret": "whsec_mine"},
        ]
        for bad in bad_bodies:
            assert mine.post("/v1/subscriptions", json=bad).status_code == 422, bad
        assert mine.patch(f"/v1/subscriptions/{sse['id']}", json={"url": url}).status_code == 422
        assert mine.patch(sub, json={"url": None}).status_code == 422
        assert mine.post(f"/v1/subscriptions/{sse['id']}/rotate-secret").status_code == 409
        assert mine.get(f"{sub}/deliveries", params={"status": "lost"}).status_code == 422

        assert mine.delete(sub).status_code == 204
        assert mine.get(sub).status_code == 404
        assert mine.delete(sub).status_code == 404


@pytest.mark.reliability("B4")
def test_matching_alerts_arrive_signed_once_each(
    api: ApiServer,
    settings: Settings,
    tenant: Tenant,
    receivers: ReceiverHub,
    worker: WebhookWorker,
) -> None:
    other = new_tenant(settings, hooks=("subscribe",))
    wide, narrow, theirs_rx = receivers.add(), receivers.add(), receivers.add()
    with api.client(tenant["hooks"]) as mine, api.client(other["hooks"]) as theirs:
        s_wide = subscribe(mine, wide.url, sources=["news"], entities=["ACME*"],
                           min_severity="high")  # fmt: skip
        s_narrow = subscribe(mine, narrow.url, entities=["ACME"], kinds=["message_risk"])
        s_sse = subscribe(mine, None)  # matches everything, but is not a webhook
        s_theirs = subscribe(theirs, theirs_rx.url, entities=["ACME*"])
        wide.secrets.append(s_wide["secret"])
        narrow.secrets.append(s_narrow["secret"])
        theirs_rx.secrets.append(s_theirs["secret"])

        t = tenant.name
        a1 = alert(t, "ACME")
        a2 = alert(t, "ACMEX", kind="message_risk", severity="critical")
        a3 = alert(t, "ACME", kind="message_risk", severity="critical")
        b1 = alert(other.name, "ACME", kind="message_risk", severity="critical")
        misses = [
            alert(t, "ACME", source="reviews"),
            alert(t, "ACME", severity="medium"),
            alert(t, "OTHER", severity="critical"),
            alert(t, "ACME", ago_s=3600),  # raised before the subscriptions existed
        ]
        everything = [a1, a2, a3, b1, *misses]
        bad_before = worker.metric("tonewatch_webhook_bad_records_total")
        produce(worker, everything, garbage=[b"{not json", b'{"kind": "made_up"}'])
        produce(worker, everything)  # every alert published twice
        wait_fanned_out(worker)

        assert {d["event_id"] for d in settled(mine, s_wide, 3)} == {
            event_id(a.dedup_key) for a in (a1, a2, a3)
        }
        assert [d["event_id"] for d in settled(mine, s_narrow, 1)] == [event_id(a3.dedup_key)]
        assert [d["event_id"] for d in settled(theirs, s_theirs, 1)] == [event_id(b1.dedup_key)]
        assert deliveries(mine, s_sse) == []
        for sub, client in ((s_wide, mine), (s_narrow, mine), (s_theirs, theirs)):
            states = {(d["status"], d["attempts"], d["last_status_code"])
                      for d in deliveries(client, sub)}  # fmt: skip
            assert states == {("delivered", 1, 200)}

    assert sorted(wide.ids()) == sorted(event_id(a.dedup_key) for a in (a1, a2, a3))
    assert narrow.ids() == [event_id(a3.dedup_key)]
    assert theirs_rx.ids() == [event_id(b1.dedup_key)]
    # One event id per alert, whichever subscription carries it.
    assert wide.event(a3.dedup_key).payload == narrow.event(a3.dedup_key).payload
    for received, sent in ((wide.event(a.dedup_key), a) for a in (a1, a2, a3)):
        assert received.payload["type"] == "alert.created"
        assert received.payload["id"] == received.id
        assert Alert.model_validate(received.payload["data"]) == sent
        assert received.headers["content-type"] == "application/json"
    dup_webhooks = wide.store.duplicates + narrow.store.duplicates + theirs_rx.store.duplicates
    print(f"dup_webhooks={dup_webhooks}")  # reported (RELIABILITY ledger); receivers drop them
    assert worker.metric("tonewatch_webhook_deliveries_total", outcome="delivered") >= 5
    assert worker.metric("tonewatch_webhook_bad_records_total") - bad_before == 2


def reference_sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


@pytest.mark.reliability("S1")
def test_replays_tampering_skew_and_secret_rotation(
    api: ApiServer, tenant: Tenant, receivers: ReceiverHub, worker: WebhookWorker
) -> None:
    receiver = receivers.add()
    with api.client(tenant["hooks"]) as client:
        sub = subscribe(client, receiver.url, entities=["ROT"])
        first_secret = sub["secret"]
        receiver.secrets.append(first_secret)
        r1 = alert(tenant.name, "ROT")
        produce(worker, [r1])
        eventually(receiver.ids, lambda ids: len(ids) == 1)
        got = receiver.event(r1.dedup_key)
        assert len(got.headers["webhook-signature"].split()) == 1

        # S1: a captured delivery replayed is answered, not processed again.
        sent = {k: got.headers[k] for k in ("webhook-id", "webhook-timestamp",
                                            "webhook-signature", "content-type")}  # fmt: skip
        replay = httpx.post(receiver.url, content=got.body, headers=sent)
        assert (replay.status_code, replay.json()["duplicate"]) == (200, True)
        assert receiver.ids() == [event_id(r1.dedup_key)]
        # A tampered body, or a changed timestamp, does not verify.
        tampered = got.body.replace(b'"severity":"high"', b'"severity":"low"')
        assert tampered != got.body
        assert httpx.post(receiver.url, content=tampered, headers=sent).status_code == 401
        bumped = sent | {"webhook-timestamp": str(int(sent["webhook-timestamp"]) + 1)}
        assert httpx.post(receiver.url, content=got.body, headers=bumped).status_code == 401
        # Correctly signed but stale or from the future (clock skew past the tolerance).
        for skew in (-3600, -301, 3600):
            ts = int(time.time()) + skew
            forged = sent | {
                "webhook-id": "evt_forged",
                "webhook-timestamp": str(ts),
                "webhook-signature": reference_sign(first_secret, "evt_forged", ts, got.body),
            }
            answer = httpx.post(receiver.url, content=got.body, headers=forged)
            assert answer.status_code == 401, (skew, answer.text)
        assert receiver.ids() == [event_id(r1.dedup_key)]

        # Rotation: the new secret is shown once; the old one keeps signing for the grace.
        rotated = client.post(f"/v1/subscriptions/{sub['id']}/rotate-secret")
        assert rotated.status_code == 200, rotated.text
        new_secret = rotated.json()["secret"]
        assert new_secret.startswith("whsec_")
        assert new_secret != first_secret
        until = datetime.fromisoformat(rotated.json()["previous_valid_until"])
        assert until > datetime.now(UTC) + timedelta(hours=23)  # the default grace, 1 day
        assert new_secret not in client.get(f"/v1/subscriptions/{sub['id']}").text

        r2 = alert(tenant.name, "ROT")  # the receiver still knows only the old secret
        produce(worker, [r2])
        eventually(receiver.ids, lambda ids: len(ids) == 2)
        both = receiver.event(r2.dedup_key)
        assert len(both.headers["webhook-signature"].split()) == 2
        now = int(both.headers["webhook-timestamp"])
        assert verify([new_secret], both.headers, both.body, now) == both.id
        assert verify([first_secret], both.headers, both.body, now) == both.id

        receiver.secrets[:] = [new_secret]  # the receiver moved on to the new secret
        calls = receiver.calls
        r3 = alert(tenant.name, "ROT")
        produce(worker, [r3])
        eventually(receiver.ids, lambda ids: len(ids) == 3)
        assert receiver.calls == calls + 1  # accepted at the first attempt
        states = [(d["status"], d["attempts"]) for d in settled(client, sub, 3)]
        assert states == [("delivered", 1)] * 3  # nothing lost across the rotation


def test_retries_dead_letters_redelivery_and_gone(
    api: ApiServer, tenant: Tenant, receivers: ReceiverHub, worker: WebhookWorker
) -> None:
    flaky, broken, gone = receivers.add(), receivers.add(), receivers.add()
    flaky.answers = [500]
    broken.answers = [500] * MAX_ATTEMPTS
    gone.answers = [410]
    with api.client(tenant["hooks"]) as client:
        subs = {}
        for name, receiver in (("FLAKY", flaky), ("BROKEN", broken), ("GONE", gone)):
            subs[name] = subscribe(client, receiver.url, entities=[name])
            receiver.secrets.append(subs[name]["secret"])
        produce(worker, [alert(tenant.name, name) for name in subs])

        (recovered,) = settled(client, subs["FLAKY"], 1)
        assert (recovered["status"], recovered["attempts"]) == ("delivered", 2)
        assert len(flaky.ids()) == 1

        (dead,) = settled(client, subs["BROKEN"], 1)
        assert (dead["status"], dead["attempts"], dead["last_status_code"]) == (
            "dead", MAX_ATTEMPTS, 500
        )  # fmt: skip
        assert "500" in dead["last_error"]
        assert [d["id"] for d in deliveries(client, subs["BROKEN"], "dead")] == [dead["id"]]
        assert deliveries(client, subs["BROKEN"], "delivered") == []
        assert broken.calls == MAX_ATTEMPTS
        assert broken.ids() == []
        retry = f"/v1/subscriptions/{subs['BROKEN']['id']}/deliveries/{dead['id']}/retry"
        requeued = client.post(retry)  # the receiver works again now
        assert requeued.status_code == 200, requeued.text
        assert (requeued.json()["status"], requeued.json()["attempts"]) == ("pending", 0)
        (redelivered,) = settled(client, subs["BROKEN"], 1)
        assert redelivered["status"] == "delivered"
        assert len(broken.ids()) == 1
        assert client.post(retry).status_code == 409  # delivered: nothing to retry
        assert client.post(retry.replace(str(dead["id"]), "999999999")).status_code == 404

        (went,) = settled(client, subs["GONE"], 1)
        assert (went["status"], went["last_status_code"]) == ("gone", 410)
        path = f"/v1/subscriptions/{subs['GONE']['id']}"
        disabled = client.get(path).json()
        assert disabled["enabled"] is False
        assert disabled["disabled_reason"] == "receiver answered 410 Gone"
        enabled = client.patch(path, json={"enabled": True}).json()
        assert (enabled["enabled"], enabled["disabled_reason"]) == (True, None)
        assert client.post(f"{path}/deliveries/{went['id']}/retry").status_code == 200
        (back,) = settled(client, subs["GONE"], 1)
        assert back["status"] == "delivered"
        assert len(gone.ids()) == 1
    assert worker.metric("tonewatch_webhook_deliveries_total", outcome="dead") >= 1
    assert worker.metric("tonewatch_webhook_deliveries_total", outcome="gone") >= 1


@pytest.mark.reliability("S2")
def test_internal_targets_never_get_a_connection(
    api: ApiServer,
    tenant: Tenant,
    receivers: ReceiverHub,
    worker: WebhookWorker,
    canary: Canary,
    receiver_port: int,
) -> None:
    c = canary.port
    inside = [
        f"http://127.0.0.1:{c}/", f"http://localhost:{c}/", f"http://LOCALHOST:{c}/",
        f"http://[::1]:{c}/", f"http://[::ffff:127.0.0.1]:{c}/", f"http://2130706433:{c}/",
        f"http://0x7f000001:{c}/", f"http://127.1:{c}/", f"http://0.0.0.0:{c}/",
        "http://10.0.0.1/", "http://192.168.0.1/", "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd", f"gopher://127.0.0.1:{c}/", f"ftp://127.0.0.1:{c}/",
        f"http://user@127.0.0.1:{receiver_port}/", f"http://x:y@127.0.0.1:{c}/",
        f"http://localhost:{receiver_port}/",  # the allowed port, under another name
        f"http://127.0.0.1:{c}@127.0.0.1:{receiver_port}/",
    ]  # fmt: skip
    redirect, rebinding = receivers.add(), receivers.add()
    redirect.answers = [(302, {"location": f"http://127.0.0.1:{c}/"})] * MAX_ATTEMPTS
    with api.client(tenant["hooks"]) as client:
        for url in inside:
            refused = client.post(
                "/v1/subscriptions", json={"name": "x", "channel": "webhook", "url": url}
            )
            assert refused.status_code == 422, (url, refused.text)
            assert refused.json()["detail"].startswith("webhook url refused: "), url
        ok = subscribe(client, redirect.url, entities=["REDIRECT"])
        redirect.secrets.append(ok["secret"])
        moved = client.patch(f"/v1/subscriptions/{ok['id']}", json={"url": inside[0]})
        assert moved.status_code == 422
        assert "loopback" in moved.text

        # A 3xx is a failed attempt, never followed: retried, then dead.
        # A target that turns internal after registration (what DNS rebinding does) is
        # refused by the check before each attempt, without connecting.
        turned = subscribe(client, rebinding.url, entities=["REBIND"])
        asyncio.run(_point(worker.settings, tenant.name, turned["id"], inside[0]))
        produce(worker, [alert(tenant.name, "REDIRECT"), alert(tenant.name, "REBIND")])

        (followed,) = settled(client, ok, 1)
        assert (followed["status"], followed["attempts"], followed["last_status_code"]) == (
            "dead", MAX_ATTEMPTS, 302
        )  # fmt: skip
        assert redirect.calls == MAX_ATTEMPTS
        (refused_at_delivery,) = settled(client, turned, 1)
        assert refused_at_delivery["status"] == "dead"
        assert refused_at_delivery["attempts"] == 0
        assert "target refused" in refused_at_delivery["last_error"]
        assert "loopback" in refused_at_delivery["last_error"]
    assert rebinding.calls == 0
    assert worker.metric("tonewatch_webhook_deliveries_total", outcome="refused") >= 1
    assert canary.connections == 0, f"{canary.connections} connections reached the canary"


async def _point(settings: Settings, tenant: str, subscription_id: str, url: str) -> None:
    """Change a stored URL behind the API's back: the target turned internal."""
    engine = create_engine(settings)
    try:
        changed = await subscriptions.update(engine, tenant, subscription_id, {"url": url})
        assert changed is not None
    finally:
        await engine.dispose()


@pytest.mark.reliability("S2")
async def test_post_connects_to_the_checked_address_with_the_original_host(
    receivers: ReceiverHub, receiver_port: int
) -> None:
    """No second DNS lookup: the name does not even resolve, the checked address is used,
    and the receiver sees the URL's own Host."""
    receiver = receivers.add(["whsec_" + base64.b64encode(b"k" * 24).decode()])
    path = receiver.url.split(str(receiver_port), 1)[1]
    target = ResolvedTarget(httpx.URL(f"http://hooks.invalid:{receiver_port}{path}"), "127.0.0.1")
    body = b'{"type":"alert.created"}'
    signed = headers(receiver.secrets, "evt_pinned", int(time.time()), body)
    async with httpx.AsyncClient(trust_env=False) as client:
        outcome = await post(client, target, signed, body, timeout_s=5)
    assert (outcome.status_code, outcome.delivered, outcome.error) == (200, True, None)
    assert receiver.ids() == ["evt_pinned"]
    assert receiver.store.events[0].headers["host"] == f"hooks.invalid:{receiver_port}"


def test_receive_command_serves_the_reference_receiver(tmp_path: Path) -> None:
    """`tonewatch webhooks receive`: what a user runs to try deliveries out."""
    secret = "whsec_" + base64.b64encode(b"s" * 24).decode()
    port = free_port()
    with (tmp_path / "receive.log").open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "tonewatch"), "webhooks", "receive",
             "--port", str(port), "--secret", secret],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"

        def events() -> list[Any] | None:
            assert process.poll() is None, (tmp_path / "receive.log").read_text()
            try:
                return list(httpx.get(f"{url}/events", timeout=1).json())
            except httpx.TransportError:
                return None

        assert eventually(events, lambda e: e is not None, timeout_s=30) == []
        body = b'{"type":"alert.created"}'
        signed = headers([secret], "evt_cli", int(time.time()), body)
        assert httpx.post(f"{url}/webhook", content=body, headers=signed).json() == {
            "id": "evt_cli", "duplicate": False
        }  # fmt: skip
        forged = headers(
            ["whsec_" + base64.b64encode(b"x" * 24).decode()], "evt_2", int(time.time()), body
        )
        assert httpx.post(f"{url}/webhook", content=body, headers=forged).status_code == 401
        assert [e["id"] for e in httpx.get(f"{url}/events").json()] == ["evt_cli"]
    finally:
        process.terminate()
        process.wait(10)
