"""Recent alerts in Redis: per-tenant and per-entity lists, a live channel, cooldown marks.

Postgres is the record; Redis is a cache that can be rebuilt from it (`rebuild`).
Key layout (an alert without an entity uses an empty `{entity}`):

- `tw:{tenant}:alerts`: list of the tenant's recent alerts (JSON), newest first, capped.
- `tw:{tenant}:alerts:{source}:{entity}`: the same for one source's entity.
- `tw:{tenant}:live`: pub/sub channel, one JSON alert per new alert (at most once: a
  subscriber that reconnects catches up from the lists).
- `tw:{tenant}:cooldown:{source}:{entity}:{kind}`: the dedup key of the entity's latest
  alert of that kind, expiring after the cooldown.
- `tw:seen:{dedup_key}`: marks an alert as pushed, so that a copy is not pushed again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from storage.exceptions import CacheUnavailable
from tonewatch.contracts import Alert

if TYPE_CHECKING:
    from tonewatch.config import Settings

SEEN_TTL_S: Final = 3 * 24 * 3600
# A dead or stopped Redis must fail fast: Postgres carries on and the lists are rebuilt later.
SOCKET_TIMEOUT_S: Final = 1.0

# What "Redis is not usable now" looks like; other Redis errors are bugs and propagate.
_UNAVAILABLE: Final = (
    redis_errors.ConnectionError,  # includes BusyLoadingError
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    redis_errors.OutOfMemoryError,
    OSError,
)

# KEYS per alert: seen, tenant list, entity list, cooldown.
# ARGV: cap, cooldown seconds, seen TTL, then per alert: JSON, live channel, dedup key.
_PUSH: Final = """
local cap, cooldown, seen_ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local new = 0
for i = 0, #KEYS / 4 - 1 do
  local k, a = i * 4, 3 + i * 3
  if redis.call('SET', KEYS[k + 1], '1', 'NX', 'EX', seen_ttl) then
    for _, list in ipairs({KEYS[k + 2], KEYS[k + 3]}) do
      redis.call('LPUSH', list, ARGV[a + 1])
      redis.call('LTRIM', list, 0, cap - 1)
    end
    redis.call('PUBLISH', ARGV[a + 2], ARGV[a + 1])
    if cooldown > 0 then
      redis.call('SET', KEYS[k + 4], ARGV[a + 3], 'EX', cooldown)
    end
    new = new + 1
  end
