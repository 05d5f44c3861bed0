"""Which secret a database is written with, and moving it to another one.

Two rows of `meta` keep it:
- `secret_check`: the check value (`Vault.check`) of the secret the database is written with,
  recorded on first use. A process started with another secret is refused before it reads or
  writes anything, instead of failing on every row it meets.
- `secret_rotation`, while `rotate` moves the data to a new secret (and after an interruption,
  until it runs again): the secret it moves from and to, the table it is at and the last row
  done. Each batch commits with its progress, so an interrupted rotation resumes where it
  stopped, and running it again after it finished does nothing.

`rotate` rewrites, table by table: every encrypted column under the new secret; every blind index
of those rows, recomputed from the decrypted value; and the `local_events` keys and requesters
(the counts behind send caps and lockouts) that are blind indexes of a Telegram user or of an
address some account or link holds, so the limits keep counting across the change.

What it cannot rewrite, because the value behind it is not kept:
- codes in flight (`local_challenges`): stored only as MACs, under the old secret. A bot running
  with the new secret does not find them, so the person is told the code expired and asks for
  a new one; the rows expire within the code's lifetime (10 minutes) and are pruned.
- counts keyed by an address nobody has an account or a link for: they restart from zero under
  the new secret (the total send cap is not keyed and is unaffected); they age out within an
  hour anyway.
- the pseudonym in an "erased" audit entry: the Telegram id behind it was erased. It stays as it
  was, so once the old secret is destroyed nobody can link it to a person any more.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, TypeAlias

from cryptography.fernet import InvalidToken
from sqlalchemy import func, inspect, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from storage.engine import SessionFactory
from storage.models import Conversation, Link, LocalAccount, LocalEvent, Meta, TelegramUser
from storage.vault import Vault

CHECK = "secret_check"
ROTATION = "secret_rotation"

WRONG = (
    "PASSGRAM_SECRET is not the secret this database was written with; set that one "
    "(to change it, see `passgram secret rotate` in the README)"
)


class SecretError(Exception):
    """The secret can't be used with this database; the message is one line for an operator."""


class WrongSecret(SecretError):
    """The database was written with another secret."""


class RotationUnderway(SecretError):
    """A rotation started and did not finish; only a process holding both secrets may run."""


class DatabaseUnavailable(SecretError):
    """The database could not be reached, or has no tables yet."""


@dataclass(frozen=True, slots=True)
class Progress:
    """How far `rotate` got through one table, after a committed batch."""

    table: str
    done: int
    total: int


@dataclass(frozen=True, slots=True)
class Rotated:
    rewritten: int  # rows whose ciphertext or blind index changed in this run
    resumed: bool  # an interrupted rotation was carried on
    needed: bool  # False: the database was already written with the new secret


@dataclass(frozen=True, slots=True)
class _Rotation:
    source: str  # check value of the secret moved from
    target: str  # ... and to
    table: str | None  # None: every table is done, only the check value is left to write
    after: Any = None  # primary key of the last row done in `table`

    def dump(self) -> str:
        return json.dumps(
            {"from": self.source, "to": self.target, "table": self.table, "after": self.after}
        )

    @classmethod
    def load(cls, raw: str) -> _Rotation:
        data = json.loads(raw)
        return cls(data["from"], data["to"], data["table"], data["after"])


# -- checking at start ------------------------------------------------------------------------


async def verify_or_record(sessions: SessionFactory, vault: Vault, *, record: bool = True) -> None:
    """Refuse a vault whose secret the database was not written with; on first use, record
    the secret's check value (unless `record` is False: a read-only check).

    A database written before check values existed is judged by its data: a sample of every
    encrypted column must decrypt.
    """
    async with _reading(sessions) as session:
        recorded, rotation = await _state(session)
        if rotation is not None:
            _judge_rotation(rotation, vault)
            return
        check = recorded if recorded is not None else await _probe(session, vault)
    if check != vault.check and check not in vault.old_checks:
        raise WrongSecret(WRONG)
    if record and recorded is None:
        await _record(sessions, vault, check)


async def is_written(sessions: SessionFactory) -> bool:
    """Whether the database holds a check value or encrypted data, i.e. a secret was used."""
    async with _reading(sessions) as session:
        check, rotation = await _state(session)
        if check is not None or rotation is not None:
            return True
        return any([token async for token in _samples(session)])


