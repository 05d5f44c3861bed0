"""The direct path (storage/direct.py): what it writes reads back the same through the ORM, a
refused row is a Conflict that keeps nothing, a batch of writes lands whole or not at all, it
never keeps a connection its engine has let go of, connections the server ended are replaced
without losing or repeating a write, and advisory locks that open a transaction are its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import bindparam, delete, func, insert, select

from storage.direct import Batch, Conflict, Direct, Query, Together, direct
from storage.engine import Database
from storage.models import AuditEvent, Conversation, HandledUpdate, TelegramUser
from tests.support.database import with_tables
from tests.support.postgres import ADMIN_DSN, fresh_postgres

WHEN = datetime(2026, 11, 30, 12, 30, 15, 123456, tzinfo=UTC)
_AUDIT = Query(
    insert(AuditEvent)
    .values(
        at=bindparam("at"),
        event=bindparam("event"),
        telegram_user_id=bindparam("user"),
        detail=bindparam("detail"),
    )
    .returning(AuditEvent.id, AuditEvent.at, AuditEvent.detail)
)
_HANDLED = Query(insert(HandledUpdate).values(update_id=bindparam("id"), at=bindparam("at")))
_FORGET = Query(delete(HandledUpdate))
_HANDLED_AT = Query(select(HandledUpdate.at).where(HandledUpdate.update_id == bindparam("id")))


async def test_values_read_back_the_same_through_the_orm(database: Database) -> None:
    async with direct(database.sessions).transaction() as tx:
        row = await tx.first(_AUDIT, at=WHEN, event="linked", user=7, detail={"via": "email"})
    assert row is not None
    _id, at, detail = row
    assert (at, detail) == (WHEN, {"via": "email"})
    async with database.sessions() as session:
        stored = (await session.scalars(select(AuditEvent))).one()
    assert (stored.at, stored.event, stored.telegram_user_id, stored.detail) == (
        WHEN,
        "linked",
        7,
        {"via": "email"},
    )


async def test_a_refused_row_is_a_conflict_and_its_transaction_keeps_nothing(
    database: Database,
) -> None:
    async with direct(database.sessions).transaction() as tx:
        await tx.run(_HANDLED, id=1, at=WHEN)
    with pytest.raises(Conflict):
        async with direct(database.sessions).transaction() as tx:
            await tx.run(_HANDLED, id=2, at=WHEN)
            await tx.run(_HANDLED, id=1, at=WHEN)
    async with direct(database.sessions).single() as tx:
        assert await tx.scalar(_HANDLED_AT, id=1) == WHEN
        assert await tx.scalar(_HANDLED_AT, id=2) is None


_PERSON = Query(
    insert(TelegramUser).values(
        id=bindparam("user"), created_at=bindparam("at"), updated_at=bindparam("at")
    )
)
_STEP = Query(
    insert(Conversation).values(
        telegram_user_id=bindparam("user"), step=bindparam("step"), updated_at=bindparam("at")
    )
)
_STEPS = Query(select(Conversation.telegram_user_id, Conversation.step))


async def test_a_batch_lands_whole_or_not_at_all(database: Database) -> None:
    # The conversation refers to the person the same batch inserts: on PostgreSQL the parts are
    # one statement, whose foreign keys are checked at its end.
    together = Batch(_PERSON, _STEP, _HANDLED)
    async with direct(database.sessions).single() as tx:
        await tx.run_batch(together, id=1, user=7, step="email", at=WHEN)
    with pytest.raises(Conflict):
        async with direct(database.sessions).single() as tx:
            await tx.run_batch(together, id=1, user=8, step="code", at=WHEN)
    async with direct(database.sessions).single() as tx:
        assert await tx.all(_STEPS) == [(7, "email")]
        assert await tx.scalar(_HANDLED_AT, id=1) == WHEN


_TAKE_STEP = Query(
    delete(Conversation)
    .where(Conversation.step == bindparam("taken"))
    .returning(Conversation.telegram_user_id)
)
_SEEN = Query(select(HandledUpdate.update_id).where(HandledUpdate.update_id == bindparam("seen")))


async def test_a_batch_says_which_required_parts_found_no_row(database: Database) -> None:
    # Each required part is counted in the same statement as the writes on PostgreSQL; the
    # caller rolls the transaction back when one found nothing, and keeps none of it.
    async with direct(database.sessions).single() as tx:
        await tx.run_batch(Batch(_PERSON, _STEP, _HANDLED), id=5, user=7, step="email", at=WHEN)
    taking = Batch(_HANDLED, _TAKE_STEP, _SEEN, required=[1, 2])

    class Refused(Exception):
        pass

    with pytest.raises(Refused):
        async with direct(database.sessions).transaction() as tx:
            found = await tx.run_batch(taking, id=1, at=WHEN, taken="code", seen=5)
            assert found == [False, True]
            raise Refused
    async with direct(database.sessions).single() as tx:
        assert await tx.scalar(_HANDLED_AT, id=1) is None
    async with direct(database.sessions).transaction() as tx:
        found = await tx.run_batch(taking, id=1, at=WHEN, taken="email", seen=6)
        assert found == [True, False]
    async with direct(database.sessions).single() as tx:
        assert await tx.all(_STEPS) == []
        assert await tx.scalar(_HANDLED_AT, id=1) == WHEN


_COUNT_HANDLED = Query(select(func.count()).select_from(HandledUpdate))
_HANDLED_MANY = Query(
    insert(HandledUpdate)
    .values([{"update_id": bindparam(f"id{n}"), "at": bindparam("at")} for n in range(2)])
    .returning(HandledUpdate.update_id)
)


async def test_reads_together_with_writes_see_the_database_as_it_was_before(
    database: Database,
) -> None:
    reads_and_writes = Together([_COUNT_HANDLED, _SEEN], [_HANDLED_MANY, _PERSON])
    async with direct(database.sessions).transaction() as tx:
        (count, seen), written = await tx.run_together(
            reads_and_writes, id0=1, id1=2, at=WHEN, seen=1, user=7
        )
    assert (count, seen) == ((0,), None)
    assert sorted(written) == [(1,), (2,)]
    async with direct(database.sessions).transaction() as tx:
        (count, seen), written = await tx.run_together(
            reads_and_writes, id0=3, id1=4, at=WHEN, seen=1, user=8
        )
    assert (count, seen) == ((2,), (1,))
    async with database.sessions() as session:
        assert list(await session.scalars(select(TelegramUser.id).order_by("id"))) == [7, 8]


def _sqlite_threads() -> int:
    """aiosqlite's connection threads still running, once closed ones had time to end."""
    threads = [thread for thread in threading.enumerate() if "connection_worker" in thread.name]
    for thread in threads:
        thread.join(timeout=5)
    return sum(thread.is_alive() for thread in threads)


