"""Outgoing calls obey Telegram's 429: wait `retry_after`, then send again; never drop."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType

if TYPE_CHECKING:
    from aiogram import Bot

log = logging.getLogger(__name__)


class RetryAfter(BaseRequestMiddleware):
    def __init__(self, max_attempts: int = 8, max_wait: float = 300.0) -> None:
        self.max_attempts = max_attempts
        self.max_wait = max_wait

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        for attempt in range(1, self.max_attempts + 1):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if attempt == self.max_attempts or exc.retry_after > self.max_wait:
                    raise
                log.warning(
                    "Telegram asked to slow down: %s retried in %s s",
                    type(method).__name__,
                    exc.retry_after,
                )
                await asyncio.sleep(exc.retry_after)
        raise AssertionError("unreachable")
