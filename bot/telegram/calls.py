"""The shared parts' Telegram calls (bot.calls) as aiogram Bot methods."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aiogram import Bot
from aiogram.exceptions import ClientDecodeError, TelegramAPIError

from bot.calls import CallFailed
from bot.conversation.events import Reply
from bot.telegram.convert import markup


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
