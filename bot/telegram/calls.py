"""The shared parts' Telegram calls (bot.calls) as aiogram Bot methods."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aiogram import Bot
from aiogram.exceptions import ClientDecodeError, TelegramAPIError

from bot.calls import CallFailed, ChatFacts, Member
from bot.conversation.events import Reply
from bot.gate.actions import QueryAnswer
from bot.telegram.convert import inline_markup, markup
from bot.telegram.gate import ALL_PERMISSIONS, NO_PERMISSIONS, add_chat_keyboard, rights


@contextmanager
def refusals() -> Iterator[None]:
    """aiogram's failures of a call (after the session's retries) as `CallFailed`."""
    try:
        yield
    except TelegramAPIError as exc:
        raise CallFailed(exc.message) from exc
    except ClientDecodeError as exc:
        raise CallFailed("an answer that is not the Bot API's") from exc


class AiogramCalls:
    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def send(self, chat_id: int, reply: Reply) -> int:
        with refusals():
            sent = await self.bot.send_message(chat_id, reply.text, reply_markup=markup(reply))
        return sent.message_id

    async def delete(self, chat_id: int, message_id: int) -> None:
        with refusals():
            await self.bot.delete_message(chat_id, message_id)

    async def answer_press(self, query_id: str, text: str | None) -> None:
        with refusals():
            await self.bot.answer_callback_query(query_id, text=text)

    async def clear_buttons(self, chat_id: int, message_id: int) -> None:
        with refusals():
            await self.bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id)

    @property
    def bot_id(self) -> int:
        return self.bot.id

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

    async def approve(self, chat_id: int, user_id: int) -> None:
        with refusals():
            await self.bot.approve_chat_join_request(chat_id, user_id)

    async def decline(self, chat_id: int, user_id: int) -> None:
        with refusals():
            await self.bot.decline_chat_join_request(chat_id, user_id)

    async def answer_join_query(self, query_id: str, result: QueryAnswer) -> None:
        with refusals():
            await self.bot.answer_chat_join_request_query(
                chat_join_request_query_id=query_id, result=result
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
        return Member(member.status, rights(member))

    async def chat(self, chat_id: int) -> ChatFacts:
        with refusals():
            chat = await self.bot.get_chat(chat_id)
        return ChatFacts(chat.title, chat.type)
