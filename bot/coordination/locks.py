"""One person's updates run one at a time: in this process, or across replicas through Redis.

Frameworks (and several replicas behind a load balancer) run updates side by side, so two of one
person's — a code and a button press — could be decided at once from the same stored state. A
lock per person prevents that. `LocalLocks` serves one process; `RedisLocks` serves replicas
sharing a Redis: a key set with NX and a lease, renewed while held and deleted only by its holder
(compare and delete in one script), so a replica that dies holding it frees it when the lease
ends.

Locks are re-entrant within a task and the tasks it starts: the runner holds a person's lock for
the whole update, and the conversation service, which takes it too (when mounted in a host bot
there is no runner), passes straight through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import weakref
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot import metrics

log = logging.getLogger(__name__)

LEASE = 10.0  # seconds a dead replica's lock outlives it
_held: ContextVar[frozenset[str]] = ContextVar("passgram_held_locks", default=frozenset())


class Locks(Protocol):
    def hold(self, key: str) -> AbstractAsyncContextManager[None]:
        """Entered once no one else holds `key`; a holder entering again passes through."""
        ...


def person(user_id: int) -> str:
    """The lock key of one Telegram user."""
    return f"user:{user_id}"


@asynccontextmanager
async def _marked(key: str) -> AsyncIterator[None]:
    token = _held.set(_held.get() | {key})
    try:
        yield
    finally:
        _held.reset(token)


class LocalLocks:
    """Locks of one process. Idle keys' locks vanish with their last user: memory stays flat."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        if key in _held.get():
            yield
            return
        async with self._lock(key), _marked(key):
            yield


# Delete or extend the key only while it still holds our token: after a lease ran out, another
# replica may hold it, and its lock is not ours to touch.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""


class RedisLocks:
    """Locks shared by every replica using one Redis and key prefix.

    Within a process, waiters queue on a local lock first (first come, first served), so only
    the head of each person's queue asks Redis, backing off from 5 ms to 100 ms between tries.
    """

    def __init__(self, redis: Redis, prefix: str, *, lease: float = LEASE) -> None:
        if lease <= 0:
            raise ValueError("a lock's lease must be positive")
        self._redis = redis
        self._prefix = prefix
        self._lease_ms = max(1, round(lease * 1000))
        self._local = LocalLocks()
        self._release = redis.register_script(_RELEASE)
        self._renew = redis.register_script(_RENEW)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        if key in _held.get():
            yield
            return
        # The local lock also marks the key as held by this task, for re-entry.
        async with self._local.hold(key):
            name = f"{self._prefix}:lock:{key}"
            token = secrets.token_hex(16)
            await self._acquire(name, token)
            keeper = asyncio.create_task(self._keep(name, token))
            try:
                yield
            finally:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper
                try:
                    await self._release(keys=[name], args=[token])
                except RedisError as exc:  # the lease frees it instead, a little later
                    log.warning("releasing a lock failed: %s", type(exc).__name__)

    async def _acquire(self, name: str, token: str) -> None:
        delay = 0.005
        waited = False
        while not await self._redis.set(name, token, nx=True, px=self._lease_ms):
            waited = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
        if waited:
            metrics.LOCK_WAITS.inc()

    async def _keep(self, name: str, token: str) -> None:
        """Renew the lease at a third of its length while the holder runs."""
        every = self._lease_ms / 3000
        while True:
            await asyncio.sleep(every)
            try:
                kept = await self._renew(keys=[name], args=[token, self._lease_ms])
            except RedisError as exc:
                log.warning("renewing a lock failed: %s", type(exc).__name__)
                continue
            if not kept:
                # The lease ran out (Redis unreachable for a while, the process stalled):
                # another replica may now run this person's updates beside ours.
                log.warning("a lock's lease ran out while it was held")
                metrics.LOCKS_LOST.inc()
                return