def _judge_rotation(rotation: _Rotation, vault: Vault) -> None:
    if rotation.target != vault.check:
        if rotation.source == vault.check:
            raise RotationUnderway(
                "PASSGRAM_SECRET: this database is being moved to a new secret (`passgram "
                "secret rotate`); start with the new one in PASSGRAM_SECRET and this one in "
                "PASSGRAM_SECRET_OLD"
            )
        raise WrongSecret(WRONG)
    if rotation.source not in vault.old_checks:
        raise RotationUnderway(
            "PASSGRAM_SECRET_OLD: a change of secret is under way; keep the old secret in "
            "PASSGRAM_SECRET_OLD until `passgram secret rotate` has finished"
        )


async def _probe(session: AsyncSession, vault: Vault) -> str:
    """The check value of the secret the data was written with, judged from samples."""
    written = {vault.written_with(token) async for token in _samples(session)}
    if None in written:
        raise WrongSecret(WRONG)
    old = [check for check in vault.old_checks if check in written]
    # Anything still under an old secret means the database is not yet moved off it.
    return old[0] if old else vault.check


async def _samples(session: AsyncSession) -> AsyncIterator[bytes]:
    for column in _ENCRYPTED:
        token = await session.scalar(select(column).where(column.is_not(None)).limit(1))
        if token is not None:
            yield token


async def _record(sessions: SessionFactory, vault: Vault, check: str) -> None:
    try:
        async with sessions.begin() as session:
            if await session.get(Meta, CHECK) is None:
                session.add(Meta(name=CHECK, value=check))
    except IntegrityError:
        # Another process recorded one first: it must be the same secret's.
        async with sessions() as session:
            recorded = await session.get(Meta, CHECK)
        if recorded is None or recorded.value not in (vault.check, *vault.old_checks):
            raise WrongSecret(WRONG) from None


# -- rotation ---------------------------------------------------------------------------------


async def rotate(
    sessions: SessionFactory,
    vault: Vault,
    *,
    batch_size: int = 500,
    progress: Callable[[Progress], None] | None = None,
) -> Rotated:
    """Move every row written under the vault's old secret to its current one.

    Safe while the bot runs, provided every running process holds both secrets: a row the bot
    rewrites meanwhile is already under the new secret and is left as the bot wrote it.
    """
    if not vault.old_checks:
        raise SecretError("PASSGRAM_SECRET_OLD: set it to the secret the database is written with")
    await verify_or_record(sessions, vault)
    async with _reading(sessions) as session:
        check, rotation = await _state(session)
    resumed = rotation is not None
    if rotation is None:
        if check == vault.check:
            return Rotated(rewritten=0, resumed=False, needed=False)
        assert check is not None  # recorded above
        try:
            async with sessions.begin() as session:
                session.add(
                    Meta(
                        name=ROTATION,
                        value=_Rotation(check, vault.check, next(iter(_TABLES))).dump(),
                    )
                )
        except IntegrityError:
            resumed = True  # another run started it a moment ago; carry on with it
    rewritten = 0
    counted: tuple[str, int, int] | None = None  # table, rows done so far, rows in it
    while True:
        async with sessions.begin() as session:
            # A write first: it takes the row (and on SQLite the database) for this batch, so
            # two runs at once take turns instead of doing a batch twice.
            await session.execute(
                update(Meta).where(Meta.name == ROTATION).values(value=Meta.value)
            )
            row = await session.get(Meta, ROTATION)
            if row is None:  # finished by another run meanwhile
                break
            rotation = _Rotation.load(row.value)
            _judge_rotation(rotation, vault)
            if rotation.table is None:
                await _finish(session, row, rotation)
                break
            table = _TABLES[rotation.table]
            if counted is None or counted[0] != rotation.table:
                counted = (rotation.table, *await _count(session, table.pk, rotation.after))
            last, seen, changed = await table.batch(session, vault, rotation.after, batch_size)
            rewritten += changed
            row.value = _advance(rotation, last if seen == batch_size else None).dump()
        name, done, total = counted
        counted = (name, done + seen, max(total, done + seen))
        if progress is not None:
            progress(Progress(name, counted[1], counted[2]))
    return Rotated(rewritten=rewritten, resumed=resumed, needed=True)


