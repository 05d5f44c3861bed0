"""Passgram's python-telegram-bot handlers: the gate's chats and the private conversation,
each update turned into the shared parts' plain calls (bot.gate_chats, bot.private_chat)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import (
    ApplicationHandlerStop,
    BaseHandler,
    CallbackQueryHandler,
    ChatJoinRequestHandler,
    ChatMemberHandler,
    MessageHandler,
    filters,
)

from bot.calls import CallFailed
from bot.conversation.events import Incoming
from bot.gate_chats import GATE_COMMAND, GONE, MemberChange
from bot.mounted import Parts
from bot.private_chat import Origin, failure_origin, press_origin
from bot.ptb.calls import rights
from bot.ptb.convert import message_event, person, press_event

log = logging.getLogger(__name__)

Callback = Callable[[Update, Any], Coroutine[Any, Any, None]]


def passgram_handlers(parts: Parts) -> list[BaseHandler[Update, Any, None]]:
    """In order: the first that matches an update handles it (they go in one handler group)."""

    async def on_join_request(update: Update, _: Any) -> None:
        request = update.chat_join_request
        assert request is not None
        link = request.invite_link
        await parts.gate.on_join_request(
            request.chat.id,
            person(request.from_user),
            request.user_chat_id,
            # Newer than the Bot API PTB 22.8 speaks (10.0): PTB keeps it in api_kwargs.
            query_id=request.api_kwargs.get("query_id"),
            invite_link_creator_id=link.creator.id if link is not None else None,
        )

    async def on_member(update: Update, _: Any) -> None:
        member = update.chat_member
        assert member is not None
        user, link = member.new_chat_member.user, member.invite_link
        change = MemberChange(
            member.chat.id,
            person(user),
            user.is_bot,
            str(member.old_chat_member.status),
            str(member.new_chat_member.status),
            via_link_creator_id=link.creator.id if link is not None else None,
            via_join_request=bool(member.via_join_request),
        )
        await parts.gate.on_member(change)

    async def on_bot_member(update: Update, _: Any) -> None:
        member = update.my_chat_member
        assert member is not None
        new, chat_ = member.new_chat_member, member.chat
        await parts.gate.on_bot_status(
            chat_.id,
            chat_.title or str(chat_.id),
            str(chat_.type),
            rights(new),
            actor_id=member.from_user.id if member.from_user else None,
            present=str(new.status) not in GONE,
        )

    async def on_group_command(update: Update, _: Any) -> None:
        message = update.message
        assert message is not None and message.text is not None
        here = message.chat
        await parts.gate.on_group_command(
            here.id,
            message.text,
            title=here.title,
            kind=str(here.type),
            actor_id=message.from_user.id if message.from_user else None,
            as_chat=message.sender_chat is not None and message.sender_chat.id == here.id,
        )

    async def on_private_gate(update: Update, _: Any) -> None:
        message = update.message
        assert message is not None and message.text is not None
        if message.from_user is not None:
            await parts.gate.on_private_command(message.from_user.id, message.chat.id, message.text)

    async def on_chat_shared(update: Update, _: Any) -> None:
        message = update.message
        assert message is not None and message.chat_shared is not None
        if message.from_user is not None:
            await parts.gate.on_chat_shared(
                message.chat_shared.chat_id, message.from_user.id, message.chat.id
            )

    async def on_message(update: Update, _: Any) -> None:
        message = update.message
        assert message is not None
        if message.from_user is None:
            return
        incoming = Incoming(person(message.from_user), message_event(message), update.update_id)
        if await parts.chat.handle(incoming, Origin(message.chat.id, message.message_id)):
            raise ApplicationHandlerStop  # answered: a host bot's handlers would answer again

    async def on_press(update: Update, _: Any) -> None:
        query = update.callback_query
        assert query is not None
        if query.message is None or query.message.chat.type != "private":
            return
        incoming = Incoming(person(query.from_user), press_event(query), update.update_id)
        if await parts.chat.handle(incoming, press_origin(query)):
            raise ApplicationHandlerStop

    async def apologise(update: Update) -> None:
        origin = failure_origin(update)
        if origin is not None:
            user = update.effective_user
            await parts.chat.apologise(origin, user.language_code if user else None)

    def guarded(callback: Callback) -> Callback:
        """A failure is logged by its kind only (messages may hold codes or personal data) and
        answered, here, so a host bot's own error handlers never see Passgram's."""

        async def run(update: Update, context: Any) -> None:
            try:
                await callback(update, context)
            except ApplicationHandlerStop:
                raise
            except Exception as exc:
                log.error(
                    "update %s failed: %s",
                    update.update_id,
                    type(exc).__name__,
                    exc_info=exc if log.isEnabledFor(logging.DEBUG) else None,
                )
                if not isinstance(exc, CallFailed | TelegramError):
                    # Telegram itself failing us would fail the apology the same way.
                    await apologise(update)

        return run

    message = filters.UpdateType.MESSAGE
    private, groups = filters.ChatType.PRIVATE, filters.ChatType.GROUPS
    gate_command = filters.Regex(GATE_COMMAND)
    return [
        ChatJoinRequestHandler(guarded(on_join_request)),
        ChatMemberHandler(guarded(on_member), ChatMemberHandler.CHAT_MEMBER),
        ChatMemberHandler(guarded(on_bot_member), ChatMemberHandler.MY_CHAT_MEMBER),
        MessageHandler(message & groups & gate_command, guarded(on_group_command)),
        # Before the conversation's: its private /gate wins.
        MessageHandler(message & private & gate_command, guarded(on_private_gate)),
        MessageHandler(
            message & private & filters.StatusUpdate.CHAT_SHARED, guarded(on_chat_shared)
        ),
        MessageHandler(message & private, guarded(on_message)),
        CallbackQueryHandler(guarded(on_press)),
    ]
