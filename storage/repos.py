"""Reading and writing what the conversation keeps: one short transaction per call.

Callers get plain records; encryption and blind indexes stay inside this module and the vault.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TypeAlias

from sqlalchemy import BigInteger, bindparam, delete, exists, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.direct import Batch, Conflict, Query, Tx, direct
from storage.models import (
    AuditEvent,
    Base,
    Conversation,
    HandledUpdate,
    Link,
    TelegramUser,
    utcnow,
)
from storage.vault import Vault


@dataclass(frozen=True, slots=True)
class UserInfo:
    id: int
    username: str | None = None
    first_name: str | None = None
    language_code: str | None = None


@dataclass(slots=True)
class ConversationRecord:
    step: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LinkRecord:
    telegram_user_id: int
    backend: str
    auth_user_id: str
    identifier_kind: str
    identifier_value: str
    session_id: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    signed_up: bool = False
    linked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    event: str
    backend: str | None = None
    auth_user_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


# Other parts' erasure of a person's rows, in the transaction of the erasure.
SessionWork: TypeAlias = Callable[[AsyncSession], Awaitable[None]]


class Unchanged:
    """The link of `Changes` when the update leaves it as it is."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = Unchanged()


@dataclass(slots=True)
class Changes:
    """Everything one update changes, written in one transaction."""

    user: UserInfo
    conversation: ConversationRecord | None
    link: LinkRecord | Unchanged | None = UNCHANGED  # None removes the link
    audit: list[AuditRecord] = field(default_factory=list)
    erase: bool = False  # remove every row about the user; the rest is then ignored
    work: list[Work] = field(default_factory=list)  # run first, in the same transaction
    update_id: int | None = None  # recorded as handled by the same transaction


@dataclass(frozen=True, slots=True)
class Loaded:
    """What one update starts from."""

    conversation: ConversationRecord | None
    link: LinkRecord | None
    handled: bool  # the update was handled before: a redelivery, to be skipped


class Stale(Exception):
    """Work handed over by a backend found that what it was to make final no longer stands (a
    code used or an account erased meanwhile); the whole outcome was rolled back."""


@dataclass(frozen=True, slots=True)
class Must:
    """A statement of `Work` that must find a row (a write's RETURNING, a SELECT … FOR SHARE);
    when it finds none, `stale` is raised and the whole outcome rolls back."""

    query: Query
    stale: Stale


@dataclass(frozen=True, slots=True)
class Work:
    """Database work another part (an auth backend) needs done in the transaction that stores
    an update's outcome, e.g. using up the code whose check produced the link being written.

    Its statements join the outcome's `Batch`, after the update's handled row and before the
    outcome's own rows: on PostgreSQL one statement with them. So they follow the batch's
    rules (no row touched twice), and `params` are named apart from the outcome's (`user_id`,
    `now`, the link's fields...): a name given twice is refused.
    """

    statements: tuple[Query | Must, ...]
    params: Mapping[str, Any]


class Duplicate(Exception):
    """The update was recorded as handled meanwhile (a redelivery raced it); nothing was written."""


def insert_for(dialect: Dialect, model: type[Base]) -> Any:
    """INSERT with ON CONFLICT (an upsert), in the dialect's own construct."""
    if dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


# The statements of every update, compiled once (see storage.direct).
_USER = bindparam("user_id", type_=BigInteger)
_ME = select(_USER.label("id")).subquery()
# A link's columns in the order `Store._link_record` takes them, read by a query or off a row.
_LINK_READ = (
    Link.telegram_user_id,
    Link.backend,
    Link.auth_user_id,
    Link.identifier_kind,
    Link.identifier_enc,
    Link.session_id,
    Link.state_enc,
    Link.signed_up,
    Link.linked_at,
)
_LOAD = Query(
    select(
        exists().where(HandledUpdate.update_id == bindparam("update_id", type_=BigInteger)),
        Conversation.step,
        Conversation.data_enc,
        *_LINK_READ,
    )
    .select_from(_ME)
    .outerjoin(Conversation, Conversation.telegram_user_id == _ME.c.id)
    .outerjoin(Link, Link.telegram_user_id == _ME.c.id)
)
_HANDLED = Query(insert(HandledUpdate).values(update_id=bindparam("update_id"), at=bindparam("at")))
_USER_FIELDS = ("username", "first_name", "language_code")


def _upsert_user(dialect: Dialect) -> Any:
    """One statement, not a read and then a write; the row changes only when the person's
    Telegram name or language did."""
    values: dict[str, Any] = {name: bindparam(name) for name in _USER_FIELDS}
    changed = or_(*(getattr(TelegramUser, k).is_distinct_from(v) for k, v in values.items()))
    return (
        insert_for(dialect, TelegramUser)
        .values(id=_USER, created_at=bindparam("now"), updated_at=bindparam("now"), **values)
        .on_conflict_do_update(
            index_elements=[TelegramUser.id],
            set_={**values, "updated_at": bindparam("now")},
            where=changed,
        )
    )


