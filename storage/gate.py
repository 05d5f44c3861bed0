"""What the gate keeps: chat settings, who it waits for and until when, who it let in, its
decision log, redeemed deep links. One short transaction per call; callers get plain records.

Deadlines are rows, read with `due` and settled with a conditional delete (`settle`): of two
replicas, or a replica and itself after a restart, only the one whose delete removed the row
acts, and what it decided is written in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias

from sqlalchemy import and_, bindparam, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.direct import Query, direct
from storage.models import (
    DeepLinkUsed,
    GateAdmission,
    GatedChat,
    GateErasure,
    GateLogEntry,
    GateNotice,
    GatePending,
    Link,
    utcnow,
)

PendingKind: TypeAlias = Literal["request", "member"]
ErasureAction: TypeAlias = Literal["decline", "remove", "free"]
Work: TypeAlias = Callable[[AsyncSession], Awaitable[None]]

# The rule of an admission an admin made by hand: it does not depend on a link.
MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class ChatRecord:
    chat_id: int
    title: str
    kind: str
    enabled: bool = False
    mode: str = "join_requests"
    policy: str = "any"
    timeout: int = 600
    require_live_link: bool = True
    bot_rights: tuple[str, ...] | None = None  # None: not known yet
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PendingRecord:
    chat_id: int
    user_id: int
    kind: PendingKind
    deadline_at: datetime
    user_chat_id: int | None = None
    query_id: str | None = None
    name: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AdmissionRecord:
    chat_id: int
    user_id: int
    admitted_at: datetime
    rule: str
    title: str = ""


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One decision. `user_id` None: someone who erased their data since."""

    chat_id: int
    user_id: int | None
    action: str
    rule: str = ""
    actor_id: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    at: datetime | None = None
    id: int | None = None

    def row(self) -> dict[str, str]:
        """The entry as text fields, for CSV."""
        return {
            "id": "" if self.id is None else str(self.id),
            "at": self.at.isoformat() if self.at else "",
            "chat_id": str(self.chat_id),
            "user_id": "" if self.user_id is None else str(self.user_id),
            "action": self.action,
            "rule": self.rule,
            "actor_id": "" if self.actor_id is None else str(self.actor_id),
            "detail": json.dumps(self.detail, sort_keys=True, ensure_ascii=False)
            if self.detail
            else "",
        }


LOG_FIELDS = ("id", "at", "chat_id", "user_id", "action", "rule", "actor_id", "detail")


@dataclass(frozen=True, slots=True)
class ErasureRecord:
    chat_id: int
    user_id: int
    action: ErasureAction
    waiting: bool = False  # they were waiting there (rather than admitted)


class GateStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._direct = direct(sessions)

    # Chats and their settings.

    async def get_chat(self, chat_id: int) -> ChatRecord | None:
        async with self._sessions() as session:
            row = await session.get(GatedChat, chat_id)
            return _chat(row) if row else None

    async def list_chats(self) -> list[ChatRecord]:
        async with self._sessions() as session:
            rows = await session.scalars(select(GatedChat).order_by(GatedChat.chat_id))
            return [_chat(row) for row in rows]

    async def put_chat(self, record: ChatRecord) -> None:
        """Create or replace a chat's row, settings included."""
        values = {
            "chat_id": record.chat_id,
            "title": record.title,
            "kind": record.kind,
            "enabled": record.enabled,
            "mode": record.mode,
            "policy": record.policy,
            "timeout": record.timeout,
            "require_live_link": record.require_live_link,
            "bot_rights": list(record.bot_rights) if record.bot_rights is not None else None,
        }
        async with self._sessions.begin() as session:
            await _upsert(session, GatedChat, values, ("chat_id",), [*values][1:])

    async def note_chat(
        self, chat_id: int, title: str, kind: str, bot_rights: Iterable[str] | None
    ) -> ChatRecord:
        """What Telegram said about a chat and the bot's rights there; settings are kept."""
        values = {
            "chat_id": chat_id,
            "title": title[:255],
            "kind": kind,
            "bot_rights": sorted(set(bot_rights)) if bot_rights is not None else None,
            "updated_at": utcnow(),
        }
        async with self._sessions.begin() as session:
            await _upsert(
                session,
                GatedChat,
                values,
                ("chat_id",),
                ["title", "kind", "bot_rights", "updated_at"],
            )
            row = await session.get(GatedChat, chat_id, populate_existing=True)
            assert row is not None
            return _chat(row)

    async def update_chat(
        self,
        chat_id: int,
        *,
        enabled: bool | None = None,
        mode: str | None = None,
        policy: str | None = None,
        timeout: int | None = None,  # noqa: ASYNC109 (the chat's setting, not a wait)
        require_live_link: bool | None = None,
        log: Sequence[LogEntry] = (),
    ) -> ChatRecord | None:
        """Change some settings of a known chat (None leaves one as it is); None when the chat
        is unknown."""
        changes: dict[str, Any] = {
            name: value
            for name, value in (
                ("enabled", enabled),
                ("mode", mode),
                ("policy", policy),
                ("timeout", timeout),
                ("require_live_link", require_live_link),
            )
            if value is not None
        }
        async with self._sessions.begin() as session:
            row = await session.get(GatedChat, chat_id, with_for_update=True)
            if row is None:
                return None
            for name, value in changes.items():
                setattr(row, name, value)
            row.updated_at = utcnow()
            _add_log(session, log)
            await session.flush()
            return _chat(row)

    # Who the gate waits for.

    async def put_pending(self, record: PendingRecord, log: Sequence[LogEntry] = ()) -> None:
        """Wait for someone (again: a second request replaces the first, deadline included)."""
        values = {
            "chat_id": record.chat_id,
            "user_id": record.user_id,
            "kind": record.kind,
            "user_chat_id": record.user_chat_id,
            "query_id": record.query_id,
            "name": record.name[:128] if record.name else None,
            "deadline_at": record.deadline_at,
            "created_at": record.created_at or utcnow(),
        }
        async with self._sessions.begin() as session:
            await _upsert(session, GatePending, values, ("chat_id", "user_id"), [*values][2:])
            _add_log(session, log)

    async def get_pending(self, chat_id: int, user_id: int) -> PendingRecord | None:
        async with self._sessions() as session:
            row = await session.get(GatePending, (chat_id, user_id))
            return _pending(row) if row else None

    async def pending_of(self, user_id: int) -> list[PendingRecord]:
        """Where the gate waits for this person: read on every sign-in, so on the direct path."""
        async with self._direct.single() as tx:
            rows = await tx.all(_PENDING_OF, user_id=user_id)
        return [_pending_of(*row) for row in rows]

    async def pending_in(
        self, chat_id: int, kind: PendingKind | None = None, limit: int | None = None
    ) -> list[PendingRecord]:
        """Who the gate waits for in a chat, first come first."""
        query = select(GatePending).where(GatePending.chat_id == chat_id)
        if kind is not None:
            query = query.where(GatePending.kind == kind)
        query = query.order_by(GatePending.created_at, GatePending.user_id).limit(limit)
        async with self._sessions() as session:
            return [_pending(row) for row in await session.scalars(query)]

    async def count_pending(self, chat_id: int, kind: PendingKind | None = None) -> int:
        query = select(func.count()).select_from(GatePending).where(GatePending.chat_id == chat_id)
        if kind is not None:
            query = query.where(GatePending.kind == kind)
        async with self._sessions() as session:
            return int(await session.scalar(query) or 0)

    async def pending_for_chat_of(self, user_chat_id: int) -> list[PendingRecord]:
        """Join requests whose private-chat handle is `user_chat_id`."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(GatePending).where(GatePending.user_chat_id == user_chat_id)
            )
            return [_pending(row) for row in rows]

    async def due(self, now: datetime, limit: int = 100) -> list[PendingRecord]:
        """Waits whose deadline has passed, the oldest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(GatePending)
                .where(GatePending.deadline_at <= now)
                .order_by(GatePending.deadline_at, GatePending.chat_id, GatePending.user_id)
                .limit(limit)
            )
            return [_pending(row) for row in rows]

    async def pending_linked(self, limit: int = 100) -> list[PendingRecord]:
        """Waits of people who have a link by now (a decision on it may have been lost)."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(GatePending)
                .join(Link, Link.telegram_user_id == GatePending.user_id)
                .order_by(GatePending.deadline_at)
                .limit(limit)
            )
            return [_pending(row) for row in rows]

    async def settle(
        self,
        chat_id: int,
        user_id: int,
        deadline_at: datetime | None = None,
        *,
        admit: str | None = None,
        log: Sequence[LogEntry] = (),
        at: datetime | None = None,
    ) -> bool:
        """End a wait; True only for the one call that ended it.

        With `deadline_at`, only the wait with that deadline (the one that was read) ends: one
        renewed meanwhile is another wait. When this call ends it, in the same transaction: the
        person is admitted under rule `admit` (if given) and `log` is written.
        """
        condition = and_(GatePending.chat_id == chat_id, GatePending.user_id == user_id)
        if deadline_at is not None:
            condition = and_(condition, GatePending.deadline_at == deadline_at)
        async with self._sessions.begin() as session:
            if not await _delete_once(session, delete(GatePending).where(condition), log):
                return False
            if admit is not None:
                await _admit(session, chat_id, user_id, admit, at)
            return True

    # Who the gate let in.

    async def admit(
        self,
        chat_id: int,
        user_id: int,
        rule: str,
        *,
        at: datetime | None = None,
        log: Sequence[LogEntry] = (),
        end_wait: bool = False,
    ) -> None:
        """Record an admission (and, with `end_wait`, end any wait for the person there)."""
        async with self._sessions.begin() as session:
            if end_wait:
                await session.execute(
                    delete(GatePending).where(
                        GatePending.chat_id == chat_id, GatePending.user_id == user_id
                    )
                )
            await _admit(session, chat_id, user_id, rule, at)
            _add_log(session, log)

    async def get_admission(self, chat_id: int, user_id: int) -> AdmissionRecord | None:
        async with self._sessions() as session:
            row = await session.get(GateAdmission, (chat_id, user_id))
            return _admission(row) if row else None

    async def admissions_of(self, user_id: int) -> list[AdmissionRecord]:
        """The chats a person was let into, with the chats' titles, the earliest first."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(GateAdmission, GatedChat.title)
                .join(GatedChat, GatedChat.chat_id == GateAdmission.chat_id, isouter=True)
                .where(GateAdmission.user_id == user_id)
                .order_by(GateAdmission.admitted_at, GateAdmission.chat_id)
            )
            return [_admission(row, title or "") for row, title in rows.all()]

    async def drop_admission(
        self, chat_id: int, user_id: int, *, log: Sequence[LogEntry] = ()
    ) -> bool:
        """Forget an admission; True (and `log` written) only for the call that removed it."""
        statement = delete(GateAdmission).where(
            GateAdmission.chat_id == chat_id, GateAdmission.user_id == user_id
        )
        async with self._sessions.begin() as session:
            return await _delete_once(session, statement, log)

    async def admissions_without_link(self, limit: int = 100) -> list[AdmissionRecord]:
        """Admissions, other than by hand, to enabled chats that require a live link, of people
        who have no link any more (a sign-out whose removal may have been lost)."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(GateAdmission)
                .join(GatedChat, GatedChat.chat_id == GateAdmission.chat_id)
                .join(Link, Link.telegram_user_id == GateAdmission.user_id, isouter=True)
                .where(
                    GatedChat.enabled.is_(True),
                    GatedChat.require_live_link.is_(True),
                    GateAdmission.rule != MANUAL,
                    Link.telegram_user_id.is_(None),
                )
                .order_by(GateAdmission.admitted_at)
                .limit(limit)
            )
            return [_admission(row) for row in rows]

    async def has_restricted(self, chat_id: int, user_id: int) -> bool:
        """Whether the gate's last word on the person's rights in the chat was a restriction
        (restrictions outlast leaving the chat, so a newcomer may still carry one)."""
        async with self._sessions() as session:
            action = await session.scalar(
                select(GateLogEntry.action)
                .where(
                    GateLogEntry.chat_id == chat_id,
                    GateLogEntry.user_id == user_id,
                    GateLogEntry.action.in_(("restricted", "freed", "removed", "manual_remove")),
                )
                .order_by(GateLogEntry.id.desc())
                .limit(1)
            )
            return action == "restricted"

    # The decision log.

    async def log(self, entries: Sequence[LogEntry]) -> None:
        async with self._sessions.begin() as session:
            _add_log(session, entries)

    async def read_log(
        self, chat_id: int, *, user_id: int | None = None, limit: int | None = None
    ) -> list[LogEntry]:
        """A chat's decisions, oldest first (the last `limit` of them, when given)."""
        query = select(GateLogEntry).where(GateLogEntry.chat_id == chat_id)
        if user_id is not None:
            query = query.where(GateLogEntry.user_id == user_id)
        async with self._sessions() as session:
            if limit is None:
                rows = list(await session.scalars(query.order_by(GateLogEntry.id)))
            else:
                rows = list(
                    await session.scalars(query.order_by(GateLogEntry.id.desc()).limit(limit))
                )
                rows.reverse()
            return [_log(row) for row in rows]

    # Deep links.

    async def redeem(self, nonce: str, at: datetime) -> bool:
        """Use a deep link up; True the first time only."""
        async with self._sessions.begin() as session:
            result = await _insert_new(session, DeepLinkUsed, {"nonce": nonce, "used_at": at})
            return bool(_rowcount(result))

    async def forget_redeemed(self, older_than: datetime) -> int:
        """Drop redeemed links that have expired anyway."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(DeepLinkUsed).where(DeepLinkUsed.used_at < older_than)
            )
            return _rowcount(result)

    # Notices (the adapter's record of which message shows a notice).

    async def get_notice(self, chat_id: int, key: str) -> int | None:
        async with self._sessions() as session:
            row = await session.get(GateNotice, (chat_id, key))
            return row.message_id if row else None

    async def set_notice(self, chat_id: int, key: str, message_id: int | None) -> None:
        async with self._sessions.begin() as session:
            if message_id is None:
                await session.execute(
                    delete(GateNotice).where(GateNotice.chat_id == chat_id, GateNotice.key == key)
                )
                return
            values = {"chat_id": chat_id, "key": key, "message_id": message_id}
            await _upsert(session, GateNotice, values, ("chat_id", "key"), ["message_id"])

    # Chats the bot left.

    async def forget_waits_in(self, chat_id: int) -> list[PendingRecord]:
        """End every wait in a chat (the bot can no longer act there); returns them."""
        async with self._sessions.begin() as session:
            rows = list(
                await session.scalars(select(GatePending).where(GatePending.chat_id == chat_id))
            )
            await session.execute(delete(GatePending).where(GatePending.chat_id == chat_id))
            return [_pending(row) for row in rows]

    # Erasure.

    async def erase_user(self, user_id: int) -> None:
        """`erasure` in a transaction of its own."""
        async with self._sessions.begin() as session:
            await self.erasure(user_id)(session)

    def erasure(self, user_id: int) -> Work:
        """Database work that erases a person's gate rows, for the transaction that erases the
        rest of them.

        Their waits, admissions and log entries go. What must still be done in Telegram is kept
        as bare ids in `gate_erasures` until the gate has done it (`erasures`, `settle_erasure`):
        a join request is declined and a restricted newcomer removed where the gate is on (freed
        where it is off), and an admission to an enabled chat that requires a live link, unless
        an admin made it by hand, ends in a removal.
        """

        async def work(session: AsyncSession) -> None:
            todo: dict[int, tuple[ErasureAction, bool]] = {}
            waits = await session.execute(
                select(GatePending.chat_id, GatePending.kind, GatedChat.enabled)
                .join(GatedChat, GatedChat.chat_id == GatePending.chat_id, isouter=True)
                .where(GatePending.user_id == user_id)
            )
            for chat_id, kind, enabled in waits.all():
                if enabled:
                    todo[chat_id] = ("decline" if kind == "request" else "remove", True)
                elif kind == "member":
                    todo[chat_id] = ("free", True)
            admitted = await session.scalars(
                select(GateAdmission.chat_id)
                .join(GatedChat, GatedChat.chat_id == GateAdmission.chat_id)
                .where(
                    GateAdmission.user_id == user_id,
                    GateAdmission.rule != MANUAL,
                    GatedChat.enabled.is_(True),
                    GatedChat.require_live_link.is_(True),
                )
            )
            for chat_id in admitted:
                todo.setdefault(chat_id, ("remove", False))
            for chat_id, (action, waiting) in todo.items():
                values = {
                    "chat_id": chat_id,
                    "user_id": user_id,
                    "action": action,
                    "waiting": waiting,
                }
                await _upsert(
                    session, GateErasure, values, ("chat_id", "user_id"), ["action", "waiting"]
                )
            await session.execute(delete(GatePending).where(GatePending.user_id == user_id))
            await session.execute(delete(GateAdmission).where(GateAdmission.user_id == user_id))
            await session.execute(delete(GateLogEntry).where(GateLogEntry.user_id == user_id))

        return work

    async def erasures(self, user_id: int | None = None, limit: int = 100) -> list[ErasureRecord]:
        query = select(GateErasure)
        if user_id is not None:
            query = query.where(GateErasure.user_id == user_id)
        async with self._sessions() as session:
            rows = await session.scalars(
                query.order_by(GateErasure.chat_id, GateErasure.user_id).limit(limit)
            )
            return [
                ErasureRecord(row.chat_id, row.user_id, _erasure_action(row.action), row.waiting)
                for row in rows
            ]

    async def settle_erasure(
        self, chat_id: int, user_id: int, *, log: Sequence[LogEntry] = ()
    ) -> bool:
        """Mark an erasure's work in a chat as done; True only for the call that did."""
        statement = delete(GateErasure).where(
            GateErasure.chat_id == chat_id, GateErasure.user_id == user_id
        )
        async with self._sessions.begin() as session:
            return await _delete_once(session, statement, log)


