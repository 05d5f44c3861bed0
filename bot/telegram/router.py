"""Passgram's aiogram Router: the gate's and the private chat's, each failure in them answered
inside them, so the same router serves the bot run alone and a host bot that includes it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.exceptions import ClientDecodeError, TelegramAPIError
from aiogram.types import TelegramObject, Update

from bot.calls import CallFailed
from bot.mounted import Parts
from bot.private_chat import failure_origin
from bot.telegram.gate import gate_router
from bot.telegram.private import private_router

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class Guard(BaseMiddleware):
    """A failure is logged by its kind only (messages may hold codes or personal data) and
    answered with an apology, unless Telegram itself failed us (after retries): another
    message would fail the same way, and blaming the sign-in service would be untrue."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        try:
            return await handler(event, data)
        except SkipHandler:
            raise
        except Exception as exc:
            update: Update = data["event_update"]
            log.error(
                "update %s failed: %s",
                update.update_id,
                type(exc).__name__,
                exc_info=exc if log.isEnabledFor(logging.DEBUG) else None,
            )
            if isinstance(exc, CallFailed | TelegramAPIError | ClientDecodeError):
                return None
            origin = failure_origin(update)
            if origin is not None:
                query, message = update.callback_query, update.message
                user = query.from_user if query else message.from_user if message else None
                await self.parts.chat.apologise(origin, user.language_code if user else None)
            return None


def passgram_router(parts: Parts) -> Router:
    router = Router(name="passgram")
    router.include_router(gate_router(parts))  # first: its private /gate wins
    router.include_router(private_router(parts))
    guard = Guard(parts)
    for observer in (
        router.message,
        router.callback_query,
        router.chat_join_request,
        router.chat_member,
        router.my_chat_member,
    ):
        observer.middleware(guard)
    return router
