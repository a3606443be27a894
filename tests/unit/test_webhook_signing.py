"""Webhook signing (streams/webhooks.py) and the reference receiver's verify
(tonewatch/webhook_receiver.py) against Standard Webhooks, computed independently here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

import httpx
import pytest

from streams.webhooks import WebhookEvent, event_id, headers, new_secret, sign
from tonewatch.contracts import Alert
from tonewatch.webhook_receiver import TestResponse, VerificationError, create_receiver, verify

pytestmark = pytest.mark.unit

# The test vector published with the Standard Webhooks reference implementations.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
NOW = 1_800_000_000


def reference_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks algorithm as its specification states it."""
    key = base64.b64decode(secret.split("_", 1)[1])
    content = f"{msg_id}.{timestamp}.{body.decode()}".encode()
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def test_sign_reproduces_the_published_vector() -> None:
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIGNATURE
    assert reference_signature(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == (
        VECTOR_SIGNATURE
    )


def test_sign_matches_the_reference_algorithm_for_fresh_secrets() -> None:
    body = json.dumps({"type": "alert.created", "text": "Überraschung ✓"}).encode()
    for _ in range(5):
        secret = new_secret()
        assert sign(secret, "evt_1", NOW, body) == reference_signature(secret, "evt_1", NOW, body)


def test_new_secrets_are_whsec_and_24_random_bytes() -> None:
    made = {new_secret() for _ in range(50)}
    assert len(made) == 50
    for secret in made:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 24


def test_headers_carry_one_signature_per_secret() -> None:
    old, new = new_secret(), new_secret()
    sent = headers([new, old], "evt_x", NOW, b"{}")
    assert sent["webhook-id"] == "evt_x"
    assert sent["webhook-timestamp"] == str(NOW)
    assert sent["content-type"] == "application/json"
    assert sent["webhook-signature"].split(" ") == [
        reference_signature(new, "evt_x", NOW, b"{}"),
        reference_signature(old, "evt_x", NOW, b"{}"),
    ]


def test_verify_accepts_the_vector_and_our_own_deliveries() -> None:
    vector = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TS),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    assert verify([VECTOR_SECRET], vector, VECTOR_BODY, VECTOR_TS + 10) == VECTOR_ID
    secret = new_secret()
    body = b'{"a":1}'
    assert verify([secret], headers([secret], "evt_1", NOW, body), body, NOW) == "evt_1"


@pytest.mark.parametrize(
    "change",
    ["body", "id", "timestamp", "signature"],
)
def test_verify_rejects_anything_tampered(change: str) -> None:
    secret = new_secret()
    body = b'{"severity":"low"}'
    sent = headers([secret], "evt_1", NOW, body)
    if change == "body":
        body = b'{"severity":"critical"}'
    elif change == "id":
        sent["webhook-id"] = "evt_2"
    elif change == "timestamp":
        sent["webhook-timestamp"] = str(NOW + 1)
    else:
        signature = bytearray(base64.b64decode(sent["webhook-signature"][3:]))
        signature[0] ^= 1
        sent["webhook-signature"] = "v1," + base64.b64encode(bytes(signature)).decode()
    with pytest.raises(VerificationError) as refused:
        verify([secret], sent, body, NOW)
    assert refused.value.status == 401


def test_verify_rejects_a_wrong_secret_and_malformed_headers() -> None:
    secret, other = new_secret(), new_secret()
    sent = headers([secret], "evt_1", NOW, b"{}")
    with pytest.raises(VerificationError, match="no valid signature"):
        verify([other], sent, b"{}", NOW)
    for missing in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        partial = {k: v for k, v in sent.items() if k != missing}
        with pytest.raises(VerificationError) as refused:
            verify([secret], partial, b"{}", NOW)
        assert refused.value.status == 400
    for garbage in ("v1,not base64!", "v2," + sent["webhook-signature"][3:], "nonsense"):
        with pytest.raises(VerificationError, match="no valid signature"):
            verify([secret], sent | {"webhook-signature": garbage}, b"{}", NOW)
    with pytest.raises(VerificationError) as refused:
        verify([secret], sent | {"webhook-timestamp": "17e8"}, b"{}", NOW)
    assert refused.value.status == 400


