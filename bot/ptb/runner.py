"""The python-telegram-bot adapter of the shared runtime (bot.runtime): an Application without
an Updater, fed one update at a time by the runtime's lanes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from telegram import BotCommand, Update
from telegram.error import InvalidToken, TelegramError
from telegram.ext import Application, ApplicationBuilder

from bot.gate_chats import GateChats
from bot.private_chat import PrivateChat
from bot.ptb.calls import PtbCalls
from bot.ptb.handlers import passgram_handlers
from bot.ptb.limiter import PassgramRateLimiter
from bot.runtime import DRAIN_TIMEOUT, Fetched, FetchFailed, Runner, TokenRefused
from bot.webhook import ALLOWED_UPDATES
from bot.wiring import App

log = logging.getLogger(__name__)

PtbApplication = Application[Any, Any, Any, Any, Any, Any]


def make_application(app: App) -> PtbApplication:
    settings = app.settings
    assert settings.telegram_bot_token is not None
    base = settings.telegram_api_url.rstrip("/")
    return (
        ApplicationBuilder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(f"{base}/bot")
        .base_file_url(f"{base}/file/bot")
        .rate_limiter(PassgramRateLimiter(app.coordination.limiter))
        .updater(None)  # the shared runtime receives updates
        .build()
    )


class PtbAdapter:
    """Passgram's handlers on a python-telegram-bot Application, for the shared runtime."""

    def __init__(self, app: App) -> None:
        self.allowed_updates = list(ALLOWED_UPDATES)
        self.application = make_application(app)
        self.bot = self.application.bot
        calls = PtbCalls(self.bot)
        self.gate = GateChats(app.gate, calls)
        self.chat = PrivateChat(app.service, calls, self.gate.tell)
        self.application.add_handlers(passgram_handlers(self))

    async def start(self) -> str:
        try:
            await self.application.initialize()  # getMe
        except InvalidToken as exc:
            raise TokenRefused from exc
        menu = self.chat.service.conversation.commands.menu()
        await self.bot.set_my_commands([BotCommand(c, d) for c, d in menu])
        username: str = self.bot.username
        log.info("signed in to Telegram as @%s", username)
        return username

    async def stop(self) -> None:
        await self.application.shutdown()

    async def fetch(
        self, offset: int | None, wait: int, allowed: list[str], known: Callable[[int], bool]
    ) -> Fetched[Update]:
        try:
            updates: tuple[Update, ...] = await self.bot.get_updates(
                offset=offset, timeout=wait, allowed_updates=allowed, read_timeout=wait + 30
            )
        except InvalidToken as exc:
            raise TokenRefused from exc
        except TelegramError as exc:
            raise FetchFailed(type(exc).__name__) from exc
        fresh = [u for u in updates if not known(u.update_id)]
        return Fetched(fresh, len(updates) - len(fresh))

    def parse(self, body: dict[str, Any]) -> Update:
        if not isinstance(body.get("update_id"), int):
            raise ValueError("not an update")
        try:
            return Update.de_json(body, self.bot)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError("not an update") from exc

    async def handle(self, update: Update) -> None:
        await self.application.process_update(update)

    async def delete_webhook(self) -> None:
        await self.bot.delete_webhook(drop_pending_updates=False)


def ptb_runner(app: App, *, drain_timeout: float = DRAIN_TIMEOUT) -> Runner[Update]:
    """The bot on python-telegram-bot."""
    return Runner(app, PtbAdapter(app), drain_timeout=drain_timeout)
