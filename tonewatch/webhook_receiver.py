"""A reference webhook receiver for tonewatch: copy this file to receive alerts safely.

It needs only the standard library and FastAPI. What it does, and why:

- **Verifies the signature** (Standard Webhooks): HMAC-SHA256 of `"{webhook-id}.{webhook-
  timestamp}.{raw body}"` keyed with the base64 part of your `whsec_` secret, compared in
  constant time. The header may carry several `v1,<sig>` entries (tonewatch signs with the
  old and the new secret while a rotated secret is in its grace period) and the receiver
  may know several secrets (configure the new one as soon as you rotate): any match is
  enough. A changed body, id or timestamp fails: 401.
- **Rejects stale or future timestamps** outside `tolerance_s` (default 5 minutes): a
  captured request cannot be replayed later, and badly skewed clocks show up as 401s.
- **Deduplicates on `webhook-id`.** tonewatch delivers at least once: after a timeout or a
  crash the same event may come again (re-signed with a fresh timestamp), and a request
  replayed inside the window verifies too. Either way the receiver answers 200 with
  `"duplicate": true` and does not process the event again. The in-memory store here keeps
  the last `max_ids` ids; a production receiver records ids in its own database, in the
  same transaction as the work the event causes.

Run it with `tonewatch webhooks receive --port 9000 --secret whsec_…`; accepted events are
listed by `GET /events`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300

# Test hook: what the receiver answers to a verified request instead of accepting it, e.g.
# 500 to exercise retries, or (302, {"location": ...}). Returning a 2xx accepts normally.
TestResponse = int | tuple[int, dict[str, str]]


class VerificationError(Exception):
    """A request that is not a valid delivery; `status` is the HTTP answer (400 or 401)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def expected_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> bytes:
    """The raw HMAC-SHA256 a sender holding `secret` puts in `v1,<base64>`."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def verify(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> str:
    """Check a delivery's headers and raw body; returns its event id or raises
    VerificationError. `headers` must be case-insensitive or use lower-case names."""
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not msg_id or not timestamp or not signatures:
        raise VerificationError(400, "missing webhook-id, webhook-timestamp or webhook-signature")
    if not timestamp.isdigit():
        raise VerificationError(400, "webhook-timestamp is not a Unix time in seconds")
    if abs(now - int(timestamp)) > tolerance_s:
        raise VerificationError(401, f"webhook-timestamp is more than {tolerance_s}s from now")
    presented = []
    for entry in signatures.split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue  # other schemes (e.g. v1a, asymmetric) are not ours
        try:
            presented.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    for secret in secrets:
        expected = expected_signature(secret, msg_id, timestamp, body)
        # Check every pair without stopping early: the time taken says nothing useful.
        matched = False
        for candidate in presented:
            matched |= hmac.compare_digest(expected, candidate)
        if matched:
            return msg_id
    raise VerificationError(401, "no valid signature")


@dataclass
class ReceivedEvent:
    """An accepted delivery: its id, parsed body, raw body and headers."""

    id: str
    payload: Any
    body: bytes
    headers: dict[str, str]
    received_at: float


@dataclass
class InMemoryEventStore:
    """Accepted events in arrival order, and the ids seen (the last `max_ids`)."""

    max_ids: int = 100_000
    events: list[ReceivedEvent] = field(default_factory=list)
    repeats: list[str] = field(default_factory=list)
    """Ids of deliveries of an event already accepted: dropped, answered 200."""
    _ids: OrderedDict[str, None] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def duplicates(self) -> int:
        return len(self.repeats)

    def is_duplicate(self, event_id: str) -> bool:
        """True (and kept in `repeats`) if an event with this id was accepted already."""
        with self._lock:
            if event_id in self._ids:
                self.repeats.append(event_id)
                return True
            return False

    def add(self, event: ReceivedEvent) -> None:
        with self._lock:
            self._ids[event.id] = None
            if len(self._ids) > self.max_ids:
                self._ids.popitem(last=False)
            self.events.append(event)

    def ids(self) -> list[str]:
        with self._lock:
            return [event.id for event in self.events]

    def deliveries(self) -> list[str]:
        """The id of every delivery, accepted or repeated."""
        with self._lock:
            return [*(event.id for event in self.events), *self.repeats]


def create_receiver(
    secrets: Sequence[str],
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    store: InMemoryEventStore | None = None,
    respond_with: Callable[[], TestResponse] | None = None,
    process: Callable[[ReceivedEvent], None] | None = None,
) -> FastAPI:
    """The receiver app: `POST /webhook` takes deliveries, `GET /events` lists accepted ones.

    `secrets` is read on every request, so a list you append to takes effect at once
    (add the new secret when you rotate, drop the old one after the grace period).
    `process` is your handler, called once per new event. `respond_with` is a test hook
    only (see TestResponse); leave it None in real use.
    """
    events = store if store is not None else InMemoryEventStore()
    app = FastAPI(title="tonewatch webhook receiver")

    @app.post("/webhook")
    async def receive(request: Request) -> Response:
        body = await request.body()
        try:
            msg_id = verify(secrets, request.headers, body, time.time(), tolerance_s)
        except VerificationError as exc:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status)
        if respond_with is not None:
            status, extra = _test_response(respond_with())
            if not 200 <= status < 300:
                return JSONResponse({"detail": "test hook"}, status_code=status, headers=extra)
        try:
            payload = json.loads(body)
        except ValueError:
            return JSONResponse({"detail": "body is not JSON"}, status_code=400)
        if events.is_duplicate(msg_id):
            return JSONResponse({"id": msg_id, "duplicate": True})
        event = ReceivedEvent(msg_id, payload, body, dict(request.headers), time.time())
        if process is not None:
            process(event)  # if it raises, the id is not recorded and the sender retries
        events.add(event)
        return JSONResponse({"id": msg_id, "duplicate": False})

    @app.get("/events")
    async def listed() -> list[dict[str, Any]]:
        return [
            {"id": e.id, "payload": e.payload, "received_at": e.received_at}
            for e in list(events.events)
        ]

    return app


def _test_response(answer: TestResponse) -> tuple[int, dict[str, str]]:
    return answer if isinstance(answer, tuple) else (answer, {})
