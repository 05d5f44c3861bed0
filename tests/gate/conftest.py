"""The gate on a real database, SQLite (a file) and PostgreSQL (the real server), migrated as a
deployment is. Links are written by the conversation's own store; time comes from a clock the
tests move."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from bot.conversation.events import Person
from bot.gate.actions import Action, Say
from bot.gate.deeplink import DeepLinks
from bot.gate.service import Gate
from bot.identifiers import Identifier
from storage.engine import Database
from storage.gate import ChatRecord, GateStore, LogEntry
from storage.migrate import upgrade
from storage.repos import Changes, LinkRecord, Store, UserInfo
from storage.vault import Vault

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
VAULT = Vault("gate-test-secret-0123456789abcdefghij")
BOT = "passgram_test_bot"

GROUP = -1001000000001
CHANNEL = -1001000000002
OTHER_GROUP = -1001000000003
RIGHTS = ("can_invite_users", "can_restrict_members", "can_delete_messages")

ADA = Person(101, "Ada", "ada", "en")
BOB = Person(202, "Bob")
CY = Person(303, "Cy")
ADMIN = 9001


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class World:
    """A database with the conversation's store and the gate's, and gates made on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.clock = Clock()
        self._dbs: list[Database] = []
        self.db = self.database()
        self.store = GateStore(self.db.sessions)
        self.links = Store(self.db.sessions, VAULT, erase_also=[self.store.erasure])
        self.gate = self.new_gate()

    def database(self) -> Database:
        db = Database(self.url)
        self._dbs.append(db)
        return db

    def new_gate(self, db: Database | None = None) -> Gate:
        """A gate of its own process: its own engine on the same database."""
        db = db or self.database()
        return Gate(
            GateStore(db.sessions),
            Store(db.sessions, VAULT),
            self.clock,
            deeplinks=DeepLinks(VAULT, BOT),
            app="Acme",
        )

    async def chat(
        self,
        chat_id: int = GROUP,
        *,
        kind: str = "supergroup",
        title: str = "Acme Club",
        enabled: bool = True,
        mode: str = "join_requests",
        policy: str = "any",
        timeout: int = 600,  # noqa: ASYNC109 (the chat's setting)
        live: bool = True,
        rights: Sequence[str] | None = RIGHTS,
    ) -> None:
        await self.store.put_chat(
            ChatRecord(
                chat_id,
                title,
                kind,
                enabled=enabled,
                mode=mode,
                policy=policy,
                timeout=timeout,
                require_live_link=live,
                bot_rights=tuple(rights) if rights is not None else None,
            )
        )

    async def link(self, person: Person, identifier: Identifier) -> None:
        """Sign someone in, as the conversation stores it (no event)."""
        await self.links.apply(
            Changes(
                user=UserInfo(person.id, first_name=person.first_name),
                conversation=None,
                link=LinkRecord(
                    telegram_user_id=person.id,
                    backend="local",
                    auth_user_id=f"user_{person.id}",
                    identifier_kind=identifier.kind,
                    identifier_value=identifier.value,
                ),
            )
        )

    async def unlink(self, person: Person) -> None:
        await self.links.apply(Changes(user=UserInfo(person.id), conversation=None, link=None))

    async def erase(self, person: Person) -> None:
        """The conversation's erasure, with the gate's rows erased in the same transaction."""
        await self.links.apply(Changes(user=UserInfo(person.id), conversation=None, erase=True))

    async def log(self, chat_id: int = GROUP) -> list[tuple[int | None, str, str]]:
        return [(e.user_id, e.action, e.rule) for e in await self.store.read_log(chat_id)]

    async def entries(self, chat_id: int = GROUP) -> list[LogEntry]:
        return await self.store.read_log(chat_id)

    async def close(self) -> None:
        for db in self._dbs:
            await db.dispose()


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    await asyncio.to_thread(upgrade, database_url)
    w = World(database_url)
    try:
        yield w
    finally:
        await w.close()


def email(address: str) -> Identifier:
    return Identifier("email", address)


def phone(number: str) -> Identifier:
    return Identifier("phone", number)


def says(actions: Sequence[Action]) -> list[Say]:
    return [a for a in actions if isinstance(a, Say)]


def button_url(say: Say) -> str:
    (row,) = say.buttons
    (button,) = row
    assert button.url is not None
    return button.url


def payload_of(url: str) -> str:
    prefix = f"https://t.me/{BOT}?start="
    assert url.startswith(prefix), url
    return url[len(prefix) :]
