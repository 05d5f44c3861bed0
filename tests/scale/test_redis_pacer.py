"""The Clerk pacer shared through Redis: replicas together stay under one limit per lane, are
told their wait, and a 429 seen by one closes the lane for all."""

from __future__ import annotations

import asyncio
import time

from bot.auth.clerk.pace import SIGN_IN_CREATE, PaceLimit
from bot.coordination.pacer import RedisPacer
from tests.scale.test_redis_limiter import most_in_any_window
from tests.support.redis import fresh_prefix, redis_clients

LIMITS = {SIGN_IN_CREATE: PaceLimit(3, 0.5)}


async def test_two_replicas_together_send_no_more_than_the_limit() -> None:
    prefix = fresh_prefix()
    async with redis_clients(2, prefix) as (one, two):
        # The margin absorbs the jitter between a reserved time and the call (here: our clock).
        pacers = [RedisPacer(c, prefix, LIMITS, margin=0.1) for c in (one, two)]
        sent: list[float] = []
        told: list[float] = []

        async def tell(seconds: float) -> None:
            told.append(seconds)

        async def create(pacer: RedisPacer) -> None:
            await pacer.acquire(SIGN_IN_CREATE, notify=tell)
            sent.append(time.monotonic())

        await asyncio.wait_for(asyncio.gather(*(create(pacers[i % 2]) for i in range(9))), 30)
    assert len(sent) == 9
    assert most_in_any_window(sent, 0.5) <= 3
    # Three go now, three in 0.6 s, three in 1.2 s: only waits of a second or more (the default
    # notify_min_wait) are worth a message, and those are told.
    assert len(told) == 3 and all(1.0 <= seconds <= 1.2 for seconds in told)


async def test_a_long_wait_is_told_before_it_starts() -> None:
    prefix = fresh_prefix()
    limits = {SIGN_IN_CREATE: PaceLimit(1, 1.2)}
    async with redis_clients(2, prefix) as (one, two):
        first = RedisPacer(one, prefix, limits, margin=0.0)
        second = RedisPacer(two, prefix, limits, margin=0.0)
        told: list[float] = []

        async def tell(seconds: float) -> None:
            told.append(seconds)

        assert await first.acquire(SIGN_IN_CREATE) == 0.0
        waited = await asyncio.wait_for(second.acquire(SIGN_IN_CREATE, notify=tell), 10)
    assert len(told) == 1 and 1.0 <= told[0] <= 1.2
    assert waited >= 1.0


async def test_a_429_seen_by_one_replica_closes_the_lane_for_all() -> None:
    prefix = fresh_prefix()
    async with redis_clients(2, prefix) as (one, two):
        first = RedisPacer(one, prefix, LIMITS, margin=0.0)
        second = RedisPacer(two, prefix, LIMITS, margin=0.0)
        before = time.monotonic()
        await first.penalise(SIGN_IN_CREATE, 0.6)
        await asyncio.wait_for(second.acquire(SIGN_IN_CREATE), 10)
        after = time.monotonic()
        # Other lanes, and the same lane for another key, are not closed.
        await asyncio.wait_for(second.acquire(SIGN_IN_CREATE, key="other"), 0.5)
    assert after - before >= 0.6


async def test_a_block_that_comes_while_waiting_sends_the_waiter_behind_it() -> None:
    prefix = fresh_prefix()
    limits = {SIGN_IN_CREATE: PaceLimit(1, 0.4)}
    async with redis_clients(2, prefix) as (one, two):
        first = RedisPacer(one, prefix, limits, margin=0.0)
        second = RedisPacer(two, prefix, limits, margin=0.0)
        await first.acquire(SIGN_IN_CREATE)
        waiter = asyncio.create_task(second.acquire(SIGN_IN_CREATE))
        await asyncio.sleep(0.1)  # it holds the slot 0.4 s after the first
        before = time.monotonic()
        await first.penalise(SIGN_IN_CREATE, 1.0)
        await asyncio.wait_for(waiter, 10)
    assert time.monotonic() - before >= 1.0
