"""The gate's storage on SQLite and PostgreSQL: the migration builds what the models say, a wait
ends once, and only the wait that was read."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from storage.gate import PendingRecord
from storage.models import Base
from tests.gate.conftest import BOB, GROUP, T0, World


async def test_the_migration_builds_the_models_schema(world: World) -> None:
    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with world.db.engine.connect() as connection:
        assert await connection.run_sync(differences) == []


async def test_only_the_wait_that_was_read_is_settled(world: World) -> None:
    await world.chat()
    first = PendingRecord(GROUP, BOB.id, "request", T0 + timedelta(seconds=60), created_at=T0)
    await world.store.put_pending(first)
    # Asked again meanwhile: a new wait, with a new deadline.
    renewed = PendingRecord(GROUP, BOB.id, "request", T0 + timedelta(seconds=90), created_at=T0)
    await world.store.put_pending(renewed)
    assert not await world.store.settle(GROUP, BOB.id, first.deadline_at)
    assert await world.store.get_pending(GROUP, BOB.id) == renewed
    assert await world.store.settle(GROUP, BOB.id, renewed.deadline_at)
    assert not await world.store.settle(GROUP, BOB.id, renewed.deadline_at)


async def test_of_many_settling_at_once_one_wins(world: World) -> None:
    await world.chat()
    wait = PendingRecord(GROUP, BOB.id, "member", T0, created_at=T0)
    await world.store.put_pending(wait)
    stores = [world.new_gate().store for _ in range(6)]
    won = await asyncio.gather(*(s.settle(GROUP, BOB.id, T0, admit="any") for s in stores))
    assert sorted(won) == [False] * 5 + [True]


async def test_due_returns_the_oldest_deadlines_first(world: World) -> None:
    await world.chat()
    for i, seconds in enumerate((30, 10, 20)):
        await world.store.put_pending(
            PendingRecord(GROUP, 500 + i, "request", T0 + timedelta(seconds=seconds))
        )
    due = await world.store.due(T0 + timedelta(seconds=20), limit=10)
    assert [w.user_id for w in due] == [501, 502]
    assert [w.user_id for w in await world.store.due(T0 + timedelta(hours=1), limit=1)] == [501]


async def test_erasure_keeps_only_what_must_still_be_done(world: World) -> None:
    await world.chat()
    await world.gate.on_join_request(GROUP, BOB, 5202)
    await world.store.erase_user(BOB.id)
    assert await world.store.pending_of(BOB.id) == []
    assert await world.store.read_log(GROUP, user_id=BOB.id) == []
    (todo,) = await world.store.erasures(BOB.id)
    assert (todo.chat_id, todo.action, todo.waiting) == (GROUP, "decline", True)
