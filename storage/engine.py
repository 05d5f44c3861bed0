"""Engine and session factory for any SQLAlchemy async URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeAlias

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")

# What callers outside `storage` hold and hand to repositories, so they need no SQLAlchemy import.
SessionFactory: TypeAlias = async_sessionmaker[AsyncSession]


def validate_url(url: str) -> None:
    """Raise ValueError unless `url` is a database URL Passgram can use."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ValueError("not a database URL") from exc
    if parsed.drivername not in DRIVERS:
        raise ValueError("use sqlite+aiosqlite:///file.db or postgresql+asyncpg://…")


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL; None for other databases and in-memory ones."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def redact_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def create_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    # Statement parameters are personal data (names, ids, blind indexes): keep them out of the
    # text of database errors, which end up in logs.
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True, hide_parameters=True)
    # One connection: SQLite takes one writer at a time, and writers on several connections
    # wait for each other in SQLite's busy handler, which sleeps in steps of up to 100 ms
    # whenever the lock is taken (seconds of latency under load). On one connection they queue
    # in the event loop instead and each goes the moment the previous one ends. The busy
    # timeout remains for other processes (`passgram gate set` while the bot runs).
    engine = create_async_engine(
        url,
        connect_args={"timeout": 15},
        hide_parameters=True,
        pool_size=1,
        max_overflow=0,
        pool_timeout=60,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        # WAL lets readers run beside the writer; foreign keys make erasure cascade.
        if parsed.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        # Deleted rows are overwritten with zeros, so an erased person's name does not linger
        # in free pages (some builds default to it, others don't).
        cur.execute("PRAGMA secure_delete=ON")
        cur.close()

    return engine


async def scrub(engine: AsyncEngine) -> bool:
    """After an erasure commits: leave no copy of the deleted rows in the database's files.

    On SQLite the write-ahead log still holds the pages as they were before the delete, until
    a checkpoint copies the zeroed pages back and truncates it. Returns False when a reader
    kept the log from being emptied (the next scrub or checkpoint does it). On PostgreSQL the
    deleted rows are dead tuples until (auto)vacuum reclaims them; nothing is done here.
    """
    if engine.dialect.name != "sqlite":
        return True
    async with engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        busy, _log, _moved = (await auto.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))).one()
    return not busy


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


class Database:
    """The engine and its session factory, so callers outside `storage` need no SQLAlchemy."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.sessions = session_factory(self.engine)

    async def create_all(self) -> None:
        """Create tables straight from the models (tests; deployments use migrations)."""
        from storage.models import Base

        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    async def scrub(self) -> bool:
        """See `scrub`: call it after the transaction of an erasure commits."""
        return await scrub(self.engine)

    async def dispose(self) -> None:
        await self.engine.dispose()
