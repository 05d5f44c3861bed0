"""A `Database` with Passgram's tables, on any URL, disposed of afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from storage.engine import Database


@asynccontextmanager
async def with_tables(url: str) -> AsyncIterator[Database]:
    database = Database(url)
    await database.create_all()
    try:
        yield database
    finally:
        await database.dispose()