def _upsert_conversation(dialect: Dialect) -> Any:
    values: dict[str, Any] = {
        "step": bindparam("step"),
        "data_enc": bindparam("data"),
        "updated_at": bindparam("now"),
    }
    return (
        insert_for(dialect, Conversation)
        .values(telegram_user_id=_USER, **values)
        .on_conflict_do_update(index_elements=[Conversation.telegram_user_id], set_=values)
    )


def _upsert_link(dialect: Dialect) -> Any:
    """A link replaces whatever link the person had, in one statement."""
    values: dict[str, Any] = {name: bindparam(name) for name in _LINK_FIELDS}
    return (
        insert_for(dialect, Link)
        .values(**values)
        .on_conflict_do_update(index_elements=[Link.telegram_user_id], set_=values)
    )


@functools.cache
def _audits(count: int) -> Query:
    """`count` audit entries of the user at `now` (event0, backend0, ... detail0, event1, ...)."""
    return Query(
        insert(AuditEvent).values(
            [
                {"at": bindparam("now"), "telegram_user_id": _USER}
                | {name: bindparam(f"{name}{n}") for name in _AUDIT_FIELDS}
                for n in range(count)
            ]
        )
    )


_LINK_FIELDS = (
    "telegram_user_id",
    "backend",
    "auth_user_id",
    "session_id",
    "identifier_kind",
    "identifier_index",
    "identifier_enc",
    "state_enc",
    "signed_up",
    "linked_at",
)
_AUDIT_FIELDS = ("event", "backend", "auth_user_id", "detail")
_SAVE_USER = Query(_upsert_user)
_SAVE_CONVERSATION = Query(_upsert_conversation)
_DROP_CONVERSATION = Query(delete(Conversation).where(Conversation.telegram_user_id == _USER))
_DROP_LINK = Query(delete(Link).where(Link.telegram_user_id == _USER))
_SAVE_LINK = Query(_upsert_link)


@functools.cache
def _writes(
    handled: bool,
    work: tuple[Query, ...],
    required: tuple[int, ...],
    conversation: bool,
    link: tuple[Query, ...],
    audits: int,
) -> Batch:
    """The statements of one update's outcome, for its shape: whether the update is recorded
    as handled here, the statements of other parts' work and which of them must find a row
    (positions in `work`), whether a conversation goes on, the link's statement (none when it
    stays as it is) and how many audit entries it adds. Each touches a different row."""
    first = (_HANDLED,) if handled else ()
    return Batch(
        *first,
        *work,
        _SAVE_USER,
        _SAVE_CONVERSATION if conversation else _DROP_CONVERSATION,
        *link,
        *((_audits(audits),) if audits else ()),
        required=[len(first) + n for n in required],
    )