async def _upsert(
    session: AsyncSession,
    model: Any,
    values: dict[str, Any],
    keys: Sequence[str],
    replace: Sequence[str],
) -> None:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(model).values(**values)
    excluded = statement.excluded
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=list(keys), set_={name: excluded[name] for name in replace}
        )
    )


async def _insert_new(session: AsyncSession, model: Any, values: dict[str, Any]) -> Any:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return await session.execute(dialect.insert(model).values(**values).on_conflict_do_nothing())


async def _admit(
    session: AsyncSession, chat_id: int, user_id: int, rule: str, at: datetime | None
) -> None:
    values = {
        "chat_id": chat_id,
        "user_id": user_id,
        "rule": rule[:512],
        "admitted_at": at or utcnow(),
    }
    await _upsert(session, GateAdmission, values, ("chat_id", "user_id"), ["rule", "admitted_at"])


def _add_log(session: AsyncSession, entries: Iterable[LogEntry]) -> None:
    for entry in entries:
        session.add(
            GateLogEntry(
                chat_id=entry.chat_id,
                user_id=entry.user_id,
                action=entry.action,
                rule=entry.rule[:512],
                actor_id=entry.actor_id,
                detail=dict(entry.detail),
                at=entry.at or utcnow(),
            )
        )


async def _delete_once(session: AsyncSession, statement: Any, log: Iterable[LogEntry]) -> bool:
    """A conditional delete that settles something: True, with `log` written in the same
    transaction, only for the one call whose delete found the row (so nothing is done twice)."""
    if not _rowcount(await session.execute(statement)):
        return False
    _add_log(session, log)
    return True