@pytest.mark.parametrize(
    ("skew_s", "accepted"),
    [(0, True), (299, True), (-299, True), (301, False), (-301, False), (86400, False)],
)
def test_verify_rejects_timestamps_outside_the_tolerance(skew_s: int, accepted: bool) -> None:
    secret = new_secret()
    sent = headers([secret], "evt_1", NOW + skew_s, b"{}")  # the sender's clock is off
    if accepted:
        assert verify([secret], sent, b"{}", NOW, tolerance_s=300) == "evt_1"
    else:
        with pytest.raises(VerificationError, match="from now") as refused:
            verify([secret], sent, b"{}", NOW, tolerance_s=300)
        assert refused.value.status == 401


def test_two_secrets_during_a_rotation() -> None:
    old, new, stranger = new_secret(), new_secret(), new_secret()
    body = b"{}"
    both = headers([new, old], "evt_1", NOW, body)
    assert verify([old], both, body, NOW) == "evt_1"  # receiver not yet updated
    assert verify([new], both, body, NOW) == "evt_1"  # receiver already updated
    assert verify([stranger, new], both, body, NOW) == "evt_1"
    only_new = headers([new], "evt_1", NOW, body)  # after the grace period
    with pytest.raises(VerificationError):
        verify([old], only_new, body, NOW)


def test_event_ids_are_per_alert_and_stable() -> None:
    assert event_id("t/news/acme/negative_spike/1") == event_id("t/news/acme/negative_spike/1")
    assert event_id("t/news/acme/negative_spike/1") != event_id("t/news/acme/negative_spike/2")
    assert event_id("k").startswith("evt_")
    assert len(event_id("k")) == 36


def test_an_alert_published_twice_is_the_same_event() -> None:
    fields = {
        "dedup_key": "t/news/acme/negative_spike/1", "tenant": "t", "kind": "negative_spike",
        "severity": "high", "source": "news", "entity": "acme",
        "window_start": datetime(2026, 1, 1, tzinfo=UTC),
        "window_end": datetime(2026, 1, 1, 0, 1, tzinfo=UTC), "figures": {"z": 4.0},
        "evidence": ["m1"], "summary": "s", "model_version": "1",
        "created_at": datetime(2026, 1, 1, 0, 1, 5, tzinfo=UTC),
    }  # fmt: skip
    first = WebhookEvent.of(Alert.model_validate(fields))
    again = WebhookEvent.of(Alert.model_validate(fields))
    assert first == again
    assert first.model_dump(mode="json")["type"] == "alert.created"
    assert first.id == event_id(fields["dedup_key"])  # type: ignore[arg-type]


async def test_receiver_answers_and_dedups_by_id() -> None:
    secret = new_secret()
    receiver = create_receiver([secret])
    body = b'{"type":"alert.created"}'
    transport = httpx.ASGITransport(app=receiver)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        sent = headers([secret], "evt_1", int(time.time()), body)
        first = await client.post("/webhook", content=body, headers=sent)
        assert first.json() == {"id": "evt_1", "duplicate": False}
        replay = await client.post("/webhook", content=body, headers=sent)
        assert replay.status_code == 200
        assert replay.json() == {"id": "evt_1", "duplicate": True}
        tampered = await client.post("/webhook", content=b'{"x":1}', headers=sent)
        assert tampered.status_code == 401
        assert [e["id"] for e in (await client.get("/events")).json()] == ["evt_1"]


async def test_receiver_test_hook_answers_without_accepting() -> None:
    secret = new_secret()
    planned: list[TestResponse] = [500, (302, {"location": "http://elsewhere/"}), 200]
    answers = iter(planned)
    receiver = create_receiver([secret], respond_with=lambda: next(answers))
    transport = httpx.ASGITransport(app=receiver)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        sent = headers([secret], "evt_1", int(time.time()), b"{}")
        assert (await client.post("/webhook", content=b"{}", headers=sent)).status_code == 500
        moved = await client.post("/webhook", content=b"{}", headers=sent)
        assert (moved.status_code, moved.headers["location"]) == (302, "http://elsewhere/")
        assert (await client.get("/events")).json() == []
        assert (await client.post("/webhook", content=b"{}", headers=sent)).json() == {
            "id": "evt_1", "duplicate": False
        }  # fmt: skip
