"""The settings for replicas: documented with their defaults, and read as operators write them."""

from __future__ import annotations

from pathlib import Path

from bot.auth.clerk.pace import InMemoryPacer, clerk_limits
from bot.config import load_settings
from bot.coordination.limiter import RedisLimiter
from bot.coordination.locks import LocalLocks, RedisLocks
from bot.coordination.pacer import RedisPacer
from bot.coordination.setup import coordination_for
from bot.limits_out import LocalLimiter
from tests.support.redis import REDIS_URL

NAMES = (
    "DATABASE_POOL_SIZE",
    "DATABASE_MAX_OVERFLOW",
    "REDIS_URL",
    "REDIS_LOCK_LEASE",
    "METRICS_LISTEN",
)


def test_every_replica_setting_is_documented_with_its_default() -> None:
    root = Path(__file__).resolve().parents[2]
    example = (root / ".env.example").read_text()
    readme = (root / "README.md").read_text()
    defaults = load_settings(_env_file=None)
    for name in NAMES:
        value = getattr(defaults, name.lower())
        written = "" if value is None else f"{value:g}" if isinstance(value, float) else value
        assert f"\n{name}={written}\n" in example, name
        assert f"`{name}`" in readme, name
    assert "not read yet" not in example + readme


def test_replica_settings_as_operators_write_them() -> None:
    settings = load_settings(
        _env_file=None,
        redis_url="rediss://:secret@cache.example.com:6380/2",
        redis_lock_lease="2.5",
        metrics_listen="0.0.0.0:9100",
        database_pool_size="25",
        database_max_overflow="0",
    )
    assert settings.redis_lock_lease == 2.5
    assert (settings.database_pool_size, settings.database_max_overflow) == (25, 0)
    assert settings.masked()["REDIS_URL"] == "rediss://:***@cache.example.com:6380/2"
    assert load_settings(_env_file=None, redis_url=" ", metrics_listen="").redis_url is None


async def test_redis_url_makes_every_shared_part_shared_and_its_absence_none() -> None:
    token = "123456:" + "A" * 30
    shared = coordination_for(
        load_settings(_env_file=None, telegram_bot_token=token, redis_url=REDIS_URL)
    )
    alone = coordination_for(load_settings(_env_file=None, telegram_bot_token=token))
    try:
        limits = clerk_limits()
        assert isinstance(shared.locks, RedisLocks)
        assert isinstance(shared.limiter, RedisLimiter)
        assert isinstance(shared.pacer_factory(limits, margin=0.5, notify_min_wait=1.0), RedisPacer)
        await shared.ping()
        assert isinstance(alone.locks, LocalLocks)
        assert isinstance(alone.limiter, LocalLimiter)
        assert isinstance(
            alone.pacer_factory(limits, margin=0.5, notify_min_wait=1.0), InMemoryPacer
        )
    finally:
        await shared.aclose()
