"""Reading and writing what the conversation keeps: one short transaction per call.

Callers get plain records; encryption and blind indexes stay inside this module and the vault.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TypeAlias

from sqlalchemy import BigInteger, delete, exists, false, literal, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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


# Database work another part (an auth backend) needs done in the transaction that stores an
# update's outcome, e.g. using up the code whose check produced the link being written.
Work: TypeAlias = Callable[[AsyncSession], Awaitable[None]]


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


class Duplicate(Exception):
    """The update was recorded as handled meanwhile (a redelivery raced it); nothing was written."""


def _insert(session: AsyncSession, model: type[Base]) -> Any:
    """INSERT with ON CONFLICT (an upsert), in the session's database's dialect."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


class Store:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        vault: Vault,
        *,
        after_erase: Callable[[], Awaitable[object]] | None = None,
        erase_also: Sequence[Callable[[int], Work]] = (),
    ) -> None:
        self._sessions = sessions
        self._vault = vault
        # Other parts' rows about a person (the gate's), erased in the same transaction.
        self._erase_also = tuple(erase_also)
        # Run once an erasure is committed: on SQLite the deleted rows still sit in the log.
        self._after_erase = after_erase

    async def load(self, user_id: int, update_id: int | None = None) -> Loaded:
        """The person's conversation and link, and whether the update was handled: one query."""
        handled = (
            exists().where(HandledUpdate.update_id == update_id)
            if update_id is not None
            else false()
        )
        me = select(literal(user_id, BigInteger).label("id")).subquery()
        query = (
            select(handled.label("handled"), Conversation, Link)
            .select_from(me)
            .outerjoin(Conversation, Conversation.telegram_user_id == me.c.id)
            .outerjoin(Link, Link.telegram_user_id == me.c.id)
        )
        async with self._sessions() as session:
            row = (await session.execute(query)).one()
        return Loaded(
            self._conversation_record(row.Conversation) if row.Conversation else None,
            self._link_record(row.Link) if row.Link else None,
            bool(row.handled),
        )

    async def apply(self, changes: Changes) -> None:
        """Write one update's outcome, all or nothing; raises Duplicate for a redelivery."""
        async with self._sessions.begin() as session:
            if changes.update_id is not None:
                session.add(HandledUpdate(update_id=changes.update_id))
                try:
                    await session.flush()
                except IntegrityError:
                    raise Duplicate(changes.update_id) from None
            for work in changes.work:
                await work(session)
            await self._write(session, changes)
        if changes.erase and self._after_erase is not None:
            await self._after_erase()

    async def forget_handled(self, older_than: datetime) -> int:
        """Drop the record of updates Telegram can no longer redeliver (it keeps them 24 h)."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(HandledUpdate).where(HandledUpdate.at < older_than)
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def _write(self, session: AsyncSession, changes: Changes) -> None:
        user_id = changes.user.id
        if changes.erase:
            await self._erase(session, user_id)
            return
        await self._upsert_user(session, changes.user)
        if changes.conversation is None:
            await session.execute(
                delete(Conversation).where(Conversation.telegram_user_id == user_id)
            )
        else:
            await self._save_conversation(session, user_id, changes.conversation)
        if changes.link is None:
            await session.execute(delete(Link).where(Link.telegram_user_id == user_id))
        elif isinstance(changes.link, LinkRecord):
            await self._save_link(session, changes.link)
        for record in changes.audit:
            session.add(
                AuditEvent(
                    event=record.event,
                    telegram_user_id=user_id,
                    backend=record.backend,
                    auth_user_id=record.auth_user_id,
                    detail=record.detail,
                )
            )

    async def get_link(self, user_id: int) -> LinkRecord | None:
        async with self._sessions() as session:
            link = await session.get(Link, user_id)
            return self._link_record(link) if link else None

    async def list_links(self) -> list[LinkRecord]:
        async with self._sessions() as session:
            rows = await session.scalars(select(Link).order_by(Link.linked_at))
            return [self._link_record(row) for row in rows]

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

    async def _upsert_user(self, session: AsyncSession, info: UserInfo) -> None:
        """One statement, not a read and then a write; the row changes only when the person's
        Telegram name or language did."""
        values = {
            "username": info.username,
            "first_name": info.first_name,
            "language_code": info.language_code,
        }
        insert = _insert(session, TelegramUser).values(id=info.id, **values)
        changed = or_(*(getattr(TelegramUser, k).is_distinct_from(v) for k, v in values.items()))
        await session.execute(
            insert.on_conflict_do_update(
                index_elements=[TelegramUser.id],
                set_={**values, "updated_at": utcnow()},
                where=changed,
            )
        )

    async def _save_conversation(
        self, session: AsyncSession, user_id: int, record: ConversationRecord
    ) -> None:
        values = {
            "step": record.step,
            "data_enc": self._vault.encrypt(record.data) if record.data else None,
            "updated_at": utcnow(),
        }
        insert = _insert(session, Conversation).values(telegram_user_id=user_id, **values)
        await session.execute(
            insert.on_conflict_do_update(
                index_elements=[Conversation.telegram_user_id], set_=values
            )
        )

    async def _save_link(self, session: AsyncSession, record: LinkRecord) -> None:
        await session.execute(delete(Link).where(Link.telegram_user_id == record.telegram_user_id))
        await session.flush()
        session.add(
            Link(
                telegram_user_id=record.telegram_user_id,
                backend=record.backend,
                auth_user_id=record.auth_user_id,
                session_id=record.session_id,
                identifier_kind=record.identifier_kind,
                identifier_index=self._vault.index(record.identifier_kind, record.identifier_value),
                identifier_enc=self._vault.encrypt(record.identifier_value),
                state_enc=self._vault.encrypt(record.state) if record.state else None,
                signed_up=record.signed_up,
                **({"linked_at": record.linked_at} if record.linked_at else {}),
            )
        )

    def _conversation_record(self, row: Conversation) -> ConversationRecord:
        data = self._vault.decrypt(row.data_enc) if row.data_enc else {}
        return ConversationRecord(row.step, data)

    def _link_record(self, row: Link) -> LinkRecord:
        return LinkRecord(
            telegram_user_id=row.telegram_user_id,
            backend=row.backend,
            auth_user_id=row.auth_user_id,
            identifier_kind=row.identifier_kind,
            identifier_value=self._vault.decrypt(row.identifier_enc),
            session_id=row.session_id,
            state=self._vault.decrypt(row.state_enc) if row.state_enc else {},
            signed_up=row.signed_up,
            linked_at=row.linked_at,
        )
