"""The outgoing limiter (bot.limits_out) as a request middleware of the bot's session.

It goes inside the retry middleware (registered after `RetryAfter`, so it runs nearer the
wire): a call sent again after a 429 or a server failure queues for a slot again like any other
call, instead of going out unpaced the moment its wait is over, next to the calls that waited
for the same pause. The retry middleware obeys a 429 for the call that got it; this one pauses
that call's chat (or the whole bot, for a call naming no chat) for the same time, so the calls
queued behind it wait too instead of collecting 429s of their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType

from bot.limits_out import ChatId, Cost, Limiter, cost_of

if TYPE_CHECKING:
    from aiogram import Bot


class LimiterMiddleware(BaseRequestMiddleware):
    """Every counted call waits for its slot; a 429 pauses its chat for `retry_after`."""

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        cost = cost_of(method.__api_method__)
        if cost is Cost.FREE:
            return await make_request(bot, method)
        chat_id = _chat_of(method)
        async with self.limiter.slot(chat_id, cost):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                await self.limiter.penalise(chat_id, float(exc.retry_after))
                raise


def _chat_of(method: TelegramMethod[TelegramType]) -> ChatId | None:
    chat_id = getattr(method, "chat_id", None)
    return chat_id if isinstance(chat_id, int | str) and not isinstance(chat_id, bool) else None