async def test_after_the_engine_is_disposed_no_connection_is_left_open(tmp_path: Path) -> None:
    before = _sqlite_threads()
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/passgram.db")
    await db.create_all()
    for _ in range(2):
        # dispose() replaces the pool: the next transaction must use the new one, or its
        # connection (and the thread of aiosqlite's) outlives every dispose.
        async with direct(db.sessions).transaction() as tx:
            await tx.run(_HANDLED, id=1, at=WHEN)
            await tx.run(_FORGET)
        await db.dispose()
    assert _sqlite_threads() == before


@pytest.fixture
async def pg() -> AsyncIterator[Database]:
    async with fresh_postgres() as url, with_tables(url) as database:
        yield database


_OPEN = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
_ENDED = (
    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000))"
    " FROM pg_stat_activity WHERE datname = $1"
)


async def _connections(database: Database, query: str = _OPEN) -> int:
    """The database's connections on the server, as `query` counts them."""
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        count = await admin.fetchval(query, database.engine.url.database)
    finally:
        await admin.close()
    return int(count)


async def _end_connections(database: Database) -> int:
    """What a server restart does to the bot's connections: end them, and wait until they are
    gone."""
    return await _connections(database, _ENDED)


async def test_connections_the_server_ended_are_not_handed_out_again(pg: Database) -> None:
    async with direct(pg.sessions).transaction() as tx:
        await tx.run(_HANDLED, id=1, at=WHEN)
    assert await _end_connections(pg) >= 1
    async with direct(pg.sessions).transaction() as tx:
        await tx.run(_HANDLED, id=2, at=WHEN)
    await _end_connections(pg)
    async with pg.sessions() as session:  # the ORM's checkouts too
        stored = await session.scalars(select(HandledUpdate.update_id).order_by("update_id"))
        assert list(stored) == [1, 2]


async def _together(access: Direct, ids: range) -> None:
    """One transaction per id, all holding a connection at the same moment."""
    arrived = asyncio.Barrier(len(ids))

    async def one(n: int) -> None:
        async with access.transaction() as tx:
            await tx.run(_HANDLED, id=n, at=WHEN)
            await arrived.wait()

    await asyncio.gather(*(one(n) for n in ids))