class Store:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        vault: Vault,
        *,
        after_erase: Callable[[], Awaitable[object]] | None = None,
        erase_also: Sequence[Callable[[int], SessionWork]] = (),
    ) -> None:
        self._sessions = sessions
        self._direct = direct(sessions)
        self._vault = vault
        # Other parts' rows about a person (the gate's), erased in the same transaction.
        self._erase_also = tuple(erase_also)
        # Run once an erasure is committed: on SQLite the deleted rows still sit in the log.
        self._after_erase = after_erase

    async def load(self, user_id: int, update_id: int | None = None) -> Loaded:
        """The person's conversation and link, and whether the update was handled: one query."""
        async with self._direct.single() as tx:
            row = await tx.first(_LOAD, user_id=user_id, update_id=update_id)
        assert row is not None
        handled, step, data_enc, linked, *link = row
        return Loaded(
            ConversationRecord(step, self._vault.decrypt(data_enc) if data_enc else {})
            if step is not None
            else None,
            self._link_record(linked, *link) if linked is not None else None,
            bool(handled),
        )

    async def apply(self, changes: Changes) -> None:
        """Write one update's outcome, all or nothing; raises Duplicate for a redelivery, or
        the work's Stale when what it was to make final no longer stands.

        The outcome is one `Batch`: on PostgreSQL one statement, where a redelivery's handled
        row makes the whole of it fail, whatever the work would have found. Work that must
        find rows runs in a transaction, rolled back when one is missing.
        """
        if changes.erase:
            await self._apply_erasure(changes)
            return
        checked = any(isinstance(s, Must) for work in changes.work for s in work.statements)
        try:
            async with self._direct.transaction() if checked else self._direct.single() as tx:
                await self._write(tx, changes)
        except Conflict:
            # Every other write is an upsert or a new row: only the handled row can conflict.
            raise Duplicate(changes.update_id) from None

    async def _apply_erasure(self, changes: Changes) -> None:
        """Erasure touches other parts' rows too (the gate's), written through sessions."""
        if changes.work:
            raise ValueError("an erasure carries no other work")
        async with self._sessions.begin() as session:
            if changes.update_id is not None:
                session.add(HandledUpdate(update_id=changes.update_id))
                try:
                    await session.flush()
                except IntegrityError:
                    raise Duplicate(changes.update_id) from None
            await self._erase(session, changes.user.id)
        if self._after_erase is not None:
            await self._after_erase()

    async def forget_handled(self, older_than: datetime) -> int:
        """Drop the record of updates Telegram can no longer redeliver (it keeps them 24 h)."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(HandledUpdate).where(HandledUpdate.at < older_than)
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def _write(self, tx: Tx, changes: Changes) -> None:
        """The outcome's rows and the work's statements, the update recorded as handled."""
        user, now, vault, handled = changes.user, utcnow(), self._vault, changes.update_id
        params: dict[str, Any] = {
            "user_id": user.id,
            "username": user.username,
            "first_name": user.first_name,
            "language_code": user.language_code,
            "now": now,
        }
        if handled is not None:
            params |= {"update_id": handled, "at": now}
        record = changes.conversation
        if record is not None:
            params |= {
                "step": record.step,
                "data": vault.encrypt(record.data) if record.data else None,
            }
        link = changes.link
        link_write: tuple[Query, ...] = ()  # none: the link stays as it is
        if link is None:
            link_write = (_DROP_LINK,)
        elif isinstance(link, LinkRecord):
            link_write = (_SAVE_LINK,)
            params |= {
                "telegram_user_id": link.telegram_user_id,
                "backend": link.backend,
                "auth_user_id": link.auth_user_id,
                "session_id": link.session_id,
                "identifier_kind": link.identifier_kind,
                "identifier_index": vault.index(link.identifier_kind, link.identifier_value),
                "identifier_enc": vault.encrypt(link.identifier_value),
                "state_enc": vault.encrypt(link.state) if link.state else None,
                "signed_up": link.signed_up,
                "linked_at": link.linked_at or now,
            }
        for n, entry in enumerate(changes.audit):
            params |= {
                f"event{n}": entry.event,
                f"backend{n}": entry.backend,
                f"auth_user_id{n}": entry.auth_user_id,
                f"detail{n}": entry.detail,
            }
        work: list[Query] = []
        musts: list[Must] = []
        required: list[int] = []
        for each in changes.work:
            if clash := params.keys() & each.params.keys():
                raise ValueError(f"parameters named twice: {sorted(clash)}")
            params |= each.params
            for statement in each.statements:
                if isinstance(statement, Must):
                    required.append(len(work))
                    musts.append(statement)
                    statement = statement.query
                work.append(statement)
        shape = _writes(
            handled is not None,
            tuple(work),
            tuple(required),
            record is not None,
            link_write,
            len(changes.audit),
        )
        found = await tx.run_batch(shape, **params)
        for must, ok in zip(musts, found, strict=True):
            if not ok:
                raise must.stale

    async def get_link(self, user_id: int) -> LinkRecord | None:
        async with self._sessions() as session:
            link = await session.get(Link, user_id)
            return self._link_of(link) if link else None

    async def list_links(self) -> list[LinkRecord]:
        async with self._sessions() as session:
            rows = await session.scalars(select(Link).order_by(Link.linked_at))
            return [self._link_of(row) for row in rows]

    async def audit_for(self, user_id: int) -> list[AuditRecord]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.telegram_user_id == user_id)
                .order_by(AuditEvent.id)
            )
            return [AuditRecord(r.event, r.backend, r.auth_user_id, dict(r.detail)) for r in rows]

    async def _erase(self, session: AsyncSession, user_id: int) -> None:
        """Every row about the user goes; what remains is only that an erasure happened, under a
        keyed pseudonym."""
        await session.execute(delete(Link).where(Link.telegram_user_id == user_id))
        await session.execute(delete(Conversation).where(Conversation.telegram_user_id == user_id))
        await session.execute(delete(AuditEvent).where(AuditEvent.telegram_user_id == user_id))
        await session.execute(delete(TelegramUser).where(TelegramUser.id == user_id))
        for erase in self._erase_also:
            await erase(user_id)(session)
        session.add(
            AuditEvent(
                event="erased", detail={"subject": self._vault.index("telegram", str(user_id))}
            )
        )

    def _link_record(
        self,
        telegram_user_id: int,
        backend: str,
        auth_user_id: str,
        identifier_kind: str,
        identifier_enc: bytes,
        session_id: str | None,
        state_enc: bytes | None,
        signed_up: bool,
        linked_at: datetime | None,
    ) -> LinkRecord:
        return LinkRecord(
            telegram_user_id=telegram_user_id,
            backend=backend,
            auth_user_id=auth_user_id,
            identifier_kind=identifier_kind,
            identifier_value=self._vault.decrypt(identifier_enc),
            session_id=session_id,
            state=self._vault.decrypt(state_enc) if state_enc else {},
            signed_up=bool(signed_up),
            linked_at=linked_at,
        )

    def _link_of(self, row: Link) -> LinkRecord:
        return self._link_record(*(getattr(row, column.key) for column in _LINK_READ))
