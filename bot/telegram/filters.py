"""The routers' filters, as coroutines.

aiogram runs a filter that is a plain function (a magic `F` filter included) in a worker
thread, one hop there and back per filter per update; on a busy bot those hops cost more than
the rest of the routing. Coroutine filters run in the event loop.
"""

from __future__ import annotations

import re

from aiogram.types import CallbackQuery, Message

from bot.gate_chats import GATE_COMMAND

_GROUPS = frozenset({"group", "supergroup"})
_GATE_COMMAND = re.compile(GATE_COMMAND)


async def in_private(message: Message) -> bool:
    return message.chat.type == "private"


async def from_person(message: Message) -> bool:
    """Sent by a user (not on behalf of a chat), in a private chat."""
    return message.chat.type == "private" and message.from_user is not None


async def gate_command_in_group(message: Message) -> bool:
    return message.chat.type in _GROUPS and _is_gate_command(message)


async def gate_command_in_private(message: Message) -> bool:
    return await from_person(message) and _is_gate_command(message)


async def chat_shared(message: Message) -> bool:
    return await from_person(message) and message.chat_shared is not None


async def pressed_in_private(query: CallbackQuery) -> bool:
    return query.message is not None and query.message.chat.type == "private"


def _is_gate_command(message: Message) -> bool:
    return message.text is not None and _GATE_COMMAND.match(message.text) is not None