def _advance(rotation: _Rotation, last: Any) -> _Rotation:
    """The cursor after a batch: on in the same table, or (`last` None) at the next one."""
    if last is not None:
        return replace(rotation, after=last)
    names = list(_TABLES)
    following = names.index(rotation.table) + 1 if rotation.table is not None else len(names)
    return replace(rotation, table=names[following] if following < len(names) else None, after=None)


async def _finish(session: AsyncSession, row: Meta, rotation: _Rotation) -> None:
    """The last step, in one transaction: the database is now written with the new secret."""
    check = await session.get(Meta, CHECK)
    if check is None:
        session.add(Meta(name=CHECK, value=rotation.target))
    else:
        check.value = rotation.target
    await session.delete(row)


async def _count(
    session: AsyncSession, pk: InstrumentedAttribute[Any], after: Any
) -> tuple[int, int]:
    total = await session.scalar(select(func.count(pk)))
    done = 0 if after is None else await session.scalar(select(func.count(pk)).where(pk <= after))
    return done or 0, total or 0


Batch: TypeAlias = tuple[Any, int, int]  # last primary key seen, rows seen, rows changed


@dataclass(frozen=True, slots=True)
class _Table:
    pk: InstrumentedAttribute[Any]
    batch: Callable[[AsyncSession, Vault, Any, int], Awaitable[Batch]]


def _after(pk: InstrumentedAttribute[Any], after: Any) -> Any:
    return pk > after if after is not None else pk.is_not(None)


def _moved(vault: Vault, token: bytes, where: str) -> tuple[bytes | None, Any]:
    """`token` under the current secret (None: it already is) and the value it holds."""
    try:
        return vault.reencrypt(token), vault.decrypt(token)
    except InvalidToken:
        raise WrongSecret(
            f"{where}: encrypted under neither PASSGRAM_SECRET nor PASSGRAM_SECRET_OLD"
        ) from None


async def _accounts(session: AsyncSession, vault: Vault, after: Any, limit: int) -> Batch:
    rows = (
        await session.execute(
            select(
                LocalAccount.id,
                LocalAccount.identifier_kind,
                LocalAccount.identifier_index,
                LocalAccount.identifier_enc,
            )
            .where(_after(LocalAccount.id, after))
            .order_by(LocalAccount.id)
            .limit(limit)
        )
    ).all()
    changed, indexes = 0, []
    for account_id, kind, index, token in rows:
        enc, value = _moved(vault, token, f"local account {account_id}")
        keys = vault.indexes(kind, value)
        indexes.append(keys)
        if enc is None and index == keys[0]:
            continue
        if index != keys[0]:
            twin = await session.scalar(
                select(LocalAccount.id).where(
                    LocalAccount.identifier_index == keys[0], LocalAccount.id != account_id
                )
            )
            if twin is not None:
                raise SecretError(
                    f"local accounts {account_id} and {twin} hold the same address; "
                    "keep one (delete the other's row), then run `passgram secret rotate` again"
                )
        done = await session.execute(
            update(LocalAccount)
            .where(LocalAccount.id == account_id, LocalAccount.identifier_enc == token)
            .values(identifier_index=keys[0], identifier_enc=enc or token)
            .execution_options(synchronize_session=False)
        )
        changed += _rowcount(done)
    await _rekey_events(session, indexes)
    return (rows[-1].id if rows else None), len(rows), changed


async def _telegram_users(session: AsyncSession, vault: Vault, after: Any, limit: int) -> Batch:
    ids = (
        await session.scalars(
            select(TelegramUser.id)
            .where(_after(TelegramUser.id, after))
            .order_by(TelegramUser.id)
            .limit(limit)
        )
    ).all()
    # Nothing of the row itself is keyed; the sends counted against the person are.
    await _rekey_events(session, [vault.indexes("telegram", str(user_id)) for user_id in ids])
    return (ids[-1] if ids else None), len(ids), 0


