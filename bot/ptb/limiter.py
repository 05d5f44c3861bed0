"""The outgoing limiter (bot.limits_out) and the retry rules (bot.resend) as
python-telegram-bot's rate limiter, the hook its bot runs every call but getUpdates through.

As with aiogram, the retries wrap the limiter: a call sent again after a 429 or a server
failure queues for a slot again like any other call, and a 429 pauses its chat (or the whole
bot, for a call naming no chat) for the same time, so the calls queued behind it wait too.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from telegram.error import BadRequest, NetworkError, RetryAfter
from telegram.ext import BaseRateLimiter
from telegram.warnings import PTBDeprecationWarning

from bot.limits_out import ChatId, Cost, Limiter, cost_of
from bot.resend import Flood, Resend, Transient

Result = bool | dict[str, Any] | list[dict[str, Any]]


class PassgramRateLimiter(BaseRateLimiter[None]):
    def __init__(self, limiter: Limiter, resend: Resend | None = None) -> None:
        self.limiter = limiter
        self.resend = resend or Resend()

    async def initialize(self) -> None:
        pass  # nothing to open: the limiter lives as long as the application

    async def shutdown(self) -> None:
        pass

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Result]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> Result:
        cost = cost_of(endpoint)
        chat_id = _chat_of(data)

        async def once() -> Result:
            if cost is Cost.FREE:
                return await callback(*args, **kwargs)
            async with self.limiter.slot(chat_id, cost):
                try:
                    return await callback(*args, **kwargs)
                except RetryAfter as exc:
                    await self.limiter.penalise(chat_id, _seconds(exc))
                    raise

        return await self.resend.call(endpoint, once, _judge)


def _judge(exc: Exception) -> Flood | Transient | None:
    if isinstance(exc, RetryAfter):
        return Flood(_seconds(exc))
    # PTB reads a 5xx, a proxy's page and a lost connection alike as NetworkError; a 400 is
    # one too, but it refuses this call and would be refused again.
    if isinstance(exc, NetworkError) and not isinstance(exc, BadRequest):
        return Transient(type(exc).__name__)
    return None


def _seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        # An int in PTB 22, a timedelta in 23: either reads as seconds here.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        wait = exc.retry_after
    return wait.total_seconds() if isinstance(wait, timedelta) else float(wait)


def _chat_of(data: dict[str, Any]) -> ChatId | None:
    chat_id = data.get("chat_id")
    return chat_id if isinstance(chat_id, int | str) and not isinstance(chat_id, bool) else None
