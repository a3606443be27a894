"""A token bucket per API key in Redis, so that every API process shares one budget.

One Lua call refills the bucket by the time passed (Redis' own clock) and takes a token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from storage.exceptions import CacheUnavailable

# KEYS: bucket. ARGV: rate per second, burst. Returns {allowed (0/1), seconds until a token}.
_TAKE: Final = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1e6
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]) or burst, tonumber(state[2]) or t
tokens = math.min(burst, tokens + math.max(0, t - at) * rate)
local allowed, wait = 0, (1 - tokens) / rate
if tokens >= 1 then
  tokens, allowed, wait = tokens - 1, 1, 0
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', t)
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return {allowed, tostring(wait)}
"""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after_s: int  # whole seconds, as the Retry-After header wants


class RateLimiter:
    def __init__(self, client: Redis, rate_per_s: float, burst: int) -> None:
        self.rate_per_s, self.burst = rate_per_s, burst
        self._take = client.register_script(_TAKE)

    async def take(self, key_id: str) -> Verdict:
        """Spend one request of the key's budget. Raises CacheUnavailable when Redis is down."""
        try:
            allowed, wait = await self._take(
                keys=[f"tw:ratelimit:{key_id}"], args=[self.rate_per_s, self.burst]
            )
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
            raise CacheUnavailable(f"Redis unavailable: {exc}") from exc
        return Verdict(
            bool(int(allowed)), max(1, math.ceil(float(wait))) if not int(allowed) else 0
        )
