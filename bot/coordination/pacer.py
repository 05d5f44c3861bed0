"""The Clerk pacer shared by replicas of one bot, in Redis (see `bot.auth.clerk.pace`).

Clerk limits its Frontend API per IP and its Backend API per instance: replicas together must
stay under one limit. Each lane keeps its reserved send times in a sorted set, and one script
reserves the next send time exactly as `InMemoryPacer` does, on Redis's clock; a 429 closes a
lane with a key that expires when the block ends.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping

from redis.asyncio import Redis

from bot.auth.base import WaitNotifier
from bot.auth.clerk.pace import PaceLimit
from bot.coordination.limiter import PAUSE

# KEYS[1]: the lane's send times; KEYS[2]: its block. ARGV: calls (0: not paced), window ms
# (with the margin), token. Answers {ms to wait, the reserved time}.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local at = math.max(now, tonumber(redis.call('GET', KEYS[2]) or '0'))
local calls, span = tonumber(ARGV[1]), tonumber(ARGV[2])
if calls > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - span)
  local n = redis.call('ZCARD', KEYS[1])
  if n > 0 then
    -- Slots only go to the end, so every window keeps its count after one is given back.
    at = math.max(at, tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]))
    if n >= calls then
      local s = redis.call('ZRANGE', KEYS[1], n - calls, n - calls, 'WITHSCORES')
      at = math.max(at, tonumber(s[2]) + span)
    end
  end
  redis.call('ZADD', KEYS[1], at, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], at - now + span)
end
return {at - now, at}
"""


class RedisPacer:
    """`margin` and `notify_min_wait` as in `InMemoryPacer`."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        limits: Mapping[str, PaceLimit],
        *,
        margin: float = 0.5,
        notify_min_wait: float = 1.0,
    ) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:clerk"
        self._limits = dict(limits)
        self._margin = margin
        self._notify_min_wait = notify_min_wait
        self._reserve = redis.register_script(_RESERVE)
        self._block = redis.register_script(PAUSE)

    def _keys(self, lane: str, key: str) -> tuple[str, str]:
        name = f"{lane}:{key}" if key else lane
        return f"{self._prefix}:slots:{name}", f"{self._prefix}:block:{name}"

    async def acquire(self, lane: str, key: str = "", notify: WaitNotifier | None = None) -> float:
        slots, block = self._keys(lane, key)
        limit = self._limits.get(lane)
        calls = limit.calls if limit else 0
        span = round(((limit.window if limit else 0.0) + self._margin) * 1000)
        waited = 0.0
        while True:
            token = secrets.token_hex(8)
            wait_ms, at = await self._reserve(keys=[slots, block], args=[calls, span, token])
            wait = int(wait_ms) / 1000
            if wait <= 0:
                return waited
            if notify is not None and wait >= self._notify_min_wait:
                await notify(wait)
            try:
                await asyncio.sleep(wait)
            except BaseException:
                await self._redis.zrem(slots, token)
                raise
            waited += wait
            if int(await self._redis.get(block) or 0) <= int(at):
                return waited
            # A 429 closed the lane while we slept: our slot now falls inside the block.
            await self._redis.zrem(slots, token)

    async def penalise(self, lane: str, retry_after: float, key: str = "") -> None:
        if retry_after > 0:
            _, block = self._keys(lane, key)
            await self._block(keys=[block], args=[round(retry_after * 1000)])