async def _links(session: AsyncSession, vault: Vault, after: Any, limit: int) -> Batch:
    rows = (
        await session.execute(
            select(
                Link.telegram_user_id,
                Link.identifier_kind,
                Link.identifier_index,
                Link.identifier_enc,
                Link.state_enc,
            )
            .where(_after(Link.telegram_user_id, after))
            .order_by(Link.telegram_user_id)
            .limit(limit)
        )
    ).all()
    changed, indexes = 0, []
    for user_id, kind, index, token, state in rows:
        where = f"link of Telegram user {user_id}"
        enc, value = _moved(vault, token, where)
        state_enc = _moved(vault, state, where)[0] if state is not None else None
        keys = vault.indexes(kind, value)
        indexes.append(keys)
        if enc is None and state_enc is None and index == keys[0]:
            continue
        # Compared on both ciphertexts: a link the bot rewrote meanwhile is left as it is.
        done = await session.execute(
            update(Link)
            .where(
                Link.telegram_user_id == user_id,
                Link.identifier_enc == token,
                Link.state_enc.is_(None) if state is None else Link.state_enc == state,
            )
            .values(
                identifier_index=keys[0],
                identifier_enc=enc or token,
                state_enc=state_enc or state,
            )
            .execution_options(synchronize_session=False)
        )
        changed += _rowcount(done)
    await _rekey_events(session, indexes)
    return (rows[-1].telegram_user_id if rows else None), len(rows), changed


async def _conversations(session: AsyncSession, vault: Vault, after: Any, limit: int) -> Batch:
    rows = (
        await session.execute(
            select(Conversation.telegram_user_id, Conversation.data_enc)
            .where(_after(Conversation.telegram_user_id, after))
            .order_by(Conversation.telegram_user_id)
            .limit(limit)
        )
    ).all()
    changed = 0
    for user_id, token in rows:
        if token is None:
            continue
        enc = _moved(vault, token, f"conversation of Telegram user {user_id}")[0]
        if enc is None:
            continue
        done = await session.execute(
            update(Conversation)
            .where(Conversation.telegram_user_id == user_id, Conversation.data_enc == token)
            .values(data_enc=enc)
            .execution_options(synchronize_session=False)
        )
        changed += _rowcount(done)
    return (rows[-1].telegram_user_id if rows else None), len(rows), changed


async def _rekey_events(session: AsyncSession, indexes: Iterable[Sequence[str]]) -> None:
    """Move send and failure counts from old blind indexes to the current ones: the key they
    are counted under, and the person an address's count came from."""
    current = {old: keys[0] for keys in indexes for old in keys[1:] if old != keys[0]}
    if not current:
        return
    for column in (LocalEvent.key, LocalEvent.requester):
        present = await session.scalars(select(column).where(column.in_(current)).distinct())
        for old in [old for old in present if old is not None]:
            await session.execute(
                update(LocalEvent)
                .where(column == old)
                .values({column: current[old]})
                .execution_options(synchronize_session=False)
            )


def _rowcount(result: Any) -> int:
    return int(result.rowcount or 0)


# Accounts first: they are what a returning person is looked up by.
_TABLES: dict[str, _Table] = {
    "local_accounts": _Table(LocalAccount.id, _accounts),
    "telegram_users": _Table(TelegramUser.id, _telegram_users),
    "links": _Table(Link.telegram_user_id, _links),
    "conversations": _Table(Conversation.telegram_user_id, _conversations),
}
_ENCRYPTED: tuple[InstrumentedAttribute[Any], ...] = (
    LocalAccount.identifier_enc,
    Link.identifier_enc,
    Link.state_enc,
    Conversation.data_enc,
)


# -- reading the state ------------------------------------------------------------------------


@asynccontextmanager
async def _reading(sessions: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A session on a database known to be reachable and to have the `meta` table."""
    async with sessions() as session:
        try:
            conn = await session.connection()
            has_meta = await conn.run_sync(lambda sync: inspect(sync).has_table(Meta.__tablename__))
        except (OSError, DBAPIError) as exc:
            # The driver's own error says most (e.g. InvalidCatalogNameError: no such database).
            orig = exc.orig if isinstance(exc, DBAPIError) else None
            cause = (orig.__cause__ or orig) if orig is not None else exc
            raise DatabaseUnavailable(
                f"DATABASE_URL: the database can't be reached ({type(cause).__name__})"
            ) from None
        if not has_meta:
            raise DatabaseUnavailable(
                "DATABASE_URL: the database has no tables yet, or old ones; "
                "run `passgram db upgrade`"
            )
        yield session


async def _state(session: AsyncSession) -> tuple[str | None, _Rotation | None]:
    result = await session.execute(
        select(Meta.name, Meta.value).where(Meta.name.in_([CHECK, ROTATION]))
    )
    rows: dict[str, str] = {name: value for name, value in result}
    rotation = rows.get(ROTATION)
    return rows.get(CHECK), _Rotation.load(rotation) if rotation is not None else None