end
return new
"""


def tenant_key(tenant: str) -> str:
    return f"tw:{tenant}:alerts"


def entity_key(tenant: str, source: str, entity: str | None) -> str:
    return f"tw:{tenant}:alerts:{source}:{entity or ''}"


def live_channel(tenant: str) -> str:
    return f"tw:{tenant}:live"


def cooldown_key(tenant: str, source: str, entity: str | None, kind: str) -> str:
    return f"tw:{tenant}:cooldown:{source}:{entity or ''}:{kind}"


def seen_key(dedup_key: str) -> str:
    return f"tw:seen:{dedup_key}"


class AlertCache:
    """The Redis side of alerts. Redis failures raise CacheUnavailable (except in `ping`)."""

    def __init__(
        self, client: Redis, *, recent_cap: int, cooldown_s: int, seen_ttl_s: int = SEEN_TTL_S
    ) -> None:
        self.client = client
        self.recent_cap = recent_cap
        self.cooldown_s = cooldown_s
        self.seen_ttl_s = seen_ttl_s
        self._push = client.register_script(_PUSH)

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertCache:
        """A cache on its own client, with short timeouts; `close` it when done."""
        client = Redis.from_url(
            settings.redis_url,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
            # One quick retry heals a pooled connection that a Redis restart closed.
            retry=Retry(NoBackoff(), 1),
        )
        return cls(
            client, recent_cap=settings.redis_recent_alerts, cooldown_s=settings.alert_cooldown_s
        )

    async def close(self) -> None:
        """Close the client and its connections."""
        await self.client.aclose()

    async def ping(self) -> bool:
        """Whether Redis answers now."""
        try:
            return bool(await self.client.ping())
        except (redis_errors.RedisError, OSError):
            return False

    async def run_id(self) -> str | None:
        """The Redis server's run id, which changes when it restarts (None when it is down)."""
        try:
            info = await self.client.info("server")
        except (redis_errors.RedisError, OSError):
            return None
        run_id = info.get("run_id")
        return str(run_id) if run_id else None

    async def push(self, alerts: Sequence[Alert]) -> int:
        """Add new alerts to the lists, publish them and start their cooldowns, atomically
        per batch; a copy of an alert already pushed is ignored. Returns how many were new."""
        if not alerts:
            return 0
        keys: list[str] = []
        args: list[str | int] = [self.recent_cap, self.cooldown_s, self.seen_ttl_s]
        # Oldest first, so that the newest ends up at the head of the lists.
        for alert in sorted(alerts, key=lambda a: a.created_at):
            keys += [
                seen_key(alert.dedup_key),
                tenant_key(alert.tenant),
                entity_key(alert.tenant, alert.source, alert.entity),
                cooldown_key(alert.tenant, alert.source, alert.entity, alert.kind),
            ]
            args += [alert.model_dump_json(), live_channel(alert.tenant), alert.dedup_key]
        async with _unavailable_as_error():
            return int(await self._push(keys=keys, args=args))

    async def recent(
        self,
        tenant: str,
        *,
        source: str | None = None,
        entity: str | None = None,
        limit: int | None = 100,
    ) -> list[Alert]:
        """The tenant's cached alerts, newest first. Given a source and an entity, that
        entity's list; given only one of them, the tenant's list filtered by it."""
        if source is not None and entity is not None:
            key, filtered = entity_key(tenant, source, entity), False
        else:
            key, filtered = tenant_key(tenant), source is not None or entity is not None
        stop = -1 if limit is None or filtered else limit - 1
        async with _unavailable_as_error():
            raw = await self.client.lrange(key, 0, stop)
        alerts = [Alert.model_validate_json(item) for item in raw]
        if filtered:
            alerts = [
                a
                for a in alerts
                if (source is None or a.source == source) and (entity is None or a.entity == entity)
            ]
        return alerts if limit is None else alerts[:limit]

    async def live(self, tenant: str) -> AsyncIterator[Alert]:
        """The tenant's new alerts as they are published (at most once: a subscriber that
        reconnects catches up from `recent`)."""
        async with _unavailable_as_error(), self.client.pubsub() as pubsub:
            await pubsub.subscribe(live_channel(tenant))
            while True:
                # A blocking read without the client's socket timeout: quiet is not an error.
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                if message is not None:
                    yield Alert.model_validate_json(message["data"])

    async def rebuild(self, tenant: str, alerts_newest_first: Sequence[Alert]) -> None:
        """Replace the tenant's list, and the lists of the entities among the alerts, with
        these alerts (e.g. the newest from Postgres), and mark them seen. Publishes nothing."""
        lists: dict[str, list[str]] = {tenant_key(tenant): []}
        for alert in alerts_newest_first:
            payload = alert.model_dump_json()
            lists[tenant_key(tenant)].append(payload)
            lists.setdefault(entity_key(tenant, alert.source, alert.entity), []).append(payload)
        async with _unavailable_as_error(), self.client.pipeline(transaction=True) as pipe:
            pipe.delete(*lists)
            for key, payloads in lists.items():
                if payloads := payloads[: self.recent_cap]:
                    pipe.rpush(key, *payloads)
            for alert in alerts_newest_first:
                pipe.set(seen_key(alert.dedup_key), "1", ex=self.seen_ttl_s)
            await pipe.execute()


@asynccontextmanager
async def _unavailable_as_error() -> AsyncIterator[None]:
    try:
        yield
    except _UNAVAILABLE as exc:
        raise CacheUnavailable(f"Redis unavailable: {exc}") from exc
