"""What the storage tests share: sample contracts and a fresh tenant per test."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tonewatch.contracts import Alert, InputMessage, Origin, ScoredMessage

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CLOSED_PORT_DATABASE = "postgresql+psycopg://tonewatch:tonewatch@127.0.0.1:1/tonewatch"
CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"


def new_tenant() -> str:
    """A tenant of the test's own: tests never see each other's rows or keys."""
    return f"t-{uuid.uuid4().hex[:12]}"


def scored(
    tenant: str,
    message_id: str,
    *,
    offset: int = 0,
    model_version: str = "1",
    scored_at: datetime = T0,
    **message: Any,
) -> ScoredMessage:
    """A scored news message (pass chat fields and source="chats" for a chat turn)."""
    fields: dict[str, Any] = {
        "id": message_id,
        "source": "news",
        "text": f"Acme recalls its kettles ({message_id})",
        "tenant": tenant,
        "entity": "acme",
        "ts": T0,
    } | message
    return ScoredMessage(
        message=InputMessage.model_validate(fields),
        origin=Origin(topic=fields["source"], partition=1, offset=offset),
        sentiment="negative",
        scores={"negative": 0.7, "neutral": 0.2, "positive": 0.1},
        risks={"product_safety": 0.91, "fraud": 0.01},
        model_version=model_version,
        scored_at=scored_at,
    )


def alert(tenant: str, n: int, **fields: Any) -> Alert:
    """The n-th sample alert of a tenant, created n minutes after T0."""
    values: dict[str, Any] = {
        "dedup_key": f"{tenant}:negative_spike:news:acme:{n}",
        "tenant": tenant,
        "kind": "negative_spike",
        "severity": "high",
        "source": "news",
        "entity": "acme",
        "window_start": T0 + timedelta(minutes=n),
        "window_end": T0 + timedelta(minutes=n + 1),
        "figures": {"negative_share": 0.8, "z": 4.2},
        "evidence": [f"m{n}-a", f"m{n}-b"],
        "summary": f"Negative spike on acme (#{n})",
        "model_version": "1",
        "created_at": T0 + timedelta(minutes=n),
    } | fields
    return Alert.model_validate(values)
