"""Picks the coordination the settings ask for: in Redis when REDIS_URL is set, else in-process."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

from redis.asyncio import Redis

from bot.auth.clerk.pace import InMemoryPacer, PacerFactory
from bot.config import Settings
from bot.coordination.limiter import RedisLimiter
from bot.coordination.locks import LocalLocks, Locks, RedisLocks
from bot.coordination.pacer import RedisPacer
from bot.coordination.redis import connect, namespace
from bot.limits_out import Limiter, limiter_for, rates_from

log = logging.getLogger(__name__)


@dataclass
class Coordination:
    locks: Locks
    limiter: Limiter
    pacer_factory: PacerFactory
    redis: Redis | None = None

    @property
    def shared(self) -> bool:
        return self.redis is not None

    async def ping(self) -> None:
        """Raise unless the shared store answers (nothing to reach when in-process)."""
        if self.redis is not None:
            await self.redis.ping()

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


def coordination_for(settings: Settings) -> Coordination:
    """Shared through Redis with REDIS_URL; this process's own otherwise.

    Replicas of one bot meet under the prefix of its token's numeric id; a process without a
    token (the CLI's maintenance commands) coordinates nothing and needs no Redis.
    """
    token = settings.telegram_bot_token
    if settings.redis_url is None or token is None:
        return Coordination(LocalLocks(), limiter_for(settings), InMemoryPacer)
    redis = connect(settings.redis_url)
    prefix = namespace(token.get_secret_value())
    return Coordination(
        RedisLocks(redis, prefix, lease=settings.redis_lock_lease),
        RedisLimiter(redis, prefix, rates_from(settings), lease=settings.redis_lock_lease),
        partial(RedisPacer, redis, prefix),
        redis,
    )


def warn_if_unshared(settings: Settings, coordination: Coordination) -> None:
    """Webhook mode on a server database invites a second replica; without Redis it must not."""
    server_db = settings.database_url.startswith("postgresql")
    if settings.webhook_url and server_db and not coordination.shared:
        log.warning(
            "REDIS_URL is not set: per-person locks, the Telegram limiter and the Clerk pacer "
            "live in this process, so only ONE replica may run. Set REDIS_URL before adding "
            "replicas."
        )
