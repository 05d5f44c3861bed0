"""Engine and session factory for any SQLAlchemy async URL."""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

import aiosqlite
from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

T = TypeVar("T")

BUSY_TIMEOUT_MS = 15_000  # how long a write waits for another connection's write lock


class InlineConnection(aiosqlite.Connection):
    """aiosqlite's connection, its calls run in the caller's thread (the event loop's) rather
    than handed to the connection's own, unless they must wait.

    The connection has no busy timeout of its own: a call that finds the database locked by
    another connection (another process, or another engine in this one) fails at once here,
    changing nothing, and is run again in the connection's thread with the busy timeout, so the
    event loop, and whatever in it holds the lock, goes on meanwhile.
    """

    @property
    def sqlite(self) -> sqlite3.Connection:
        """The sqlite3 connection, for calls made through `call`."""
        if self._connection is None:
            raise ValueError("the connection is closed")
        return self._connection

    async def call(self, fn: Callable[[], T]) -> T:
        """Run `fn`, which uses `sqlite`, as the connection's own calls run."""
        return await self._execute(fn)  # type: ignore[no-any-return]

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self._connection is None:
            return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                raise
        conn = self._connection

        def waiting() -> Any:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            try:
                return fn(*args, **kwargs)
            finally:
                conn.execute("PRAGMA busy_timeout = 0")

        return await super()._execute(waiting)  # type: ignore[no-untyped-call]


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


# Per engine: how many connections the direct path may keep between its transactions (see
# storage.direct), half of all the pool may open, so that sessions always find the other half.
_KEEPABLE: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()


def keepable(engine: Engine) -> int:
    """How many idle connections the direct path may keep out of `engine`'s pool; none on
    SQLite, whose one connection the sessions share."""
    return _KEEPABLE.get(engine, 0)


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> AsyncEngine:
    parsed = make_url(url)
    # Statement parameters are personal data (names, ids, blind indexes): keep them out of the
    # text of database errors, which end up in logs.
    if parsed.get_backend_name() != "sqlite":
        engine = create_async_engine(
            url, hide_parameters=True, pool_size=pool_size, max_overflow=max_overflow
        )
        event.listen(engine.sync_engine, "checkout", _refuse_closed)
        _KEEPABLE[engine.sync_engine] = (pool_size + max_overflow) // 2
        return engine
    # One connection, its calls run in the event loop's thread:
    # - SQLite takes one writer at a time; writers on several connections wait for each other
    #   in SQLite's busy handler, which sleeps in steps of up to 100 ms (seconds of latency
    #   under load). On one connection they queue in the event loop, each going the moment the
    #   previous one ends.
    # - A statement on a local file takes microseconds; handing each to aiosqlite's thread and
    #   back cost more than running it (a third of the bot's CPU under load, much of it the two
    #   threads handing the GIL to each other).
    # A call that must wait for another connection's lock waits in aiosqlite's thread.
    database = parsed.database or ":memory:"

    async def connect() -> aiosqlite.Connection:
        return await InlineConnection(
            lambda: sqlite3.connect(database, timeout=0, check_same_thread=False), 64
        )

    engine = create_async_engine(
        url,
        async_creator=connect,
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


def _refuse_closed(_dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """Keep the pool from handing out a connection the server has closed (a restart, an
    administrator ending it): asyncpg reads all the time, so it knows at once, and this costs
    no round trip where `pool_pre_ping` costs three (BEGIN, a ping, ROLLBACK) per checkout.
    The pool replaces a connection refused here with a new one. One that died unnoticed fails
    its first statement, which the direct path then runs again on a new connection."""
    if record.driver_connection.is_closed():
        raise DisconnectionError("the server closed this connection")


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

    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 10) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow)
        self.sessions = session_factory(self.engine)

    async def ping(self) -> None:
        """Raise unless the database answers a query."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

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
