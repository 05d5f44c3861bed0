"""The Telegram calls the shared parts make, as a protocol each framework's adapter implements.

The conversation's and the gate's answers are carried out once, over these calls, instead of
once per framework; an adapter only turns each call into its framework's method, its objects
into the plain ones here, and its framework's refusals into `CallFailed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.conversation.events import Reply
from bot.gate.actions import QueryAnswer

# The admin rights by their Bot API names, as the gate reads them.
RIGHTS = (
    "can_invite_users",
    "can_restrict_members",
    "can_delete_messages",
    "can_post_messages",
    "can_manage_chat",
)

# The member permissions the gate turns off (restricted: may read, may not write) and on again.
PERMISSIONS = (
    "can_send_messages",
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
    "can_send_polls",
    "can_send_other_messages",
    "can_add_web_page_previews",
    "can_react_to_messages",
    "can_change_info",
    "can_invite_users",
    "can_pin_messages",
    "can_manage_topics",
)


class CallFailed(Exception):
    """Telegram refused a call, or could not be reached, after the framework's retries."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message  # Telegram's description: no codes or personal data in it


@dataclass(frozen=True, slots=True)
class Member:
    """Someone's place in a chat: `status` as the Bot API names it ("creator", "member", …);
    `rights` their admin rights of `RIGHTS` (None: not an admin)."""

    status: str
    rights: list[str] | None = None


@dataclass(frozen=True, slots=True)
class ChatFacts:
    title: str | None
    kind: str  # "group", "supergroup", "channel", "private"


class Calls(Protocol):
    @property
    def bot_id(self) -> int: ...

    async def send(self, chat_id: int, reply: Reply) -> int:
        """Send a message; returns its id."""
        ...

    async def send_chat_picker(self, chat_id: int, text: str) -> None:
        """Send `text` with the buttons that open Telegram's chat picker (add a channel, add a
        group), showing only chats where the person and the bot can have the gate's rights."""
        ...

    async def edit(self, chat_id: int, message_id: int, reply: Reply) -> None:
        """Replace a message's text and inline buttons."""
        ...

    async def delete(self, chat_id: int, message_id: int) -> None: ...

    async def answer_press(self, query_id: str, text: str | None) -> None:
        """Answer a button press (its spinner stops; `text` shows as a toast)."""
        ...

    async def clear_buttons(self, chat_id: int, message_id: int) -> None:
        """Take the inline buttons off a message."""
        ...

    async def approve(self, chat_id: int, user_id: int) -> None: ...

    async def decline(self, chat_id: int, user_id: int) -> None: ...

    async def answer_join_query(self, query_id: str, result: QueryAnswer) -> None:
        """answerChatJoinRequestQuery: a guard bot's verdict on a join request."""
        ...

    async def permit(self, chat_id: int, user_id: int, *, allowed: bool) -> None:
        """restrictChatMember with every permission on (`allowed`) or off."""
        ...

    async def remove(self, chat_id: int, user_id: int) -> None:
        """Out of the chat, and free to come back (a ban lifted at once)."""
        ...

    async def make_invite_link(self, chat_id: int, name: str) -> str:
        """A new link that creates join requests; returns it."""
        ...

    async def member(self, chat_id: int, user_id: int) -> Member: ...

    async def chat(self, chat_id: int) -> ChatFacts: ...
