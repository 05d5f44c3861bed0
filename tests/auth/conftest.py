"""The embedded backend on a real database: SQLite (a file) and PostgreSQL (the real server).

Time comes from a clock the tests move, so expiry, cooldowns and lockouts need no sleeping.
Concurrent requests really race: each one runs in its own transaction on its own connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from sqlalchemy import select

from bot.auth.base import Challenge, Requester, TooManyAttempts, VerifiedIdentity, WrongCode
from bot.auth.delivery import DeliveryError
from bot.auth.limits import LocalLimits
from bot.auth.local import LocalBackend
from bot.identifiers import Identifier, IdentifierKind
from storage.engine import Database, SessionFactory
from storage.models import Link, LocalAccount, LocalChallenge, LocalEvent, TelegramUser
from storage.repos import Changes, Store, UserInfo
from storage.vault import Vault

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
VAULT = Vault("test-secret-for-the-local-backend")
ADA = Identifier("email", "ada@example.com")
BOB = Identifier("email", "bob@example.com")
PHONE = Identifier("phone", "+15555550142")
ME = Requester(telegram_user_id=1001)
OTHER = Requester(telegram_user_id=2002)
EMAIL_ONLY: frozenset[IdentifierKind] = frozenset({"email"})
PHONE_ONLY: frozenset[IdentifierKind] = frozenset({"phone"})
BOTH: frozenset[IdentifierKind] = frozenset({"email", "phone"})

Row = TypeVar("Row", LocalAccount, LocalChallenge, LocalEvent)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def at(self, **delta: float) -> datetime:
        return T0 + timedelta(**delta)


class RecordingChannel:
    """A delivery channel that keeps what it was asked to send, or fails on demand."""

    def __init__(self, name: str, kinds: frozenset[IdentifierKind]) -> None:
        self.name = name
        self.kinds = kinds
        self.sent: list[tuple[Identifier, str]] = []
        self.ttl_minutes: set[int] = set()
        self.failure: DeliveryError | None = None
        self.while_sending: Callable[[], Awaitable[object]] | None = None

    async def send_code(
        self, to: Identifier, code: str, *, app_name: str, ttl_minutes: int
    ) -> None:
        if self.failure is not None:
            raise self.failure
        if self.while_sending is not None:
            await self.while_sending()
        assert app_name == "Acme"
        self.ttl_minutes.add(ttl_minutes)
        self.sent.append((to, code))

    def last_code(self, to: Identifier) -> str:
        return [code for who, code in self.sent if who == to][-1]


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def person(n: int) -> Requester:
    return Requester(telegram_user_id=5000 + n)


@pytest.fixture
def sessions(database: Database) -> SessionFactory:
    """Sessions on an empty database with the schema (the shared `database` fixture)."""
    return database.sessions


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def email() -> RecordingChannel:
    return RecordingChannel("email", EMAIL_ONLY)


@pytest.fixture
def sms() -> RecordingChannel:
    return RecordingChannel("sms", PHONE_ONLY)


def make_backend(
    sessions: SessionFactory,
    clock: Clock,
    *channels: RecordingChannel,
    limits: LocalLimits | None = None,
) -> LocalBackend:
    return LocalBackend(
        sessions,
        VAULT,
        channels,
        app_name="Acme",
        limits=limits or LocalLimits(),
        clock=clock,
    )


@pytest.fixture
def backend(
    sessions: SessionFactory, clock: Clock, email: RecordingChannel, sms: RecordingChannel
) -> LocalBackend:
    return make_backend(sessions, clock, email, sms)


async def rows(sessions: SessionFactory, model: type[Row]) -> list[Row]:
    async with sessions() as session:
        return list((await session.scalars(select(model))).all())


async def events(sessions: SessionFactory, kind: str) -> list[LocalEvent]:
    return [event for event in await rows(sessions, LocalEvent) if event.kind == kind]


async def challenge_row(sessions: SessionFactory, challenge: Challenge) -> LocalChallenge | None:
    async with sessions() as session:
        return await session.get(LocalChallenge, challenge.state["id"])


# Whose outcome carries a verification's work in `finish`: no one the tests link.
NOBODY = UserInfo(1)


async def finish(sessions: SessionFactory, done: Challenge | VerifiedIdentity) -> None:
    """Do a code sent's or a verification's work, as the chat does: in the transaction that
    stores an update's outcome (here one that stores nothing else)."""
    assert done.commit is not None
    changes = Changes(user=NOBODY, conversation=None, work=[done.commit])
    await Store(sessions, VAULT).apply(changes)


async def sign_in(
    backend: LocalBackend,
    sessions: SessionFactory,
    challenge: Challenge,
    code: str,
    who: Requester,
) -> VerifiedIdentity:
    """Verify a code and store what it made final: the whole of a sign-in."""
    identity = await backend.verify(challenge, code, who)
    await finish(sessions, identity)
    return identity


async def link(sessions: SessionFactory, who: Requester, identity: VerifiedIdentity) -> None:
    """The link the chat stores for a verified person (only the columns erasure looks at)."""
    async with sessions.begin() as session:
        session.add(TelegramUser(id=who.telegram_user_id))
        await session.flush()
        session.add(
            Link(
                telegram_user_id=who.telegram_user_id,
                backend="local",
                auth_user_id=identity.auth_user_id,
                identifier_kind=identity.identifier.kind,
                identifier_index=VAULT.index(identity.identifier.kind, identity.identifier.value),
                identifier_enc=VAULT.encrypt(identity.identifier.value),
            )
        )


async def spend_tries(
    backend: LocalBackend, challenge: Challenge, code: str, who: Requester, count: int
) -> list[Exception]:
    """Submit `count` wrong codes one after another; returns what each was refused with."""
    refusals: list[Exception] = []
    for _ in range(count):
        with pytest.raises((WrongCode, TooManyAttempts)) as refused:
            await backend.verify(challenge, wrong(code), who)
        refusals.append(refused.value)
    return refusals
