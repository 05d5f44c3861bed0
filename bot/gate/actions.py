"""What the gate decides to do, as plain data an adapter carries out through the Bot API, and what
the adapter reports back. The gate itself never calls Telegram."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from bot.conversation.events import Button

Buttons: TypeAlias = tuple[tuple[Button, ...], ...]  # rows of inline buttons
QueryAnswer: TypeAlias = Literal["approve", "decline", "queue"]


@dataclass(frozen=True, slots=True)
class Approve:
    """approveChatJoinRequest."""

    chat_id: int
    user_id: int


@dataclass(frozen=True, slots=True)
class Decline:
    """declineChatJoinRequest."""

    chat_id: int
    user_id: int


@dataclass(frozen=True, slots=True)
class AnswerQuery:
    """answerChatJoinRequestQuery, for a guard bot's join request: due within 10 s."""

    query_id: str
    result: QueryAnswer


@dataclass(frozen=True, slots=True)
class Restrict:
    """restrictChatMember with every permission off: may read, may not write."""

    chat_id: int
    user_id: int


@dataclass(frozen=True, slots=True)
class Free:
    """restrictChatMember with every permission on: lifts the gate's restriction."""

    chat_id: int
    user_id: int


@dataclass(frozen=True, slots=True)
class Remove:
    """banChatMember, then unbanChatMember with only_if_banned: out, and free to come back."""

    chat_id: int
    user_id: int


@dataclass(frozen=True, slots=True)
class Say:
    """sendMessage."""

    chat_id: int
    text: str
    buttons: Buttons = ()


@dataclass(frozen=True, slots=True)
class Notice:
    """The one message under `key` in a chat (the group's list of newcomers to verify): posted
    the first time, edited in place after that, deleted when `text` is None. Only the latest
    Notice of a key matters: an adapter may skip one that a later one replaces."""

    chat_id: int
    key: str
    text: str | None
    buttons: Buttons = ()


@dataclass(frozen=True, slots=True)
class MakeInviteLink:
    """createChatInviteLink with creates_join_request; the link is reported back in
    `Result.link`, and the gate says it in `reply_to` (the chat itself when None)."""

    chat_id: int
    name: str
    reply_to: int | None = None


Action: TypeAlias = (
    Approve | Decline | AnswerQuery | Restrict | Free | Remove | Say | Notice | MakeInviteLink
)


@dataclass(frozen=True, slots=True)
class Result:
    """What Telegram answered to an action. `error` is its description, e.g.
    "Bad Request: HIDE_REQUESTER_MISSING"; `link` the invite link a MakeInviteLink made."""

    action: Action
    ok: bool
    error: str | None = None
    link: str | None = None


# Telegram's descriptions, as the gate reads them.
ALREADY_PARTICIPANT = "USER_ALREADY_PARTICIPANT"  # approving someone already in: done
REQUEST_GONE = "HIDE_REQUESTER_MISSING"  # no such join request any more
CANT_INITIATE = "bot can't initiate conversation"  # a private message to someone out of reach
BLOCKED = "bot was blocked by the user"


def error_says(error: str | None, what: str) -> bool:
    return error is not None and what.lower() in error.lower()
