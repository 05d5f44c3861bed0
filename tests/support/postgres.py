"""A fresh PostgreSQL database per test, on the real server (127.0.0.1:5432 unless
PASSGRAM_TEST_POSTGRES names another); `.ci/run` starts the server where it is not running."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

ADMIN_DSN = os.environ.get(
    "PASSGRAM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@asynccontextmanager
async def fresh_postgres() -> AsyncIterator[str]:
    """Create an empty database; yield its SQLAlchemy URL; drop it afterwards."""
    name = f"passgram_test_{secrets.token_hex(6)}"
    try:
        admin = await asyncpg.connect(ADMIN_DSN)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is not reachable at {ADMIN_DSN} ({exc}); bash .ci/run starts it")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
