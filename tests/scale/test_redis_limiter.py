"""The outgoing Telegram limiter shared through Redis: three replicas' limiters together keep
each lane, and a 429 seen by one pauses the chat for all."""

from __future__ import annotations

import asyncio
import time

from bot.coordination.limiter import RedisLimiter
from bot.limits_out import Cost, Rate, Rates
from tests.support.redis import REDIS_URL, fresh_prefix, other_replica, redis_clients

RATES = Rates(total=Rate(8, 0.4), private=Rate(2, 0.4), group=Rate(3, 0.6))


def most_in_any_window(times: list[float], per: float) -> int:
    """The most calls that began within any `per` seconds."""
    times = sorted(times)
    most = 0
    for i, start in enumerate(times):
        most = max(most, sum(1 for t in times[i:] if t - start < per))
    return most


async def test_three_replicas_together_keep_every_lane() -> None:
    prefix = fresh_prefix()
    async with redis_clients(3, prefix) as clients:
        limiters = [RedisLimiter(client, prefix, RATES) for client in clients]
        sent: dict[int | None, list[float]] = {}
        chats = [101, 102, 103, -500]  # three private chats and a group

        async def send(limiter: RedisLimiter, chat: int, cost: Cost) -> None:
            async with limiter.slot(chat, cost):
                now = time.monotonic()
                sent.setdefault(None, []).append(now)
                if cost is Cost.CHAT:
                    sent.setdefault(chat, []).append(now)
                await asyncio.sleep(0.003)  # the call's round trip

        calls = [
            send(limiters[i % 3], chats[i % 4], Cost.BOT if i % 5 == 0 else Cost.CHAT)
            for i in range(40)
        ]
        await asyncio.wait_for(asyncio.gather(*calls), 60)
    assert len(sent[None]) == 40
    assert most_in_any_window(sent[None], RATES.total.per) <= RATES.total.count
    for chat in (101, 102, 103):
        assert most_in_any_window(sent[chat], RATES.private.per) <= RATES.private.count
    assert most_in_any_window(sent[-500], RATES.group.per) <= RATES.group.count


async def test_a_429_seen_by_one_replica_pauses_the_chat_for_all() -> None:
    prefix = fresh_prefix()
    async with redis_clients(2, prefix) as (one, two):
        first, second = RedisLimiter(one, prefix, RATES), RedisLimiter(two, prefix, RATES)
        entered: list[tuple[int, float]] = []

        async def send(chat: int) -> None:
            async with second.slot(chat, Cost.CHAT):
                entered.append((chat, time.monotonic()))

        before = time.monotonic()
        await first.penalise(200, 0.5)
        await asyncio.wait_for(asyncio.gather(send(200), send(201)), 10)
    assert [chat for chat, _ in entered] == [201, 200]  # the other chat went first
    paused_until = dict(entered)[200]
    assert paused_until - before >= 0.5


async def test_a_429_for_no_chat_pauses_everything_counted() -> None:
    prefix = fresh_prefix()
    async with redis_clients(2, prefix) as (one, two):
        first, second = RedisLimiter(one, prefix, RATES), RedisLimiter(two, prefix, RATES)
        before = time.monotonic()
        await first.penalise(None, 0.4)
        async with asyncio.timeout(10):
            async with second.slot(None, Cost.FREE):
                free = time.monotonic()
            async with second.slot(-900, Cost.BOT):
                counted = time.monotonic()
    assert free < counted
    assert counted - before >= 0.4


async def test_a_call_that_fails_to_go_out_gives_its_slot_back() -> None:
    prefix = fresh_prefix()
    rates = Rates(total=Rate(1, 30.0), private=Rate(1, 30.0), group=Rate(1, 30.0))
    async with redis_clients(1, prefix) as (client,):
        limiter = RedisLimiter(client, prefix, rates)
        waiting = asyncio.create_task(_enter(limiter, 300))
        await asyncio.sleep(0)  # it takes its private chat's slot, queued on nothing
        await asyncio.wait_for(waiting, 10)
        # That one was answered: the window holds it for 30 s, so another waits…
        blocked = asyncio.create_task(_enter(limiter, 301))
        done, _ = await asyncio.wait([blocked], timeout=0.3)
        assert not done
        blocked.cancel()
        # …and a cancelled wait leaves nothing behind in the lane of its chat.
        await asyncio.gather(blocked, return_exceptions=True)
        assert await client.zcard(f"{prefix}:tg:lane:301") == 0


async def _enter(limiter: RedisLimiter, chat: int) -> None:
    async with limiter.slot(chat, Cost.CHAT):
        pass


async def test_a_killed_replicas_call_in_flight_frees_its_chat_when_its_lease_ends() -> None:
    """A replica killed between Telegram's answer and telling Redis holds the chat's slot; its
    lease, renewed while it lived, frees that slot soon after, not a call's timeout later."""
    prefix = fresh_prefix()
    holder = f"""
        import asyncio
        from redis.asyncio import Redis
        from bot.coordination.limiter import RedisLimiter
        from bot.limits_out import Cost, Rate, Rates

        async def main():
            rates = Rates(total=Rate(30, 1.0), private=Rate(1, 0.2), group=Rate(1, 0.2))
            limiter = RedisLimiter(Redis.from_url({REDIS_URL!r}), {prefix!r}, rates, lease=0.5)
            async with limiter.slot(5, Cost.CHAT):
                print("held", flush=True)
                await asyncio.sleep(3600)

        asyncio.run(main())
    """
    async with other_replica(holder) as process, redis_clients(1, prefix) as (client,):
        rates = Rates(total=Rate(30, 1.0), private=Rate(1, 0.2), group=Rate(1, 0.2))
        waiter = asyncio.create_task(_enter(RedisLimiter(client, prefix, rates), 5))
        # The holder renews its slot while alive: three leases pass and the chat waits.
        done, _ = await asyncio.wait([waiter], timeout=1.5)
        assert not done
        process.kill()
        await process.wait()
        await asyncio.wait_for(waiter, 10)
