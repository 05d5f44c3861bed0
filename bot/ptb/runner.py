"""The python-telegram-bot adapter of the shared runtime (bot.runtime): an Application without
an Updater, fed one update at a time by the runtime's lanes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from telegram import BotCommand, Update
from telegram.error import InvalidToken, TelegramError
from telegram.ext import Application, ApplicationBuilder, ExtBot
from telegram.request import HTTPXRequest

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


class PassgramBot(ExtBot[None]):
    """python-telegram-bot's bot, with a getUpdates that leaves out what the runtime already
    has before parsing: each poll hands back every update still in flight (see bot.runtime),
    and parsing those into PTB objects again was a sixth of this runtime's CPU under load."""

    async def fresh_updates(
        self, offset: int | None, wait: int, allowed: list[str], known: Callable[[int], bool]
    ) -> Fetched[Update]:
        data: dict[str, Any] = {"timeout": wait, "allowed_updates": allowed}
        if offset is not None:
            data["offset"] = offset
        # A long poll: the read waits for Telegram's answer (as Bot.get_updates does).
        raw: list[dict[str, Any]] = await self._post("getUpdates", data, read_timeout=wait + 30)
        fresh = [item for item in raw if not known(item["update_id"])]
        return Fetched(Update.de_list(fresh, self), len(raw) - len(fresh))


def make_application(app: App) -> PtbApplication:
    settings = app.settings
    assert settings.telegram_bot_token is not None
    base = settings.telegram_api_url.rstrip("/")
    bot = PassgramBot(
        settings.telegram_bot_token.get_secret_value(),
        base_url=f"{base}/bot",
        base_file_url=f"{base}/file/bot",
        # The pools ApplicationBuilder gives its own bot: many calls at once, one long poll.
        request=HTTPXRequest(connection_pool_size=256),
        get_updates_request=HTTPXRequest(connection_pool_size=1),
        rate_limiter=PassgramRateLimiter(app.coordination.limiter),
    )
    return ApplicationBuilder().bot(bot).updater(None).build()  # the runtime receives updates


class PtbAdapter:
    """Passgram's handlers on a python-telegram-bot Application, for the shared runtime."""

    def __init__(self, app: App) -> None:
        self.allowed_updates = list(ALLOWED_UPDATES)
        self.application = make_application(app)
        self.bot: PassgramBot = self.application.bot
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
            return await self.bot.fresh_updates(offset, wait, allowed, known)
        except InvalidToken as exc:
            raise TokenRefused from exc
        except TelegramError as exc:
            raise FetchFailed(type(exc).__name__) from exc

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
