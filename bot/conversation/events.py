"""What the conversation takes in and gives back: plain data, no Telegram framework.

An adapter turns a framework's update into an `Incoming` and an `Outcome` into API calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bot.identifiers import Identifier


@dataclass(frozen=True, slots=True)
class Person:
    id: int
    first_name: str = ""
    username: str | None = None
    language_code: str | None = None


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # without the slash or a @botname suffix, lower-case
    args: str = ""


@dataclass(frozen=True, slots=True)
class SharedContact:
    phone_number: str
    user_id: int | None  # whose contact it is; Telegram sets it only for a Telegram account


@dataclass(frozen=True, slots=True)
class Press:
    data: str  # an inline button's callback data


@dataclass(frozen=True, slots=True)
class Other:
    kind: str  # "sticker", "photo", "voice", … — anything the conversation cannot read


Event = Text | Command | SharedContact | Press | Other


@dataclass(frozen=True, slots=True)
class Incoming:
    person: Person
    event: Event
    update_id: int | None = None  # lets a redelivered update be recognised and skipped


@dataclass(frozen=True, slots=True)
class Button:
    text: str
    data: str | None = None  # callback data …
    url: str | None = None  # … or a link


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    # A reply keyboard with one "share my phone number" button (its label), or its removal.
    contact_button: str | None = None
    remove_keyboard: bool = False


@dataclass(frozen=True, slots=True)
class Linked:
    """A person proved an identity and is now linked to it (or came back, already linked,
    through a deep link: `entry` then says where from)."""

    user_id: int
    identifier: Identifier
    auth_user_id: str
    entry: str | None = None  # what the /start payload they came with stood for, if any


@dataclass(frozen=True, slots=True)
class Unlinked:
    user_id: int


@dataclass(frozen=True, slots=True)
class Erased:
    user_id: int


# What happened, for whoever listens (the gate): told only once it is stored.
Happened = Linked | Unlinked | Erased


class EntryCheck(Protocol):
    """Reads a `/start` payload (a deep link): the opaque entry it stands for, or None when it
    is forged, stale or used. Whoever issued the link implements it; the conversation only carries
    the entry through to `Linked`."""

    async def check(self, payload: str, user_id: int) -> str | None: ...

    def issued(self, payload: str) -> bool:
        """Whether the payload is one of the issuer's links, however stale (no forgery is)."""
        ...


class Admission(Protocol):
    @property
    def title(self) -> str: ...
    @property
    def since(self) -> datetime: ...


class Admissions(Protocol):
    """The gated chats a person was let into, for their /me; the gate implements it."""

    async def admitted_chats(self, user_id: int) -> Sequence[Admission]: ...


@dataclass(slots=True)
class Outcome:
    replies: list[Reply] = field(default_factory=list)
    delete_incoming: bool = False  # the user's message held a code: remove it once read
    toast: str | None = None  # the answer shown for a pressed button
    clear_pressed: bool = False  # take the buttons off the message whose button was pressed
    duplicate: bool = False  # the update was handled before; nothing was done
    happened: list[Happened] = field(default_factory=list)
