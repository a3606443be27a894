"""Alert history (cursor pages), the live feed (server-sent events) and entity timelines.

The live feed is read from Postgres, the record, in row-id order; Redis pub/sub only wakes
it up (at most once, so never trusted to carry the alerts). Each event's id is the alert's
row id: a client that reconnects with Last-Event-ID gets every alert recorded since, with
no gap. Without Redis the stream still works, polling once a second.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from storage import alerts as alert_store
from storage import subscriptions as subscription_store
from storage import timeline as timeline_store
from storage.alerts import AlertFilter, Position
from storage.cache import live_channel
from storage.exceptions import DatabaseUnavailable
from tonewatch.api.auth import Reader
from tonewatch.api.state import api_state
from tonewatch.contracts import Alert, AlertKind, Severity, Source

router = APIRouter(prefix="/v1", tags=["alerts"])

POLL_S: Final = 1.0
KEEPALIVE_S: Final = 15.0
# Row ids are taken at insert but become visible at commit: a slow writer can commit a
# lower id after a higher one was streamed. Live polls look back this far for such rows.
LOOKBACK_IDS: Final = 200
MAX_BUCKETS: Final = 2000

Wait = Callable[[], Awaitable[None]]


class AlertPage(BaseModel):
    items: list[Alert]
    next_cursor: str | None


class TimelineBucket(BaseModel):
    start: datetime
    volume: int
    negative: int
    neutral: int
    positive: int
    net_sentiment: float


class Timeline(BaseModel):
    entity: str
    source: Source
    bucket_s: int
    since: datetime
    until: datetime
    buckets: list[TimelineBucket]
    alerts: list[Alert]


def _filter(
    source: Source | None = None,
    entity: Annotated[str | None, Query(max_length=200)] = None,
    kind: AlertKind | None = None,
    min_severity: Severity | None = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
) -> AlertFilter:
    """The filter query parameters that history and the live stream share."""
    return AlertFilter(source, entity, kind, min_severity, since, until)


Filter = Annotated[AlertFilter, Depends(_filter)]


def _encode_cursor(position: Position) -> str:
    raw = json.dumps([position[0].isoformat(), position[1]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> Position:
    try:
        created, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(created), int(row_id)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise HTTPException(422, "invalid cursor") from None


@router.get("/alerts")
async def history(
    caller: Reader,
    request: Request,
    where: Filter,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> AlertPage:
    """The tenant's alerts, newest first; pass `next_cursor` back as `cursor` for more."""
    before = _decode_cursor(cursor) if cursor else None
    rows = await alert_store.page(api_state(request).engine, caller.tenant, where, limit, before)
    next_cursor = _encode_cursor(rows[-1][0]) if len(rows) == limit else None
    return AlertPage(items=[alert for _, alert in rows], next_cursor=next_cursor)


@router.get(
    "/alerts/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    caller: Reader,
    request: Request,
    where: Filter,
    subscription: Annotated[str | None, Query(max_length=100)] = None,
    last_event_id: Annotated[str | None, Header(max_length=40)] = None,
) -> StreamingResponse:
    """Server-sent events: `event: alert`, `id: <row id>`, `data: <alert JSON>`.

    Without Last-Event-ID the stream starts at the newest alert; with it, it replays every
    alert after that id first. `subscription` applies that subscription's rule."""
    state = api_state(request)
    rule = None
    if subscription is not None:
        rule = await subscription_store.get(state.engine, caller.tenant, subscription)
        if rule is None:
            raise HTTPException(404, "no such subscription")
    if last_event_id is not None and not last_event_id.isdigit():
        raise HTTPException(422, "Last-Event-ID must be an event id from this stream")
    start = (
        int(last_event_id)
        if last_event_id is not None
        else await alert_store.last_id(state.engine, caller.tenant)
    )

    def wanted(alert: Alert) -> bool:
        return (rule is None or rule.matches(alert)) and where.keeps(alert)

    async def events() -> AsyncIterator[str]:
        cursor, sent = start, deque[int](maxlen=4 * LOOKBACK_IDS)
        yield f"retry: 2000\n: stream from id {cursor}\n\n"
        async with _wakeups(state.cache.client, live_channel(caller.tenant)) as wake:
            quiet_since = asyncio.get_running_loop().time()
            while True:
                # Never below the start: what came before was history, or already seen.
                low = max(start, cursor - LOOKBACK_IDS)
                try:
                    rows = await alert_store.after_id(state.engine, caller.tenant, low)
                except DatabaseUnavailable:
                    rows = []  # keep the connection; the next poll catches up
                for row_id, alert in rows:
                    if row_id in sent:
                        continue
                    sent.append(row_id)
                    cursor = max(cursor, row_id)
                    if wanted(alert):
                        quiet_since = asyncio.get_running_loop().time()
                        yield f"event: alert\nid: {row_id}\ndata: {alert.model_dump_json()}\n\n"
                now = asyncio.get_running_loop().time()
                if now - quiet_since >= KEEPALIVE_S:
                    quiet_since = now
                    yield ": keepalive\n\n"
                await wake()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@contextlib.asynccontextmanager
async def _wakeups(client: Redis, channel: str) -> AsyncIterator[Wait]:
    """A function that returns when the channel publishes or POLL_S passes, whichever is
    first; a plain sleep when Redis is down."""
    pubsub: PubSub | None = client.pubsub()
    try:
        await pubsub.subscribe(channel)  # type: ignore[union-attr]
    except (redis_errors.RedisError, OSError):
        pubsub = None

    async def wait() -> None:
        if pubsub is None:
            await asyncio.sleep(POLL_S)
            return
        try:
            # Drain what came in at once; any message means "look again".
            await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_S)
            while await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.0):
                pass
        except (redis_errors.RedisError, OSError):
            await asyncio.sleep(POLL_S)

    try:
        yield wait
    finally:
        if pubsub is not None:
            with contextlib.suppress(redis_errors.RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]


@router.get("/entities/{entity}/timeline")
async def timeline(
    entity: Annotated[str, Path(max_length=200)],
    caller: Reader,
    request: Request,
    source: Source,
    bucket_s: Annotated[int, Query(ge=10, le=86400)] = 300,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
) -> Timeline:
    """Volume and sentiment per bucket, and the entity's alerts in the range (for charts).
    Defaults: the 288 buckets up to now (a day of 5-minute buckets)."""
    until = until or datetime.now(UTC)
    since = since or until - timedelta(seconds=288 * bucket_s)
    if since >= until or (until - since).total_seconds() / bucket_s > MAX_BUCKETS:
        raise HTTPException(422, f"need since < until and at most {MAX_BUCKETS} buckets")
    engine = api_state(request).engine
    buckets, alerts = await asyncio.gather(
        timeline_store.buckets(engine, caller.tenant, source, entity, since, until, bucket_s),
        alert_store.page(engine, caller.tenant, AlertFilter(source=source, entity=entity), 500),
    )
    in_range = [a for _, a in alerts if since <= a.window_end and a.window_start < until]
    return Timeline(
        entity=entity, source=source, bucket_s=bucket_s, since=since, until=until,
        buckets=[TimelineBucket(**vars(b)) for b in buckets], alerts=in_range,
    )  # fmt: skip
