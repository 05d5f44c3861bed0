"""Statements built with SQLAlchemy, compiled once per database, run on the driver's connection.

Every update a person sends reads and writes a handful of rows. Through SQLAlchemy's execution
layers (session, unit of work, cache keys, execution contexts, result objects) each statement
cost 150 to 400 µs of CPU on SQLite, against about 6 µs for the statement itself: most of the
bot's time under load. The statements of that hot path are declared here once as `Query`
objects, compiled per dialect on first use, and executed by `Tx` straight on the connection the
engine's pool hands out. Values go through the bind and result processors SQLAlchemy itself
uses for those columns, so rows written here read back the same through the ORM and the other
way round; everything else (the CLI, the gate's administration, erasure, housekeeping) keeps
using sessions. Writes that go together are one `Batch`: one statement on PostgreSQL.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias, cast

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import event, func, literal, select, true
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

from storage.engine import InlineConnection, keepable

Row: TypeAlias = tuple[Any, ...]
Processor: TypeAlias = Callable[[Any], Any] | None
_Statement: TypeAlias = Callable[[asyncpg.Connection], Awaitable[Any]]
_MISSING: Any = object()


class Conflict(Exception):
    """A unique key or constraint refused the row: someone else wrote it first."""


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    # Per positional parameter: its name, the literal the statement carries for it (or
    # _MISSING when the caller gives it) and the processor that turns a value into the driver's.
    params: tuple[tuple[str, Any, Processor], ...]
    results: tuple[Processor, ...]

    def args(self, given: Mapping[str, Any]) -> list[Any]:
        out = []
        for name, fixed, process in self.params:
            value = given[name] if fixed is _MISSING else fixed
            out.append(value if process is None else process(value))
        return out

    def rows(self, raw: Sequence[Sequence[Any]]) -> list[Row]:
        results = self.results
        if not any(results):
            return [tuple(row) for row in raw]
        return [
            tuple(
                value if process is None else process(value)
                for process, value in zip(results, row, strict=True)
            )
            for row in raw
        ]


class Query:
    """One statement, given as a SQLAlchemy construct or as a function of the dialect (for
    constructs that differ per database, such as upserts). Parameters are `bindparam`s the
    caller names; literals in the construct stay fixed."""

    __slots__ = ("_build", "_compiled")

    def __init__(self, build: ClauseElement | Callable[[Dialect], ClauseElement]) -> None:
        self._build = build
        self._compiled: dict[str, _Compiled] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        done = self._compiled.get(dialect.name)
        if done is None:
            done = self._compiled[dialect.name] = self._compile(dialect)
        return done

    def statement(self, dialect: Dialect) -> Any:
        return self._build if isinstance(self._build, ClauseElement) else self._build(dialect)

    def _compile(self, dialect: Dialect) -> _Compiled:
        statement = self.statement(dialect)
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        if compiled.positiontup is None:
            raise TypeError(f"{dialect.name} does not take positional parameters")
        params = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            if bind.expanding:
                raise TypeError("expanding parameters (IN lists) are not supported here")
            literal = _MISSING if bind.required or bind.callable else bind.value
            params.append((name, literal, bind.type.dialect_impl(dialect).bind_processor(dialect)))
        columns = getattr(statement, "exported_columns", ())
        results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        )
        return _Compiled(compiled.string, tuple(params), results)


class Batch:
    """Statements that belong together, run as one: on PostgreSQL one statement, each part a
    data-modifying CTE but the last (one round trip, atomic by itself); on SQLite, which has no
    such CTEs, one after another in the caller's transaction.

    Every part sees the database as it was before the batch and none sees another's rows, so
    the parts must not touch the same row. Foreign keys are checked at the statement's end,
    so a part may refer to a row an earlier part inserts. Parameters are shared by name.

    Parts named `required` (a write's RETURNING, a SELECT … FOR SHARE) must each find a row for
    the batch to stand; `Tx.run_batch` says which did, and the caller rolls the transaction
    back when one did not. On PostgreSQL every part is then a CTE, and the statement selects
    how many rows each required part returned (so a read that is not required would not run:
    PostgreSQL skips a plain SELECT nobody selects from).
    """

    __slots__ = ("parts", "required", "together")

    def __init__(self, *parts: Query, required: Sequence[int] = ()) -> None:
        if not parts:
            raise ValueError("a batch of nothing")
        if not all(0 <= n < len(parts) for n in required):
            raise ValueError("a required part that is not in the batch")
        self.parts = parts
        self.required = tuple(required)  # positions in `parts`
        self.together = Query(self._combined)

    def _combined(self, dialect: Dialect) -> ClauseElement:
        statements = [part.statement(dialect) for part in self.parts]
        if self.required:
            ctes = [statement.cte(f"part{n}") for n, statement in enumerate(statements)]
            counted = select(
                *(
                    select(func.count()).select_from(ctes[n]).scalar_subquery()
                    for n in self.required
                )
            )
            return cast(ClauseElement, counted.add_cte(*ctes))
        *ctes, last = statements
        if not ctes:
            return cast(ClauseElement, last)
        return cast(
            ClauseElement, last.add_cte(*(cte.cte(f"part{n}") for n, cte in enumerate(ctes)))
        )


class Together:
    """Reads and writes that go together, run as one: on PostgreSQL one statement (the writes
    data-modifying CTEs, the reads joined beside the first write's RETURNING rows); on SQLite
    the reads first, then the writes, in the caller's transaction.

    Either way the reads see the database as it was before the writes, the snapshot a count
    taken before its own events are recorded wants. Each read finds at most one row, whose
    first column is never NULL (how a missing row is told apart); so is the first column the
    first write returns. Parameters are shared by name.
    """

    __slots__ = ("reads", "together", "writes")

    def __init__(self, reads: Sequence[Query], writes: Sequence[Query]) -> None:
        if not reads or not writes:
            raise ValueError("together: at least one read and one write")
        self.reads = tuple(reads)
        self.writes = tuple(writes)
        self.together = Query(self._combined)

    def _combined(self, dialect: Dialect) -> ClauseElement:
        ctes = [w.statement(dialect).cte(f"write{n}") for n, w in enumerate(self.writes)]
        reads = [r.statement(dialect).subquery(f"read{n}") for n, r in enumerate(self.reads)]
        # One row however many the reads found and the first write returned (none included).
        joined: Any = select(literal(1).label("one")).subquery("one")
        for part in (*reads, ctes[0]):
            joined = joined.outerjoin(part, true())
        columns = [column for part in (*reads, ctes[0]) for column in part.c]
        return cast(ClauseElement, select(*columns).select_from(joined).add_cte(*ctes))

    def split(self, dialect: Dialect, rows: Sequence[Row]) -> tuple[list[Row | None], list[Row]]:
        """The combined statement's rows as each read's row and the first write's rows."""
        found: list[Row | None] = []
        start = 0
        for read in self.reads:
            width = len(read.compiled(dialect).results)
            row = rows[0][start : start + width]
            found.append(row if row[0] is not None else None)
            start += width
        written = [row[start:] for row in rows if row[start] is not None]
        return found, written


class Tx:
    """One transaction on one connection; what each method reads is processed as SQLAlchemy
    would. Driver errors other than `Conflict` pass through unchanged."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    @property
    def postgresql(self) -> bool:
        return self.dialect.name == "postgresql"

    async def all(self, query: Query, **params: Any) -> list[Row]:
        compiled = query.compiled(self.dialect)
        return compiled.rows(await self._fetch(compiled.sql, compiled.args(params)))

    async def first(self, query: Query, **params: Any) -> Row | None:
        rows = await self.all(query, **params)
        return rows[0] if rows else None

    async def scalar(self, query: Query, **params: Any) -> Any:
        row = await self.first(query, **params)
        return None if row is None else row[0]

    async def run(self, query: Query, **params: Any) -> int:
        """Execute a statement that returns no rows; how many rows it changed."""
        compiled = query.compiled(self.dialect)
        return await self._run(compiled.sql, compiled.args(params))

    async def run_batch(self, batch: Batch, **params: Any) -> list[bool]:
        """Execute a `Batch` with the same parameters; for each of its required parts, whether
        it found a row."""
        if self.postgresql:
            if not batch.required:
                await self.run(batch.together, **params)
                return []
            counts = await self.first(batch.together, **params)
            assert counts is not None
            return [bool(count) for count in counts]
        found = {}
        for n, part in enumerate(batch.parts):
            if n in batch.required:
                found[n] = await self.first(part, **params) is not None
            else:
                await self.run(part, **params)
        return [found[n] for n in batch.required]

    async def run_together(
        self, together: Together, **params: Any
    ) -> tuple[list[Row | None], list[Row]]:
        """Execute a `Together` with the same parameters: each read's row (None when it found
        none) and the rows the first write returned."""
        if self.postgresql:
            return together.split(self.dialect, await self.all(together.together, **params))
        found = [await self.first(read, **params) for read in together.reads]
        first, *rest = together.writes
        written = await self.all(first, **params)
        for write in rest:
            await self.run(write, **params)
        return found, written

    async def lock(self, *ids: int) -> None:
        """Take PostgreSQL's transaction-scoped advisory locks `ids`, in that order: one
        statement, whose select list PostgreSQL evaluates in order."""
        raise NotImplementedError("advisory locks are PostgreSQL's")

    async def _fetch(self, sql: str, args: list[Any]) -> Sequence[Sequence[Any]]:
        raise NotImplementedError

    async def _run(self, sql: str, args: list[Any]) -> int:
        raise NotImplementedError


class _SqliteTx(Tx):
    """sqlite3 calls run inline in the event loop (see `InlineConnection`), which hands a call
    that finds the database locked to its thread to wait there. Transactions begin as
    SQLAlchemy's do on SQLite: at the first write."""

    def __init__(self, dialect: Dialect, connection: InlineConnection) -> None:
        super().__init__(dialect)
        self._connection = connection
        self._raw = connection.sqlite

    async def _fetch(self, sql: str, args: list[Any]) -> Sequence[Sequence[Any]]:
        raw = self._raw

        def fetch() -> list[Any]:
            return raw.execute(sql, args).fetchall()

        rows: list[Any] = await self._call(fetch)
        return rows

    async def _run(self, sql: str, args: list[Any]) -> int:
        raw = self._raw

        def run() -> int:
            return raw.execute(sql, args).rowcount

        return int(await self._call(run))

    async def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            return await self._connection.call(fn)
        except sqlite3.IntegrityError as exc:
            if exc.sqlite_errorcode in _SQLITE_CONFLICTS:
                raise Conflict() from exc
            raise

    async def commit(self) -> None:
        await self._connection.call(self._raw.commit)

    async def rollback(self) -> None:
        await self._connection.call(self._raw.rollback)


_SQLITE_CONFLICTS = frozenset(
    {sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE}
)


class _PostgresTx(Tx):
    """asyncpg calls on the lease's connection. BEGIN goes with the first statement (in the
    same round trip when that is `lock`), so a connection found dead by that first round trip
    can be swapped for a fresh one: nothing has run on it yet (see `_Lease`)."""

    def __init__(self, dialect: Dialect, lease: _Lease, *, atomic: bool) -> None:
        super().__init__(dialect)
        self._lease = lease
        self._atomic = atomic
        self._open = False  # BEGIN sent, COMMIT or ROLLBACK not yet

    async def _fetch(self, sql: str, args: list[Any]) -> Sequence[Sequence[Any]]:
        rows: list[Any] = await self._call(lambda connection: connection.fetch(sql, *args))
        return rows

    async def _run(self, sql: str, args: list[Any]) -> int:
        status: str = await self._call(lambda connection: connection.execute(sql, *args))
        # "UPDATE 3", "INSERT 0 1", "DELETE 0": the count is the last word.
        last = status.rpartition(" ")[2]
        return int(last) if last.isdigit() else 0

    async def lock(self, *ids: int) -> None:
        # Integers only, written into the statement: without parameters it goes by the simple
        # protocol, which carries several statements in one round trip, so BEGIN rides along.
        taken = "SELECT " + ", ".join(f"pg_advisory_xact_lock('{int(id_)}'::bigint)" for id_ in ids)
        await self._call(
            lambda connection: connection.execute(taken),
            opening=lambda connection: connection.execute(f"BEGIN; {taken}"),
        )

    async def _call(self, statement: _Statement, opening: _Statement | None = None) -> Any:
        first = self._lease.fresh
        try:
            return await self._begun(statement, opening)
        except asyncpg.UniqueViolationError as exc:
            raise Conflict() from exc
        except Exception:
            if not (first and self._lease.connection.is_closed()):
                raise
        # The connection died (the server restarted or ended it, mostly while it sat in the
        # pool) under this transaction's first statement: whatever that began died with it,
        # so run the same statement on a new one.
        self._open = False
        await self._lease.renew()
        try:
            return await self._begun(statement, opening)
        except asyncpg.UniqueViolationError as exc:
            raise Conflict() from exc

    async def _begun(self, statement: _Statement, opening: _Statement | None) -> Any:
        """`statement`, after BEGIN if the transaction has not begun; `opening` is the same
        statement with BEGIN in front, where it can take it."""
        connection = self._lease.connection
        self._lease.fresh = False
        if self._atomic and not self._open:
            # Open from here on, even if this fails: a ROLLBACK where none began only warns.
            self._open = True
            if opening is not None:
                return await opening(connection)
            await connection.execute("BEGIN")
        return await statement(connection)

    async def commit(self) -> None:
        await self._end("COMMIT")

    async def rollback(self) -> None:
        await self._end("ROLLBACK")

    async def _end(self, how: str) -> None:
        if self._open:
            self._open = False
            await self._lease.connection.execute(how)


class _Kept:
    """PostgreSQL connections the direct path keeps between its transactions.

    Taking a connection from SQLAlchemy's pool and giving it back costs two greenlet switches
    and the pool's bookkeeping: about as much CPU as a statement, several times per update.
    A connection a transaction ended cleanly (committed, or rolled back after an error) is put
    here instead, as it is; the next transaction takes it without the pool. To the pool they
    stay checked out, so no more are kept than half of all the pool may open
    (`storage.engine.keepable`), and sessions always find the rest. The engine's dispose()
    closes them.
    """

    def __init__(self, engine: Engine) -> None:
        self.idle: list[PoolProxiedConnection] = []
        self.limit = keepable(engine)
        event.listen(engine, "engine_disposed", self._close)

    def _close(self, _engine: Engine) -> None:
        # Inside AsyncEngine.dispose()'s greenlet, where closing can await.
        idle, self.idle = self.idle, []
        for pooled in idle:
            pooled.invalidate()


_KEPT: weakref.WeakKeyDictionary[Engine, _Kept] = weakref.WeakKeyDictionary()


def _kept(engine: Engine) -> _Kept:
    kept = _KEPT.get(engine)
    if kept is None:
        kept = _KEPT[engine] = _Kept(engine)
    return kept


class _Lease:
    """A connection for one transaction: a kept one (see `_Kept`), or one from the engine's
    pool.

    Rather than pinging every connection it hands out (SQLAlchemy's `pool_pre_ping`, three
    round trips on asyncpg, several times per update), the pool refuses connections the driver
    already knows are closed (see `storage.engine`), a kept connection is checked the same way,
    and a transaction whose very first round trip finds its connection dead takes a new one
    once. Either way nothing is lost: no statement has run on the dead connection.
    """

    def __init__(self, engine: Engine, kept: _Kept) -> None:
        self._engine = engine
        self._kept = kept
        self._pooled: PoolProxiedConnection | None = None
        self.fresh = True

    async def take(self) -> Any:
        self.fresh = True
        idle = self._kept.idle
        while idle:
            pooled = idle.pop()
            connection = pooled.driver_connection
            if connection is not None and not connection.is_closed():
                self._pooled = pooled
                return connection
            await greenlet_spawn(pooled.invalidate)
        # Straight from the pool: an AsyncConnection around it would cost twice the checkout.
        # The engine's pool of the moment: dispose() replaces it with a new one.
        self._pooled = await greenlet_spawn(self._engine.pool.connect)
        return self._pooled.driver_connection

    @property
    def connection(self) -> Any:
        assert self._pooled is not None
        return self._pooled.driver_connection

    async def renew(self) -> None:
        await self.invalidate()
        await self.take()

    async def invalidate(self) -> None:
        """The pool must not hand this connection out again."""
        if self._pooled is not None:
            await greenlet_spawn(self._pooled.invalidate)
            self._pooled = None

    async def give_back(self, *, clean: bool) -> None:
        """`clean`: no transaction is open on it, so it may be kept as it is."""
        pooled, self._pooled = self._pooled, None
        if pooled is None:
            return
        if clean and len(self._kept.idle) < self._kept.limit:
            self._kept.idle.append(pooled)
            return
        # The pool resets it on the way in (a rollback, a no-op after a commit).
        await greenlet_spawn(pooled.close)


class Direct:
    """Transactions for `Query` objects on the connections of one engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine.sync_engine
        self._kept = _kept(self._engine)
        self.dialect = engine.dialect

    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """Committed when the block ends, rolled back when it raises."""
        return self._connected(atomic=True)

    def single(self) -> AbstractAsyncContextManager[Tx]:
        """For one statement (or one `Batch`) on its own, which is atomic and sees one snapshot
        by itself: on PostgreSQL no BEGIN and COMMIT go around it, two round trips fewer. Only
        for a read, or a write whose second run changes nothing more (a delete, values set
        outright, a row whose key makes a second insert a Conflict): a connection that dies
        under the statement cannot say whether it ran, and it is run again on a new one."""
        return self._connected(atomic=False)

    @asynccontextmanager
    async def _connected(self, *, atomic: bool) -> AsyncIterator[Tx]:
        lease = _Lease(self._engine, self._kept)
        driver = await lease.take()
        clean = False
        try:
            tx: _SqliteTx | _PostgresTx
            if isinstance(driver, InlineConnection):
                tx = _SqliteTx(self.dialect, driver)
            elif isinstance(driver, asyncpg.Connection):
                tx = _PostgresTx(self.dialect, lease, atomic=atomic)
            else:  # pragma: no cover - create_engine makes only these two
                raise TypeError(f"no direct access to {type(driver).__name__}")
            try:
                yield tx
            except BaseException:
                try:
                    await tx.rollback()
                except Exception:
                    # The connection is broken (the server went away). The error that brought
                    # us here is the one to raise.
                    await lease.invalidate()
                else:
                    clean = True
                raise
            await tx.commit()
            clean = True
        finally:
            await lease.give_back(clean=clean)


def direct(sessions: async_sessionmaker[AsyncSession]) -> Direct:
    """Direct access to the engine `sessions` are bound to. Cheap to make: the compiled
    statements live on the `Query` objects, not here."""
    engine = sessions.kw["bind"]
    if not isinstance(engine, AsyncEngine):
        raise TypeError("the session factory is not bound to an async engine")
    return Direct(engine)
