"""Runs the bot: long polling, or a webhook server when WEBHOOK_URL is set.

Either way an update counts as received only once it is handled: polling confirms offsets up to
the oldest update still in flight, and the webhook answers Telegram after handling, so an update
cut off by a crash is delivered again. Stopping stops taking updates and lets those in flight
finish first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Hashable
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import ClientDecodeError, TelegramAPIError, TelegramUnauthorizedError
from aiogram.types import BotCommand, ErrorEvent, Update
from aiohttp import web
from pydantic import ValidationError

from bot.conversation import texts
from bot.jobs import Job, run_every
from bot.limits_out import limiter_for
from bot.telegram.gate import GateExecutor, gate_router
from bot.telegram.limiter import LimiterMiddleware
from bot.telegram.private import private_router
from bot.telegram.retry import RetryAfter
from bot.telegram.session import BotSession, FreshUpdates
from bot.updates import Lanes
from bot.wiring import App

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
POLL_TIMEOUT = 20  # seconds a getUpdates long poll waits for news
DRAIN_TIMEOUT = 25.0  # seconds a stop waits for updates in flight (container stops allow ~30)
GATE_EVERY = 5.0  # seconds between looks at the gate's deadlines and missed decisions

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
    session = BotSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    session.middleware(RetryAfter())
    # Inside the retries, so a call sent again queues for its slot like any other.
    session.middleware(LimiterMiddleware(limiter_for(settings)))
    return Bot(settings.telegram_bot_token.get_secret_value(), session=session)


def make_dispatcher(app: App, gate: GateExecutor) -> Dispatcher:
    dp = Dispatcher()
    dp.include_router(gate_router(app.gate, gate))  # first: its private /gate wins
    dp.include_router(private_router(app.service, gate.tell))

    @dp.errors()
    async def on_error(event: ErrorEvent, bot: Bot) -> bool:
        exc = event.exception
        # The kind of failure only: messages may hold codes or personal data.
        log.error(
            "update %s failed: %s",
            event.update.update_id,
            type(exc).__name__,
            exc_info=(type(exc), exc, exc.__traceback__)
            if log.isEnabledFor(logging.DEBUG)
            else None,
        )
        if isinstance(exc, TelegramAPIError | ClientDecodeError):
            # Telegram itself failed us (after retries): another message would fail the same way,
            # and blaming the sign-in service would be untrue.
            return True
        await _apologise(bot, event.update)
        return True

    @dp.startup()
    async def on_startup(bot: Bot) -> None:
        await bot.set_my_commands([BotCommand(command=c, description=d) for c, d in COMMANDS])
        me = await bot.me()
        log.info("signed in to Telegram as @%s", me.username)

    return dp


async def _apologise(bot: Bot, update: Update) -> None:
    """Every update gets an answer, a button press included (its spinner must stop)."""
    query, message = update.callback_query, update.message
    user = query.from_user if query else message.from_user if message else None
    lang = texts.language_for(user.language_code if user else None)
    text = texts.t(lang, "internal_error")
    chat_id = None
    if query is not None:
        with contextlib.suppress(TelegramAPIError):
            await query.answer()
        chat_id = query.message.chat.id if query.message else query.from_user.id
    elif message is not None and message.chat.type == "private":
        chat_id = message.chat.id
    if chat_id is not None:
        with contextlib.suppress(TelegramAPIError):
            await bot.send_message(chat_id, text)


def _lane(update: Update) -> Hashable | None:
    """Whose updates must keep their order: the person's, across messages, presses, join
    requests and membership changes (a join request and the /start that follows it)."""
    if update.chat_member is not None:
        return ("user", update.chat_member.new_chat_member.user.id)
    for part in (update.message, update.callback_query, update.chat_join_request):
        user = getattr(part, "from_user", None)
        if user is not None:
            return ("user", user.id)
    return None


class Runner:
    """The bot, embeddable: `start()` returns once it is receiving updates, `stop()` ends it."""

    def __init__(self, app: App, *, drain_timeout: float = DRAIN_TIMEOUT) -> None:
        self.app = app
        self.drain_timeout = drain_timeout
        self.bot = make_bot(app)
        self.gate = GateExecutor(self.bot, app.gate)
        self.dp = make_dispatcher(app, self.gate)
        self.lanes = Lanes()
        self.failed: str | None = None  # why polling gave up, for the command's exit status
        self._poller: asyncio.Task[None] | None = None
        self._jobs: list[asyncio.Task[None]] = []
        self._web: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._stopping = False

    @property
    def webhook(self) -> bool:
        return self.app.settings.webhook_url is not None

    async def start(self) -> None:
        allowed = self.dp.resolve_used_update_types()
        await self.dp.emit_startup(bot=self.bot)
        me = await self.bot.me()
        self.app.gate.deeplinks.bot_username = me.username or ""
        # Deadlines that passed while the bot was down, and decisions a crash cut off.
        await self.gate.reconcile()
        jobs = [*self.app.jobs, Job("gate deadlines", GATE_EVERY, self.gate.reconcile)]
        self._jobs = [asyncio.create_task(run_every(job.every, job.run, job.name)) for job in jobs]
        if self.webhook:
            await self._start_webhook(allowed)
        else:
            await self.bot.delete_webhook(drop_pending_updates=False)
            self._poller = asyncio.create_task(self._poll(allowed))

    def _submit(self, update: Update) -> asyncio.Task[None]:
        async def handle() -> None:
            await self.dp.feed_update(self.bot, update)

        return self.lanes.submit(_lane(update), update.update_id, handle)

    async def _poll(self, allowed: list[str]) -> None:
        offset: int | None = None
        delay = 1.0
        while not self._stopping:
            try:
                # Updates still in flight come back until confirmed; left out unparsed.
                request = FreshUpdates(
                    offset=offset, timeout=POLL_TIMEOUT, allowed_updates=allowed
                ).skipping(self.lanes.known)
                updates = await self.bot(request, request_timeout=POLL_TIMEOUT + 30)
            except TelegramUnauthorizedError:
                self.failed = "Telegram refused the bot token (401): check TELEGRAM_BOT_TOKEN"
                log.error("%s", self.failed)
                return
            except (TelegramAPIError, OSError, TimeoutError) as exc:
                # The retry middleware already waited out 429s and passing 5xx; this is longer.
                log.warning(
                    "fetching updates failed (%s); trying again in %.0f s",
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
                continue
            delay = 1.0
            fresh = [u for u in updates if not self.lanes.known(u.update_id)]
            for update in fresh:
                self._submit(update)
            if (updates or request.dropped) and not fresh:
                # Only updates still in flight came back (they are not confirmed yet): wait for
                # one to finish rather than asking again at once.
                await self.lanes.progress(within=0.5)
            offset = self.lanes.confirm_point()

    async def _start_webhook(self, allowed: list[str]) -> None:
        settings = self.app.settings
        assert settings.webhook_url and settings.webhook_secret
        secret = settings.webhook_secret.get_secret_value()
        web_app = web.Application(client_max_size=1024**2)
        path = urlsplit(settings.webhook_url).path or "/"
        web_app.router.add_post(path, self._on_webhook)
        web_app.router.add_get("/healthz", _healthz)
        self._secret = secret
        # Telegram waits for the answer; let handlers in flight finish when stopping.
        self._web = web.AppRunner(web_app, access_log=None, shutdown_timeout=self.drain_timeout)
        await self._web.setup()
        host, _, port = settings.webhook_listen.rpartition(":")
        self._site = web.TCPSite(self._web, host.strip("[]"), int(port))
        await self._site.start()
        await self.bot.set_webhook(
            settings.webhook_url, secret_token=secret, allowed_updates=allowed
        )
        log.info("webhook mode: listening on %s", settings.webhook_listen)

    async def _on_webhook(self, request: web.Request) -> web.Response:
        if not secrets.compare_digest(request.headers.get(SECRET_HEADER, ""), self._secret):
            return web.json_response({"ok": False, "error": "unauthorized"}, status=401)
        if self._stopping:
            return web.json_response({"ok": False, "error": "stopping"}, status=503)
        try:
            body = json.loads(await request.read())
            if not isinstance(body, dict):
                raise ValueError("not an object")
            update = Update.model_validate(body, context={"bot": self.bot})
        except (ValueError, ValidationError):
            log.warning("webhook request with a body that is not an update")
            return web.json_response({"ok": False, "error": "not an update"}, status=400)
        if not self.lanes.known(update.update_id):
            task = self._submit(update)
            # Answered only once handled, so Telegram delivers it again if we die meanwhile;
            # shielded, so a dropped connection does not cut the handling short.
            await asyncio.shield(task)
        return web.json_response({})

    async def wait(self) -> None:
        if self._poller is not None:
            await self._poller
        else:
            await asyncio.Event().wait()

    async def stop(self) -> None:
        self._stopping = True
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self._site is not None:
            await self._site.stop()  # no new requests; those in flight go on
            self._site = None
        left = await self.lanes.drain(self.drain_timeout)
        if left:
            log.warning(
                "stopped with %d updates unfinished; Telegram will deliver them again", left
            )
        if self._web is not None:
            await self._web.cleanup()
            self._web = None
        for job in self._jobs:
            job.cancel()
        for job in self._jobs:
            with contextlib.suppress(asyncio.CancelledError):
                await job
        self._jobs = []
        await self.dp.emit_shutdown(bot=self.bot)
        await self.bot.session.close()


async def _healthz(_: web.Request) -> web.Response:
    return web.json_response({"ok": True})
