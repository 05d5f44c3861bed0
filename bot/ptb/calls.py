"""The shared parts' Telegram calls (bot.calls) as python-telegram-bot Bot methods."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from telegram import (
    Bot,
    ChatAdministratorRights,
    ChatMemberAdministrator,
    ChatMemberOwner,
    ChatPermissions,
    KeyboardButton,
    KeyboardButtonRequestChat,
    ReplyKeyboardMarkup,
)
from telegram.error import TelegramError

from bot.calls import PERMISSIONS, RIGHTS, CallFailed, ChatFacts, Member
from bot.conversation.events import Reply
from bot.gate import texts
from bot.gate.actions import QueryAnswer
from bot.gate.model import RIGHTS_CHANNEL, RIGHTS_GROUP
from bot.ptb.convert import inline_markup, markup

# The request_id of each "add a chat" button, so an answer says which was pressed.
ADD_CHANNEL, ADD_GROUP = 1, 2
NO_PERMISSIONS = ChatPermissions(**dict.fromkeys(PERMISSIONS, False))  # type: ignore[arg-type]
ALL_PERMISSIONS = ChatPermissions(**dict.fromkeys(PERMISSIONS, True))  # type: ignore[arg-type]


@contextmanager
def refusals() -> Iterator[None]:
    """PTB's failures of a call (after the rate limiter's retries) as `CallFailed`."""
    try:
        yield
    except TelegramError as exc:
        raise CallFailed(exc.message) from exc


def rights(member: object) -> list[str] | None:
    if isinstance(member, ChatMemberOwner):
        return list(RIGHTS)
    if isinstance(member, ChatMemberAdministrator):
        return [name for name in RIGHTS if getattr(member, name, False)]
    return None


class PtbCalls:
    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    @property
    def bot_id(self) -> int:
        return self.bot.id

    async def send(self, chat_id: int, reply: Reply) -> int:
        with refusals():
            sent = await self.bot.send_message(chat_id, reply.text, reply_markup=markup(reply))
        return sent.message_id

    async def send_chat_picker(self, chat_id: int, text: str) -> None:
        with refusals():
            await self.bot.send_message(chat_id, text, reply_markup=add_chat_keyboard())

    async def edit(self, chat_id: int, message_id: int, reply: Reply) -> None:
        with refusals():
            await self.bot.edit_message_text(
                reply.text,
                chat_id=chat_id,
                message_id=message_id,
                reply_markup=inline_markup(reply.buttons),
            )

    async def delete(self, chat_id: int, message_id: int) -> None:
        with refusals():
            await self.bot.delete_message(chat_id, message_id)

    async def answer_press(self, query_id: str, text: str | None) -> None:
        with refusals():
            await self.bot.answer_callback_query(query_id, text=text)

    async def clear_buttons(self, chat_id: int, message_id: int) -> None:
        with refusals():
            await self.bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id)

    async def approve(self, chat_id: int, user_id: int) -> None:
        with refusals():
            await self.bot.approve_chat_join_request(chat_id, user_id)

    async def decline(self, chat_id: int, user_id: int) -> None:
        with refusals():
            await self.bot.decline_chat_join_request(chat_id, user_id)

    async def answer_join_query(self, query_id: str, result: QueryAnswer) -> None:
        # Newer than the Bot API python-telegram-bot 22 speaks: its documented escape hatch.
        with refusals():
            await self.bot.do_api_request(
                "answerChatJoinRequestQuery",
                api_kwargs={"chat_join_request_query_id": query_id, "result": result},
            )

    async def permit(self, chat_id: int, user_id: int, *, allowed: bool) -> None:
        with refusals():
            await self.bot.restrict_chat_member(
                chat_id,
                user_id,
                ALL_PERMISSIONS if allowed else NO_PERMISSIONS,
                use_independent_chat_permissions=True,
            )

    async def remove(self, chat_id: int, user_id: int) -> None:
        with refusals():
            await self.bot.ban_chat_member(chat_id, user_id)
            await self.bot.unban_chat_member(chat_id, user_id, only_if_banned=True)

    async def make_invite_link(self, chat_id: int, name: str) -> str:
        with refusals():
            link = await self.bot.create_chat_invite_link(
                chat_id, name=name, creates_join_request=True
            )
        return link.invite_link

    async def member(self, chat_id: int, user_id: int) -> Member:
        with refusals():
            member = await self.bot.get_chat_member(chat_id, user_id)
        return Member(str(member.status), rights(member))

    async def chat(self, chat_id: int) -> ChatFacts:
        with refusals():
            chat = await self.bot.get_chat(chat_id)
        return ChatFacts(chat.title, str(chat.type))


def add_chat_keyboard() -> ReplyKeyboardMarkup:
    """Buttons that open Telegram's chat picker, showing only chats the person administers
    with the rights the bot needs, and make the bot an admin of the one picked."""

    def button(
        text: str, request_id: int, channel: bool, needed: tuple[str, ...]
    ) -> KeyboardButton:
        rights = _admin_rights(needed)
        return KeyboardButton(
            text,
            request_chat=KeyboardButtonRequestChat(
                request_id,
                chat_is_channel=channel,
                user_administrator_rights=rights,
                bot_administrator_rights=rights,
                request_title=True,
            ),
        )

    return ReplyKeyboardMarkup(
        [
            [
                button(texts.t("en", "btn_add_channel"), ADD_CHANNEL, True, RIGHTS_CHANNEL),
                button(texts.t("en", "btn_add_group"), ADD_GROUP, False, RIGHTS_GROUP),
            ]
        ],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def _admin_rights(names: tuple[str, ...]) -> ChatAdministratorRights:
    required: dict[str, Any] = {
        name: False
        for name, param in inspect.signature(ChatAdministratorRights).parameters.items()
        if param.default is param.empty and param.kind is not param.VAR_KEYWORD
    }
    return ChatAdministratorRights(**(required | dict.fromkeys(names, True)))
