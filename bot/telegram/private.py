"""The private-chat router: every message and button press goes through the conversation."""

from __future__ import annotations

from aiogram import Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.types import CallbackQuery, Message, Update

from bot.conversation.events import Incoming
from bot.mounted import Parts
from bot.private_chat import Origin, press_origin
from bot.telegram import filters
from bot.telegram.convert import message_event, person, press_event


def private_router(parts: Parts) -> Router:
    router = Router(name="private")
    router.message.filter(filters.in_private)

    @router.message(filters.from_person)
    async def on_message(message: Message, event_update: Update) -> None:
        assert message.from_user is not None
        incoming = Incoming(
            person(message.from_user), message_event(message), event_update.update_id
        )
        if not await parts.chat.handle(incoming, Origin(message.chat.id, message.message_id)):
            raise SkipHandler  # a host bot's, for its own handlers

    @router.callback_query(filters.pressed_in_private)
    async def on_press(query: CallbackQuery, event_update: Update) -> None:
        incoming = Incoming(person(query.from_user), press_event(query), event_update.update_id)
        if not await parts.chat.handle(incoming, press_origin(query)):
            raise SkipHandler

    return router
