"""Per-person locks shared through Redis: one holder at a time across replicas, a dead holder's
lock freed by its lease, re-entry by the holder."""

from __future__ import annotations

import asyncio

from bot.coordination.locks import LocalLocks, Locks, RedisLocks, person
from tests.support.redis import REDIS_URL, fresh_prefix, other_replica, redis_clients


async def test_two_replicas_never_hold_one_persons_lock_at_once() -> None:
    prefix = fresh_prefix()
    async with redis_clients(2, prefix) as (one, two):
        replicas = [RedisLocks(one, prefix), RedisLocks(two, prefix)]
        inside: list[str] = []
        overlaps: list[list[str]] = []
        order: list[str] = []

        async def step(locks: RedisLocks, name: str) -> None:
            async with locks.hold(person(42)):
                inside.append(name)
                if len(inside) > 1:
                    overlaps.append(list(inside))
                await asyncio.sleep(0.002)  # a step's database round trips
                order.append(name)
                inside.remove(name)

        await asyncio.gather(*(step(replicas[i % 2], f"step{i}") for i in range(20)))
    assert overlaps == []
    assert sorted(order) == sorted(f"step{i}" for i in range(20))


async def test_different_people_do_not_wait_for_each_other() -> None:
    prefix = fresh_prefix()
    async with redis_clients(2, prefix) as (one, two):
        a, b = RedisLocks(one, prefix), RedisLocks(two, prefix)
        async with a.hold(person(1)):
            # Would wait forever on a shared lock; finishes at once on another person's.
            async with asyncio.timeout(5), b.hold(person(2)):
                pass


async def test_the_holder_passes_through_its_own_lock_again() -> None:
    prefix = fresh_prefix()
    async with redis_clients(1, prefix) as (client,):
        for locks in (RedisLocks(client, prefix), LocalLocks()):
            entered: list[str] = []
            async with asyncio.timeout(5), locks.hold(person(7)):
                # The runner holds the lock for the whole update; the service takes it again.
                async with locks.hold(person(7)):
                    entered.append("inner")
            assert entered == ["inner"]


async def test_a_killed_replicas_lock_is_freed_when_its_lease_ends() -> None:
    prefix = fresh_prefix()
    holder = f"""
        import asyncio, sys
        from redis.asyncio import Redis
        from bot.coordination.locks import RedisLocks, person

        async def main():
            locks = RedisLocks(Redis.from_url({REDIS_URL!r}), {prefix!r}, lease=0.5)
            async with locks.hold(person(5)):
                print("held", flush=True)
                await asyncio.sleep(3600)

        asyncio.run(main())
    """
    async with other_replica(holder) as process, redis_clients(1, prefix) as (client,):
        locks: Locks = RedisLocks(client, prefix)
        entered = asyncio.Event()

        async def take() -> None:
            async with locks.hold(person(5)):
                entered.set()

        waiter = asyncio.create_task(take())
        # The holder renews its lease while alive: three leases pass and the lock holds.
        await asyncio.sleep(1.5)
        assert not entered.is_set()
        process.kill()
        await process.wait()
        await asyncio.wait_for(waiter, 10)
        assert entered.is_set()