def _rowcount(result: Any) -> int:
    return int(result.rowcount or 0)


def _chat(row: GatedChat) -> ChatRecord:
    return ChatRecord(
        chat_id=row.chat_id,
        title=row.title,
        kind=row.kind,
        enabled=row.enabled,
        mode=row.mode,
        policy=row.policy,
        timeout=row.timeout,
        require_live_link=row.require_live_link,
        bot_rights=tuple(row.bot_rights) if row.bot_rights is not None else None,
        updated_at=row.updated_at,
    )


def _pending(row: GatePending) -> PendingRecord:
    return _pending_of(*(getattr(row, name) for name in _PENDING_FIELDS))


def _pending_of(
    chat_id: int,
    user_id: int,
    kind: str,
    deadline_at: datetime,
    user_chat_id: int | None,
    query_id: str | None,
    name: str | None,
    created_at: datetime | None,
) -> PendingRecord:
    return PendingRecord(
        chat_id=chat_id,
        user_id=user_id,
        kind="request" if kind == "request" else "member",
        deadline_at=deadline_at,
        user_chat_id=user_chat_id,
        query_id=query_id,
        name=name,
        created_at=created_at,
    )


# A pending row's columns, in the order `_pending_of` takes them.
_PENDING_FIELDS = (
    "chat_id",
    "user_id",
    "kind",
    "deadline_at",
    "user_chat_id",
    "query_id",
    "name",
    "created_at",
)
_PENDING_OF = Query(
    select(*(getattr(GatePending, name) for name in _PENDING_FIELDS))
    .where(GatePending.user_id == bindparam("user_id"))
    .order_by(GatePending.chat_id)
)


def _admission(row: GateAdmission, title: str = "") -> AdmissionRecord:
    return AdmissionRecord(row.chat_id, row.user_id, row.admitted_at, row.rule, title)


def _log(row: GateLogEntry) -> LogEntry:
    return LogEntry(
        chat_id=row.chat_id,
        user_id=row.user_id,
        action=row.action,
        rule=row.rule,
        actor_id=row.actor_id,
        detail=dict(row.detail),
        at=row.at,
        id=row.id,
    )


def _erasure_action(value: str) -> ErasureAction:
    if value == "decline":
        return "decline"
    return "free" if value == "free" else "remove"
