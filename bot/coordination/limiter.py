"""The outgoing Telegram limiter shared by replicas of one bot, in Redis.

The same lanes and rules as `bot.limits_out.LocalLimiter` (read its docstring): the overall lane,
one lane per chat at the private or the group rate, a slot held until the answer arrives and a
window counted from the answer, a 429 pausing a chat (or everything). Each lane is a sorted set:
calls in flight scored with a deadline far ahead (so a replica that dies mid-call frees its slot
once that passes), answered calls scored with when their answer came. One script checks a lane
and takes a slot atomically, on Redis's clock, the one clock every replica shares.

Within a process, callers queue for a lane first come, first served, and only the head of the
queue asks Redis: it sleeps until the slot the script says opens next, or, when only calls in
flight stand in the way, retries after a few milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot import metrics
from bot.coordination.locks import LocalLocks
from bot.limits_out import ChatId, Cost, Rate, Rates, chat_key, is_private

log = logging.getLogger(__name__)

FLIGHT = 120.0  # seconds a call may stay unanswered before its slot counts as free

# KEYS[1]: the lane; KEYS[2..]: pauses it obeys. ARGV: count, window ms, token, flight ms.
# Answers 0 when the slot is taken, else milliseconds until one may open (-1: when a call in
# flight ends).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 2, #KEYS do
  local paused = tonumber(redis.call('GET', KEYS[i]) or '0')
  if paused > now then return paused - now end
end
local count, per, flight = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - per)
local over = redis.call('ZCARD', KEYS[1]) - count
if over < 0 then
  redis.call('ZADD', KEYS[1], now + flight, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], per + flight)
  return 0
end
local oldest = tonumber(redis.call('ZRANGE', KEYS[1], over, over, 'WITHSCORES')[2])
if oldest <= now then return oldest + per - now end
return -1
"""
# KEYS: lanes whose slot ends. ARGV: token, 1 when answered (the window starts now), else 0.
_END = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #KEYS do
  if ARGV[2] == '1' then
    redis.call('ZADD', KEYS[i], 'XX', now, ARGV[1])
  else
    redis.call('ZREM', KEYS[i], ARGV[1])
  end
end
return 0
"""
# KEYS[1]: a pause. ARGV[1]: milliseconds from now; a pause is only ever extended.
PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ms = tonumber(ARGV[1])
local until_ = now + ms
if until_ > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], until_, 'PX', ms)
end
return 0
"""


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class RedisLimiter:
    def __init__(
        self, redis: Redis, prefix: str, rates: Rates | None = None, *, flight: float = FLIGHT
    ) -> None:
        self.rates = rates or Rates()
        self._prefix = f"{prefix}:tg"
        self._flight_ms = _ms(flight)
        self._queues = LocalLocks()
        self._take_script = redis.register_script(_TAKE)
        self._end_script = redis.register_script(_END)
        self._pause_script = redis.register_script(PAUSE)

    def slot(self, chat_id: ChatId | None, cost: Cost) -> AbstractAsyncContextManager[None]:
        return self._slot(None if chat_id is None else chat_key(chat_id), cost)

    def _lane(self, chat: ChatId | None) -> str:
        return f"{self._prefix}:lane:{'*' if chat is None else chat}"

    def _pause(self, chat: ChatId | None) -> str:
        return f"{self._prefix}:pause:{'*' if chat is None else chat}"

    @asynccontextmanager
    async def _slot(self, chat: ChatId | None, cost: Cost) -> AsyncIterator[None]:
        if cost is Cost.FREE:
            yield
            return
        token = secrets.token_hex(8)
        started = time.monotonic()
        held: list[str] = []
        overall_obeys = [self._pause(None)]
        try:
            if chat is not None:
                if cost is Cost.CHAT:
                    rate = self.rates.private if is_private(chat) else self.rates.group
                    await self._take(self._lane(chat), rate, [self._pause(chat)], token)
                    held.append(self._lane(chat))
                else:  # administration: the chat's pause holds it, its message lane does not
                    overall_obeys.append(self._pause(chat))
            await self._take(self._lane(None), self.rates.total, overall_obeys, token)
            held.append(self._lane(None))
        except BaseException:
            if held:
                await self._end(held, token, answered=False)
            raise
        metrics.LIMITER_WAITS.labels(cost.value).observe(time.monotonic() - started)
        try:
            yield
        finally:
            await self._end(held, token, answered=True)

    async def _end(self, lanes: list[str], token: str, *, answered: bool) -> None:
        try:
            await self._end_script(keys=lanes, args=[token, 1 if answered else 0])
        except RedisError as exc:
            # The call itself went (or failed) on its own; its slot frees when its flight ends.
            log.warning("ending a limiter slot failed: %s", type(exc).__name__)

    async def _take(self, lane: str, rate: Rate, pauses: list[str], token: str) -> None:
        async with self._queues.hold(lane):
            retry = 0.002
            while True:
                wait = int(
                    await self._take_script(
                        keys=[lane, *pauses],
                        args=[rate.count, _ms(rate.per), token, self._flight_ms],
                    )
                )
                if wait == 0:
                    return
                if wait > 0:
                    await asyncio.sleep(wait / 1000)
                else:  # a call in flight has to end first; its answer is a round trip away
                    await asyncio.sleep(retry)
                    retry = min(retry * 2, 0.05)

    async def penalise(self, chat_id: ChatId | None, seconds: float) -> None:
        metrics.TELEGRAM_429.labels(metrics.scope_of(chat_id)).inc()
        if seconds > 0:
            chat = None if chat_id is None else chat_key(chat_id)
            await self._pause_script(keys=[self._pause(chat)], args=[_ms(seconds)])
