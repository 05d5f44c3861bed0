"""The outgoing Telegram limiter shared by replicas of one bot, in Redis.

The same lanes and rules as `bot.limits_out.LocalLimiter` (read its docstring): the overall lane,
one lane per chat at the private or the group rate, a slot held until the answer arrives and a
window counted from the answer, a 429 pausing a chat (or everything). Each lane is a sorted set:
calls in flight scored with a lease's deadline, answered calls scored with when their answer
came. One script checks a lane and takes a slot atomically, on Redis's clock, the one clock every
replica shares.

A call in flight keeps its slot by renewing the lease, as a lock does (`bot.coordination.locks`):
one keeper per process renews every slot it holds at a third of the lease. A replica that dies
mid-call stops renewing, so its slot counts as answered once the lease ends, and the chat waits
that long for its next message rather than for however long a call might take.

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
from bot.coordination.locks import LEASE, LocalLocks
from bot.limits_out import ChatId, Cost, Rate, Rates, chat_key, is_private

log = logging.getLogger(__name__)

# KEYS[1]: the lane; KEYS[2..]: pauses it obeys. ARGV: count, window ms, token, lease ms.
# Answers 0 when the slot is taken, else milliseconds until one may open (-1: when a call in
# flight ends).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 2, #KEYS do
  local paused = tonumber(redis.call('GET', KEYS[i]) or '0')
  if paused > now then return paused - now end
end
local count, per, lease = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - per)
local over = redis.call('ZCARD', KEYS[1]) - count
if over < 0 then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], per + lease)
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
# KEYS: lanes with a slot in flight. ARGV[1]: lease ms; then, for each lane, the slot's token
# and the lane's window ms. A slot already answered (scored at or before now) is left alone: its
# answer may have overtaken this renewal on the way to Redis.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
for i = 1, #KEYS do
  local token, per = ARGV[2 * i], tonumber(ARGV[2 * i + 1])
  local score = redis.call('ZSCORE', KEYS[i], token)
  if score and tonumber(score) > now then
    redis.call('ZADD', KEYS[i], now + lease, token)
    if redis.call('PTTL', KEYS[i]) < lease + per then
      redis.call('PEXPIRE', KEYS[i], lease + per)
    end
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
    """`lease`: seconds a slot in flight outlives a replica that died holding it."""

    def __init__(
        self, redis: Redis, prefix: str, rates: Rates | None = None, *, lease: float = LEASE
    ) -> None:
        if lease <= 0:
            raise ValueError("a slot's lease must be positive")
        self.rates = rates or Rates()
        self._prefix = f"{prefix}:tg"
        self._lease_ms = _ms(lease)
        self._queues = LocalLocks()
        # Slots in flight, by token: the lanes each holds, with their windows in ms.
        self._flying: dict[str, list[tuple[str, int]]] = {}
        self._keeper: asyncio.Task[None] | None = None
        self._take_script = redis.register_script(_TAKE)
        self._end_script = redis.register_script(_END)
        self._renew_script = redis.register_script(_RENEW)
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
        # Registered before the overall lane is taken: waiting for that one may outlast a lease.
        held = self._flying[token] = []
        overall_obeys = [self._pause(None)]
        try:
            if chat is not None:
                if cost is Cost.CHAT:
                    rate = self.rates.private if is_private(chat) else self.rates.group
                    await self._take(self._lane(chat), rate, [self._pause(chat)], token)
                    self._fly(held, self._lane(chat), rate)
                else:  # administration: the chat's pause holds it, its message lane does not
                    overall_obeys.append(self._pause(chat))
            await self._take(self._lane(None), self.rates.total, overall_obeys, token)
            self._fly(held, self._lane(None), self.rates.total)
        except BaseException:
            del self._flying[token]
            if held:
                await self._end(held, token, answered=False)
            raise
        metrics.LIMITER_WAITS.labels(cost.value).observe(time.monotonic() - started)
        try:
            yield
        finally:
            del self._flying[token]
            await self._end(held, token, answered=True)

    def _fly(self, held: list[tuple[str, int]], lane: str, rate: Rate) -> None:
        """Count a slot just taken as in flight, and make sure a keeper renews it."""
        held.append((lane, _ms(rate.per)))
        if self._keeper is None:
            self._keeper = asyncio.create_task(self._keep())

    async def _keep(self) -> None:
        """Renew every slot in flight at a third of the lease, for as long as there are any
        (the next slot taken starts a keeper again)."""
        try:
            while True:
                await asyncio.sleep(self._lease_ms / 3000)
                flying = [
                    (lane, token, per) for token, held in self._flying.items() for lane, per in held
                ]
                if not flying:
                    return
                args: list[str | int] = [self._lease_ms]
                for _, token, per in flying:
                    args += [token, per]
                try:
                    await self._renew_script(keys=[lane for lane, _, _ in flying], args=args)
                except RedisError as exc:
                    log.warning("renewing limiter slots failed: %s", type(exc).__name__)
        finally:
            self._keeper = None

    async def _end(self, held: list[tuple[str, int]], token: str, *, answered: bool) -> None:
        try:
            lanes = [lane for lane, _ in held]
            await self._end_script(keys=lanes, args=[token, 1 if answered else 0])
        except RedisError as exc:
            # The call itself went (or failed) on its own; its slot frees when its lease ends.
            log.warning("ending a limiter slot failed: %s", type(exc).__name__)

    async def _take(self, lane: str, rate: Rate, pauses: list[str], token: str) -> None:
        async with self._queues.hold(lane):
            retry = 0.002
            while True:
                wait = int(
                    await self._take_script(
                        keys=[lane, *pauses],
                        args=[rate.count, _ms(rate.per), token, self._lease_ms],
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
