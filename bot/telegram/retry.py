"""The retry rules (bot.resend) as a request middleware of aiogram's session."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType

from bot.resend import Flood, Resend, Transient

if TYPE_CHECKING:
    from aiogram import Bot


class RetryAfter(BaseRequestMiddleware):
    """The request middleware of the bot's session: 429s obeyed, server failures retried."""

    def __init__(self, **rules: Any) -> None:
        self.resend = Resend(**rules)

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        return await self.resend.call(
            method.__api_method__, lambda: make_request(bot, method), _judge
        )


def _judge(exc: Exception) -> Flood | Transient | None:
    if isinstance(exc, TelegramRetryAfter):
        return Flood(float(exc.retry_after))
    if isinstance(exc, ClientDecodeError):
        # The body is a proxy's error page; its text adds nothing and may be long.
        return Transient("an answer that is not the Bot API's")
    if isinstance(exc, TelegramServerError | TelegramNetworkError):
        return Transient(f"{type(exc).__name__}: {exc.message}")
    return None