# A connection left to the garbage collector is ended too, with SQLAlchemy's warning.
@pytest.mark.filterwarnings("error::sqlalchemy.exc.SAWarning")
async def test_a_disposed_engine_closes_every_connection_it_kept() -> None:
    async with fresh_postgres() as url:
        database = Database(url)
        await database.create_all()
        await _together(direct(database.sessions), range(6))
        assert await _connections(database) == 6
        await database.dispose()
        # A backend ends a moment after its client closed the connection.
        for _ in range(100):
            if await _connections(database) == 0:
                break
            await asyncio.sleep(0.1)
        assert await _connections(database) == 0


async def test_connections_kept_between_transactions_leave_the_sessions_room() -> None:
    async with fresh_postgres() as url, with_tables(url) as _:
        database = Database(url, pool_size=2, max_overflow=0)
        try:
            await _together(direct(database.sessions), range(2))
            # Both went back: one kept for the next transaction, one to the pool, where a
            # session finds it (with both kept, it would wait for the pool's 30 s timeout).
            async with database.sessions() as session:
                handled = await asyncio.wait_for(
                    session.scalars(select(HandledUpdate.update_id).order_by("update_id")), 10
                )
                assert list(handled) == [0, 1]
        finally:
            await database.dispose()


@pytest.mark.parametrize("atomic", [True, False], ids=["transaction", "single"])
async def test_a_connection_that_died_before_its_first_statement_is_replaced(
    pg: Database, atomic: bool
) -> None:
    access = direct(pg.sessions)
    async with access.transaction() if atomic else access.single() as tx:
        # Taken from the pool alive; ended before anything ran on it.
        assert await _end_connections(pg) == 1
        await tx.run(_HANDLED, id=1, at=WHEN)
    async with access.single() as tx:
        assert await tx.scalar(_HANDLED_AT, id=1) == WHEN


async def test_a_connection_that_dies_mid_transaction_fails_it_whole(pg: Database) -> None:
    access = direct(pg.sessions)
    with pytest.raises((asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError)):
        async with access.transaction() as tx:
            await tx.run(_HANDLED, id=1, at=WHEN)
            await _end_connections(pg)
            await tx.run(_HANDLED, id=2, at=WHEN)
    async with access.single() as tx:
        assert await tx.scalar(_HANDLED_AT, id=1) is None
        assert await tx.scalar(_HANDLED_AT, id=2) is None


async def _waits_for_lock(access: Direct, lock: int, entered: asyncio.Event) -> None:
    async with access.transaction() as tx:
        await tx.lock(lock)
        entered.set()


async def test_locks_that_open_a_transaction_hold_until_it_commits(pg: Database) -> None:
    access = direct(pg.sessions)
    entered = asyncio.Event()
    async with access.transaction() as tx:
        # BEGIN goes in the same round trip as the locks: they are the transaction's.
        await tx.lock(-(2**63), 5, 2**63 - 1)
        await tx.run(_HANDLED, id=1, at=WHEN)
        waiter = asyncio.create_task(_waits_for_lock(access, 5, entered))
        done, _ = await asyncio.wait([waiter], timeout=0.5)
        assert not done and not entered.is_set()
    await asyncio.wait_for(waiter, 10)
    async with access.single() as tx:
        assert await tx.scalar(_HANDLED_AT, id=1) == WHEN


async def test_a_transaction_opened_by_locks_rolls_back_whole(pg: Database) -> None:
    access = direct(pg.sessions)
    with pytest.raises(RuntimeError):
        async with access.transaction() as tx:
            await tx.lock(6)
            await tx.run(_HANDLED, id=1, at=WHEN)
            raise RuntimeError("refused")
    entered = asyncio.Event()
    await asyncio.wait_for(_waits_for_lock(access, 6, entered), 10)  # the lock went with it
    async with access.single() as tx:
        assert await tx.scalar(_HANDLED_AT, id=1) is None


async def test_a_connection_that_died_before_its_locks_is_replaced(pg: Database) -> None:
    access = direct(pg.sessions)
    async with access.transaction() as tx:
        assert await _end_connections(pg) == 1
        await tx.lock(7)
        await tx.run(_HANDLED, id=1, at=WHEN)
    async with access.single() as tx:
        assert await tx.scalar(_HANDLED_AT, id=1) == WHEN
