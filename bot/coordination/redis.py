"""The Redis connection, and the key prefix that keeps one bot's shared state apart.

Replicas of one bot share a prefix (the token's numeric id, which is public: it is the bot's
user id), so they see each other's locks and lanes; other bots on the same Redis, and tests with
their own random tokens, never collide with them.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis

PREFIX = "passgram"


def connect(url: str) -> Redis:
    # Replies decoded as text: scripts answer numbers and short strings, never binary data.
    return Redis.from_url(url, decode_responses=True, health_check_interval=30)


def namespace(bot_token: str) -> str:
    """The key prefix of the bot with this token: never the secret part."""
    bot_id = bot_token.split(":", 1)[0]
    return f"{PREFIX}:{bot_id}"


async def server_time(redis: Redis) -> float:
    """Seconds on Redis's clock, the one every replica shares (their own clocks differ)."""
    seconds, micros = await redis.time()
    return float(seconds) + micros / 1_000_000


def redact_redis_url(url: str) -> str:
    """The URL without its password, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))
