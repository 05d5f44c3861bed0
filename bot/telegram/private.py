"""The private-chat router: every message and button press goes through the conversation."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, Message, Update

from bot.auth.base import WaitNotifier
from bot.conversation import texts
from bot.conversation.events import Happened, Incoming, Outcome, Person
from bot.conversation.service import ConversationService
from bot.telegram.convert import markup, message_event, person, press_event

log = logging.getLogger(__name__)


Tell = Callable[[list[Happened]], Awaitable[None]]


def private_router(service: ConversationService, tell: Tell) -> Router:
    router = Router(name="private")
    router.message.filter(F.chat.type == "private")

    @router.message(F.from_user)
    async def on_message(message: Message, bot: Bot, event_update: Update) -> None:
        assert message.from_user is not None
        who = person(message.from_user)
        incoming = Incoming(who, message_event(message), event_update.update_id)
        outcome = await service.handle(incoming, _notifier(bot, message.chat.id, who))
        if outcome.delete_incoming:
            await _quietly(bot.delete_message(message.chat.id, message.message_id))
        await _send(bot, message.chat.id, outcome)
        await tell(outcome.happened)

    @router.callback_query(F.message.chat.type == "private")
    async def on_press(query: CallbackQuery, bot: Bot, event_update: Update) -> None:
        who = person(query.from_user)
        msg = query.message
        chat_id = msg.chat.id if msg is not None else query.from_user.id
        incoming = Incoming(who, press_event(query), event_update.update_id)
        outcome = await service.handle(incoming, _notifier(bot, chat_id, who))
        await _quietly(query.answer(outcome.toast))
        if outcome.clear_pressed and isinstance(msg, Message) and msg.reply_markup:
            await _quietly(
                bot.edit_message_reply_markup(chat_id=chat_id, message_id=msg.message_id)
            )
        await _send(bot, chat_id, outcome)
        await tell(outcome.happened)

    return router


def _notifier(bot: Bot, chat_id: int, who: Person) -> WaitNotifier:
    """Tells a person who has to wait (a backend pacing its calls) how long."""

    async def notify_wait(seconds: float) -> None:
        lang = texts.language_for(who.language_code)
        await bot.send_message(chat_id, texts.t(lang, "pacing", wait=texts.duration(seconds)))

    return notify_wait


async def _send(bot: Bot, chat_id: int, outcome: Outcome) -> None:
    for reply in outcome.replies:
        await bot.send_message(chat_id, reply.text, reply_markup=markup(reply))


async def _quietly(call: Awaitable[object]) -> None:
    """Best-effort calls (delete a code message, answer a button): a failure changes nothing."""
    try:
        await call
    except TelegramAPIError as exc:
        log.info("best-effort call failed: %s", type(exc).__name__)
