"""Redis for tests: the real server (127.0.0.1:6379 unless PASSGRAM_TEST_REDIS names another),
each test under a key prefix of its own, its keys deleted afterwards (never FLUSHDB: other
tests share the server)."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

REDIS_URL = os.environ.get("PASSGRAM_TEST_REDIS", "redis://127.0.0.1:6379/0")


def fresh_prefix() -> str:
    return f"passgram-test:{secrets.token_hex(6)}"


@asynccontextmanager
async def redis_clients(count: int, prefix: str) -> AsyncIterator[list[Redis]]:
    """`count` separate connections, as separate replicas would have."""
    clients = [Redis.from_url(REDIS_URL, decode_responses=True) for _ in range(count)]
    try:
        await clients[0].ping()
    except (OSError, RedisError) as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({exc}); bash .ci/run starts it")
    try:
        yield clients
    finally:
        await forget(clients[0], prefix)
        for client in clients:
            await client.aclose()


async def forget(redis: Redis, prefix: str) -> None:
    keys = [key async for key in redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)


@asynccontextmanager
async def other_replica(script: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """Another replica: a Python process running `script` (dedented), entered once it prints
    "held" (it holds what it took and waits); killed at the end if the caller has not already."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", textwrap.dedent(script), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        assert await asyncio.wait_for(process.stdout.readline(), 30) == b"held\n"
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
