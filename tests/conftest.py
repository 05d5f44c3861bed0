"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.engine import Database
from tests.support.database import with_tables
from tests.support.postgres import fresh_postgres


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database on SQLite (a real file) and on PostgreSQL (the real server)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'passgram.db'}"
        return
    async with fresh_postgres() as url:
        yield url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """`database_url` with Passgram's tables created straight from the models."""
    async with with_tables(database_url) as db:
        yield db
