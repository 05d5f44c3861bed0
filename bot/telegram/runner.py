"""Runs the bot: long polling, or a webhook server when WEBHOOK_URL is set."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import BotCommand, ErrorEvent
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from bot.conversation import texts
from bot.telegram.private import private_router
from bot.telegram.retry import RetryAfter
from bot.wiring import App

log = logging.getLogger(__name__)

SWEEP_EVERY = 3600.0  # seconds between clean-ups of abandoned sign-ups, where a backend has them

COMMANDS = (
    ("start", "Sign in or create an account"),
    ("me", "Who I'm signed in as"),
    ("logout", "Sign out"),
    ("forget", "Erase everything the bot keeps about me"),
    ("help", "What this bot does"),
    ("cancel", "Stop what we're doing"),
)


def make_bot(app: App) -> Bot:
    settings = app.settings
    assert settings.telegram_bot_token is not None
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    session.middleware(RetryAfter())
    return Bot(settings.telegram_bot_token.get_secret_value(), session=session)


def make_dispatcher(app: App) -> Dispatcher:
    dp = Dispatcher()
    dp.include_router(private_router(app.service, app.settings.app_name))

    @dp.errors()
    async def on_error(event: ErrorEvent, bot: Bot) -> bool:
        # Log the kind of failure only: messages may hold codes or personal data.
        log.error(
            "update %s failed: %s",
            event.update.update_id,
            type(event.exception).__name__,
            exc_info=(
                type(event.exception),
                event.exception,
                event.exception.__traceback__,
            )
            if log.isEnabledFor(logging.DEBUG)
            else None,
        )
        chat = event.update.message.chat.id if event.update.message else None
        if chat is not None:
            with contextlib.suppress(Exception):
                await bot.send_message(chat, texts.t("en", "unavailable"))
        return True

    @dp.startup()
    async def on_startup(bot: Bot) -> None:
        await bot.set_my_commands([BotCommand(command=c, description=d) for c, d in COMMANDS])
        me = await bot.me()
        log.info("signed in to Telegram as @%s", me.username)

    return dp


class Runner:
    """The bot, embeddable: `start()` returns once it is receiving updates, `stop()` ends it."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.bot = make_bot(app)
        self.dp = make_dispatcher(app)
        self._task: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._web: web.AppRunner | None = None

    @property
    def webhook(self) -> bool:
        return self.app.settings.webhook_url is not None

    async def start(self) -> None:
        sweep = getattr(self.app.backend, "sweep_abandoned", None)
        if sweep is not None:
            self._sweeper = asyncio.create_task(_every(SWEEP_EVERY, sweep))
        allowed = self.dp.resolve_used_update_types()
        if self.webhook:
            await self._start_webhook(allowed)
        else:
            await self.bot.delete_webhook(drop_pending_updates=False)
            self._task = asyncio.create_task(
                self.dp.start_polling(
                    self.bot,
                    allowed_updates=allowed,
                    handle_signals=False,
                    close_bot_session=False,
                    polling_timeout=20,
                )
            )

    async def _start_webhook(self, allowed: list[str]) -> None:
        settings = self.app.settings
        assert settings.webhook_url and settings.webhook_secret
        secret = settings.webhook_secret.get_secret_value()
        web_app = web.Application()
        path = urlsplit(settings.webhook_url).path or "/"
        SimpleRequestHandler(self.dp, self.bot, secret_token=secret).register(web_app, path=path)
        web_app.router.add_get("/healthz", _healthz)
        self._web = web.AppRunner(web_app, access_log=None)
        await self._web.setup()
        host, _, port = settings.webhook_listen.rpartition(":")
        await web.TCPSite(self._web, host.strip("[]"), int(port)).start()
        await self.dp.emit_startup(bot=self.bot)
        await self.bot.set_webhook(
            settings.webhook_url, secret_token=secret, allowed_updates=allowed
        )
        log.info("webhook mode: listening on %s", settings.webhook_listen)

    async def wait(self) -> None:
        if self._task is not None:
            await self._task
        else:
            await asyncio.Event().wait()

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._task is not None:
            with contextlib.suppress(RuntimeError):
                await self.dp.stop_polling()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._web is not None:
            await self.dp.emit_shutdown(bot=self.bot)
            await self._web.cleanup()
            self._web = None
        await self.bot.session.close()


async def _every(seconds: float, job: Callable[[], Awaitable[object]]) -> None:
    """Housekeeping a backend asks for (abandoned sign-ups); a failure waits for the next round."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except Exception as exc:
            log.warning("housekeeping failed: %s", type(exc).__name__)


async def _healthz(_: web.Request) -> web.Response:
    return web.json_response({"ok": True})
