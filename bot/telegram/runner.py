"""The aiogram adapter of the shared runtime (bot.runtime): its bot, dispatcher and updates."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError, TelegramUnauthorizedError
from aiogram.types import BotCommand, Update
from pydantic import ValidationError

from bot.gate_chats import GateChats
from bot.private_chat import PrivateChat
from bot.runtime import DRAIN_TIMEOUT, Fetched, FetchFailed, Runner, TokenRefused
from bot.telegram.calls import AiogramCalls
from bot.telegram.limiter import LimiterMiddleware
from bot.telegram.retry import RetryAfter
from bot.telegram.router import passgram_router
from bot.telegram.session import BotSession, FreshUpdates
from bot.webhook import ALLOWED_UPDATES
from bot.wiring import App

log = logging.getLogger(__name__)


def make_bot(app: App) -> Bot:
    settings = app.settings
    assert settings.telegram_bot_token is not None
    session = BotSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    session.middleware(RetryAfter())
    # Inside the retries, so a call sent again queues for its slot like any other.
    session.middleware(LimiterMiddleware(app.coordination.limiter))
    return Bot(settings.telegram_bot_token.get_secret_value(), session=session)


class AiogramAdapter:
    """Passgram's handlers on an aiogram Dispatcher, for the shared runtime."""

    def __init__(self, app: App) -> None:
        self.bot = make_bot(app)
        calls = AiogramCalls(self.bot)
        self.gate = GateChats(app.gate, calls)
        self.chat = PrivateChat(app.service, calls, self.gate.tell)
        self.dp = Dispatcher()
        self.dp.include_router(passgram_router(self))
        self.allowed_updates = list(ALLOWED_UPDATES)

    async def start(self) -> str:
        menu = self.chat.service.conversation.commands.menu()
        try:
            await self.bot.set_my_commands([BotCommand(command=c, description=d) for c, d in menu])
        except TelegramUnauthorizedError as exc:
            raise TokenRefused from exc
        me = await self.bot.me()
        log.info("signed in to Telegram as @%s", me.username)
        return me.username or ""

    async def stop(self) -> None:
        await self.bot.session.close()

    async def fetch(
        self, offset: int | None, wait: int, allowed: list[str], known: Callable[[int], bool]
    ) -> Fetched[Update]:
        # Left out before parsing: the updates in flight come back until confirmed.
        request = FreshUpdates(offset=offset, timeout=wait, allowed_updates=allowed).skipping(known)
        try:
            fresh = await self.bot(request, request_timeout=wait + 30)
        except TelegramUnauthorizedError as exc:
            raise TokenRefused from exc
        except TelegramAPIError as exc:
            raise FetchFailed(type(exc).__name__) from exc
        return Fetched(fresh, request.dropped)

    def parse(self, body: dict[str, Any]) -> Update:
        try:
            return Update.model_validate(body, context={"bot": self.bot})
        except ValidationError as exc:
            raise ValueError("not an update") from exc

    async def handle(self, update: Update) -> None:
        await self.dp.feed_update(self.bot, update)

    async def delete_webhook(self) -> None:
        await self.bot.delete_webhook(drop_pending_updates=False)


def aiogram_runner(app: App, *, drain_timeout: float = DRAIN_TIMEOUT) -> Runner[Update]:
    """The bot on aiogram."""
    return Runner(app, AiogramAdapter(app), drain_timeout=drain_timeout)
