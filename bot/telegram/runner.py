"""The aiogram adapter of the shared runtime (bot.runtime): its bot, dispatcher and updates."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import ClientDecodeError, TelegramAPIError, TelegramUnauthorizedError
from aiogram.types import BotCommand, ErrorEvent, Update
from pydantic import ValidationError

from bot.calls import CallFailed
from bot.commands import COMMANDS
from bot.gate_chats import GateChats
from bot.limits_out import limiter_for
from bot.private_chat import PrivateChat
from bot.runtime import DRAIN_TIMEOUT, FetchFailed, Runner, TokenRefused
from bot.telegram.calls import AiogramCalls
from bot.telegram.gate import gate_router
from bot.telegram.limiter import LimiterMiddleware
from bot.telegram.private import failure_origin, private_router
from bot.telegram.retry import RetryAfter
from bot.wiring import App

log = logging.getLogger(__name__)


def make_bot(app: App) -> Bot:
    settings = app.settings
    assert settings.telegram_bot_token is not None
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    session.middleware(RetryAfter())
    # Inside the retries, so a call sent again queues for its slot like any other.
    session.middleware(LimiterMiddleware(limiter_for(settings)))
    return Bot(settings.telegram_bot_token.get_secret_value(), session=session)


def make_dispatcher(gate: GateChats, chat: PrivateChat) -> Dispatcher:
    dp = Dispatcher()
    dp.include_router(gate_router(gate))  # first: its private /gate wins
    dp.include_router(private_router(chat))

    @dp.errors()
    async def on_error(event: ErrorEvent) -> bool:
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
        if isinstance(exc, CallFailed | TelegramAPIError | ClientDecodeError):
            # Telegram itself failed us (after retries): another message would fail the same way,
            # and blaming the sign-in service would be untrue.
            return True
        origin = failure_origin(event.update)
        if origin is not None:
            query, message = event.update.callback_query, event.update.message
            user = query.from_user if query else message.from_user if message else None
            await chat.apologise(origin, user.language_code if user else None)
        return True

    return dp


class AiogramAdapter:
    """Passgram's handlers on an aiogram Dispatcher, for the shared runtime."""

    def __init__(self, app: App) -> None:
        self.bot = make_bot(app)
        calls = AiogramCalls(self.bot)
        self.gate = GateChats(app.gate, calls)
        self.chat = PrivateChat(app.service, calls, self.gate.tell)
        self.dp = make_dispatcher(self.gate, self.chat)
        self.allowed_updates = self.dp.resolve_used_update_types()

    async def start(self) -> str:
        await self.bot.set_my_commands([BotCommand(command=c, description=d) for c, d in COMMANDS])
        me = await self.bot.me()
        log.info("signed in to Telegram as @%s", me.username)
        return me.username or ""

    async def stop(self) -> None:
        await self.bot.session.close()

    async def fetch(self, offset: int | None, wait: int, allowed: list[str]) -> Sequence[Update]:
        try:
            return await self.bot.get_updates(
                offset=offset,
                timeout=wait,
                allowed_updates=allowed,
                request_timeout=wait + 30,
            )
        except TelegramUnauthorizedError as exc:
            raise TokenRefused from exc
        except TelegramAPIError as exc:
            raise FetchFailed(type(exc).__name__) from exc

    def parse(self, body: dict[str, Any]) -> Update:
        try:
            return Update.model_validate(body, context={"bot": self.bot})
        except ValidationError as exc:
            raise ValueError("not an update") from exc

    def lane(self, update: Update) -> Hashable | None:
        """Whose updates must keep their order: the person's, across messages, presses, join
        requests and membership changes (a join request and the /start that follows it)."""
        if update.chat_member is not None:
            return ("user", update.chat_member.new_chat_member.user.id)
        for part in (update.message, update.callback_query, update.chat_join_request):
            user = getattr(part, "from_user", None)
            if user is not None:
                return ("user", user.id)
        return None

    async def handle(self, update: Update) -> None:
        await self.dp.feed_update(self.bot, update)

    async def set_webhook(self, url: str, secret: str, allowed: list[str]) -> None:
        await self.bot.set_webhook(url, secret_token=secret, allowed_updates=allowed)

    async def delete_webhook(self) -> None:
        await self.bot.delete_webhook(drop_pending_updates=False)


def aiogram_runner(app: App, *, drain_timeout: float = DRAIN_TIMEOUT) -> Runner[Update]:
    """The bot on aiogram."""
    return Runner(app, AiogramAdapter(app), drain_timeout=drain_timeout)
