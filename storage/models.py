"""The database schema: SQLAlchemy 2 typed models.

Personal data (emails, phone numbers, backend client tokens, conversation state) is stored only
encrypted (`*_enc` columns, see `storage.vault`); lookups go through keyed blind indexes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class TelegramUser(Base):
    __tablename__ = "telegram_users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    username: Mapped[str | None] = mapped_column(String(64))
    first_name: Mapped[str | None] = mapped_column(String(128))
    language_code: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Link(Base):
    """A Telegram user linked to an auth user: the product's main output."""

    __tablename__ = "links"

    telegram_user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("telegram_users.id", ondelete="CASCADE"), primary_key=True
    )
    backend: Mapped[str] = mapped_column(String(16))
    auth_user_id: Mapped[str] = mapped_column(String(128), index=True)
    session_id: Mapped[str | None] = mapped_column(String(128))
    identifier_kind: Mapped[str] = mapped_column(String(8))
    identifier_index: Mapped[str] = mapped_column(String(64), index=True)
    identifier_enc: Mapped[bytes] = mapped_column(LargeBinary)
    state_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    signed_up: Mapped[bool] = mapped_column(default=False)
    linked_at: Mapped[datetime] = mapped_column(default=utcnow)


class Conversation(Base):
    """Where a private chat stands, so a restart in the middle of any step loses nothing."""

    __tablename__ = "conversations"

    telegram_user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("telegram_users.id", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[str] = mapped_column(String(32))
    data_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class HandledUpdate(Base):
    """Telegram updates already handled, written in the transaction that handled them.

    A set, not a high-water mark: updates of different users (or a webhook's retries) arrive
    out of order, and only a redelivery of the very same update may be skipped.
    """

    __tablename__ = "handled_updates"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Meta(Base):
    """Facts about the database itself (e.g. a check value of the secret it is written with)."""

    __tablename__ = "meta"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(512))


class LocalAccount(Base):
    """An account of the embedded backend: the auth user when AUTH_BACKEND=local."""

    __tablename__ = "local_accounts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    identifier_kind: Mapped[str] = mapped_column(String(8))
    identifier_index: Mapped[str] = mapped_column(String(64), unique=True)
    identifier_enc: Mapped[bytes] = mapped_column(LargeBinary)
    # The challenge whose right code created it: checking that code again after a crash, before
    # its link was stored, is still the sign-up.
    created_by: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LocalChallenge(Base):
    """A one-time code of the embedded backend, kept only as an HMAC."""

    __tablename__ = "local_challenges"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    identifier_index: Mapped[str] = mapped_column(String(64), index=True)
    requester_index: Mapped[str] = mapped_column(String(64), index=True)
    code_mac: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(default=0)
    sends: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    consumed_at: Mapped[datetime | None]


class LocalEvent(Base):
    """Sends and failures, counted over sliding windows for the embedded backend's limits.

    `key` is a blind index (of an identifier or a Telegram user) or "*" for global caps, and
    `requester` the blind index of the Telegram user behind an event counted per identifier, so
    the counts survive an erasure without keeping anything that names the person.
    """

    __tablename__ = "local_events"
    __table_args__ = (Index("ix_local_events_kind_key_at", "kind", "key", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(64))
    requester: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class AuditEvent(Base):
    """Sign-ins, sign-ups, failures, sign-outs and erasures. Never holds a code or an identifier."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    event: Mapped[str] = mapped_column(String(32))
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    backend: Mapped[str | None] = mapped_column(String(16))
    auth_user_id: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class GatedChat(Base):
    """A group or channel the bot was added to, its gate settings, and the bot's rights there."""

    __tablename__ = "gated_chats"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(String(255), default="")
    kind: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(default=False)
    mode: Mapped[str] = mapped_column(String(16), default="join_requests")
    policy: Mapped[str] = mapped_column(String(512), default="any")
    timeout: Mapped[int] = mapped_column(default=600)
    require_live_link: Mapped[bool] = mapped_column(default=True)
    # The bot's admin rights as last seen (Bot API names); None until Telegram told us.
    bot_rights: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class GatePending(Base):
    """Someone the gate waits for: a join request, or a restricted newcomer, and its deadline."""

    __tablename__ = "gate_pending"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(8))  # "request" | "member"
    user_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    query_id: Mapped[str | None] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(128))  # for the group's list of newcomers
    deadline_at: Mapped[datetime] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_gate_pending_user_id", "user_id"),)


class GateAdmission(Base):
    """Who the gate let into a chat, when, and under which rule."""

    __tablename__ = "gate_admissions"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    admitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    rule: Mapped[str] = mapped_column(String(512))

    __table_args__ = (Index("ix_gate_admissions_user_id", "user_id"),)


class GateLogEntry(Base):
    """Every gate decision. Never holds an email address or a phone number."""

    __tablename__ = "gate_log"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    action: Mapped[str] = mapped_column(String(32))
    rule: Mapped[str] = mapped_column(String(512), default="")
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (Index("ix_gate_log_chat_id_id", "chat_id", "id"),)


class GateErasure(Base):
    """What is still to be done in a chat about someone who erased their data: only the ids
    needed to act, until the gate has acted."""

    __tablename__ = "gate_erasures"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    action: Mapped[str] = mapped_column(String(8))  # "decline" | "remove" | "free"
    waiting: Mapped[bool] = mapped_column(default=False)  # they were waiting there


class GateNotice(Base):
    """The message a gate notice (e.g. a group's list of newcomers) lives in, to edit it in place
    after a restart."""

    __tablename__ = "gate_notices"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    message_id: Mapped[int] = mapped_column(BigInteger)


class DeepLinkUsed(Base):
    """Deep-link tokens already redeemed: each works once."""

    __tablename__ = "deep_links_used"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    used_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
