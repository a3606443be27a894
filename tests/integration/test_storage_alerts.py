"""storage.alerts and storage.deadletters against the real Postgres."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import alerts, deadletters
from storage.db import create_engine
from storage.exceptions import DatabaseUnavailable
from tests.integration.storage_fixtures import CLOSED_PORT_DATABASE, T0, alert, new_tenant
from tonewatch.config import Settings
from tonewatch.contracts import MAX_DEAD_LETTER_RAW_BYTES, DeadLetter, Origin

pytestmark = pytest.mark.integration


async def test_record_returns_only_new_alerts(engine: AsyncEngine) -> None:
    tenant = new_tenant()
    a, b, c, d = (alert(tenant, n) for n in range(4))
    assert await alerts.record(engine, [a, b]) == [a, b]
    assert await alerts.record(engine, [b, c]) == [c]
    assert await alerts.record(engine, [d, d, a]) == [d]
    assert await alerts.record(engine, []) == []
    # Workers racing on the same alerts (a rebalance): each alert is new exactly once.
    e = [alert(tenant, n) for n in range(10, 20)]
    results = await asyncio.gather(*(alerts.record(engine, e) for _ in range(4)))
    assert sorted(x.dedup_key for new in results for x in new) == sorted(x.dedup_key for x in e)

    assert await alerts.recent(engine, tenant, limit=None) == [*reversed(e), d, c, b, a]


async def test_recent_is_newest_first_and_filtered(engine: AsyncEngine) -> None:
    tenant = new_tenant()
    first = alert(tenant, 1)
    review = alert(tenant, 2, source="reviews", entity="kettle-9")
    chat = alert(tenant, 3, source="chats", entity="conv-1", kind="escalation")
    sourceless = alert(tenant, 4, kind="volume_spike", entity=None)
    # Same creation time: the one recorded later comes first.
    tie = alert(tenant, 5, created_at=sourceless.created_at)
    await alerts.record(engine, [first, review, chat, sourceless])
    await alerts.record(engine, [tie])

    assert await alerts.recent(engine, tenant) == [tie, sourceless, chat, review, first]
    assert await alerts.recent(engine, tenant, limit=2) == [tie, sourceless]
    assert await alerts.recent(engine, tenant, source="news") == [tie, sourceless, first]
    assert await alerts.recent(engine, tenant, entity="acme") == [tie, first]
    assert await alerts.recent(engine, tenant, source="chats", entity="conv-1") == [chat]
    assert await alerts.recent(engine, tenant, source="news", entity="conv-1") == []
    assert await alerts.recent(engine, new_tenant()) == []


async def test_tenants_since(engine: AsyncEngine) -> None:
    early, late = new_tenant(), new_tenant()
    now = datetime.now(UTC)
    await alerts.record(engine, [alert(early, 1, created_at=now - timedelta(hours=1))])
    await alerts.record(engine, [alert(late, 1, created_at=now)])

    since = await alerts.tenants_since(engine, now - timedelta(minutes=30))
    assert late in since
    assert early not in since
    assert {early, late} <= set(await alerts.tenants_since(engine, now - timedelta(hours=2)))


def _letter(topic: str, offset: int, raw: bytes | None, key: bytes | None = None) -> DeadLetter:
    return DeadLetter.of("invalid_json", "Expecting value", Origin(topic=topic, partition=2,
                         offset=offset), raw, key)  # fmt: skip


async def _stored_letters(engine: AsyncEngine, topic: str) -> list[DeadLetter]:
    return [x for x in await deadletters.recent(engine, limit=1000) if x.origin.topic == topic]


async def test_dead_letters_are_idempotent_and_keep_raw_bytes(engine: AsyncEngine) -> None:
    topic = f"selftest-{uuid.uuid4().hex[:8]}"
    invalid_utf8 = _letter(topic, 1, b"\xff\xfe{\x00\xc3(", key=b"\x00\xffkey")
    large = _letter(topic, 2, bytes(range(256)) * 400)  # 100 KiB: cut to 64 KiB
    empty = _letter(topic, 3, None)
    letters = [invalid_utf8, large, empty]

    assert await deadletters.record(engine, letters) == 3
    assert await deadletters.record(engine, letters) == 0
    assert await deadletters.record(engine, [invalid_utf8.model_copy(update={"reason": "x"})]) == 0

    stored = await _stored_letters(engine, topic)
    assert stored == [empty, large, invalid_utf8]  # newest first
    assert stored[2].raw == b"\xff\xfe{\x00\xc3("
    assert len(stored[1].raw) == MAX_DEAD_LETTER_RAW_BYTES
    assert stored[1].raw_size == 256 * 400


async def test_dead_letter_error_text_postgres_refuses_is_escaped(engine: AsyncEngine) -> None:
    topic = f"selftest-{uuid.uuid4().hex[:8]}"
    letter = DeadLetter.of(
        "processing_error", "ValueError: bad \x00 byte and \ud800 surrogate",
        Origin(topic=topic, partition=0, offset=0), b"{}", None,
    )  # fmt: skip
    assert await deadletters.record(engine, [letter]) == 1
    (stored,) = await _stored_letters(engine, topic)
    assert stored.error == "ValueError: bad \\x00 byte and \\ud800 surrogate"


async def test_unreachable_database_is_database_unavailable(settings: Settings) -> None:
    engine = create_engine(settings.model_copy(update={"database_url": CLOSED_PORT_DATABASE}))
    try:
        for call in (
            alerts.record(engine, [alert(new_tenant(), 1)]),
            alerts.recent(engine, "t"),
            alerts.tenants_since(engine, T0),
            deadletters.record(engine, [_letter("x", 1, b"")]),
            deadletters.recent(engine),
        ):
            with pytest.raises(DatabaseUnavailable):
                await call
    finally:
        await engine.dispose()
