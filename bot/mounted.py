"""Passgram inside a bot that already exists: built, started and stopped with the host bot's
lifecycle, whatever its framework. The framework's side (bot.telegram.mount, bot.ptb.mount)
adds the handlers and calls `start` and `stop` from the host's startup and shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Protocol

from bot.calls import Calls
from bot.config import Settings, load_settings
from bot.conversation.commands import Commands
from bot.gate_chats import GateChats
from bot.jobs import start_all, stop_all
from bot.private_chat import PrivateChat
from bot.runtime import gate_job
from bot.wiring import App, build_app, check_delivery
from storage.migrate import check_ready

log = logging.getLogger(__name__)


class Parts(Protocol):
    """What a framework's handlers hand each update to: the runtime's adapter, or a host bot's
    Mounted (whose parts exist only once the host has started)."""

    @property
    def chat(self) -> PrivateChat: ...

    @property
    def gate(self) -> GateChats: ...


class NotStarted(RuntimeError):
    """An update reached Passgram before the host bot's startup ran."""


class Mounted:
    """`settings`: Passgram's (None: read from the environment and .env, as `passgram run`
    does). `commands`: renames of Passgram's commands, e.g. {"start": "signin"}."""

    def __init__(
        self, settings: Settings | None = None, commands: Mapping[str, str] | None = None
    ) -> None:
        self.settings = settings if settings is not None else load_settings()
        self.commands = Commands(dict(commands or {}))
        check_delivery(self.settings)
        self.app: App | None = None
        self._chat: PrivateChat | None = None
        self._gate: GateChats | None = None
        self._jobs: list[asyncio.Task[None]] = []

    @property
    def chat(self) -> PrivateChat:
        if self._chat is None:
            raise NotStarted("Passgram has not been started with the host bot")
        return self._chat

    @property
    def gate(self) -> GateChats:
        if self._gate is None:
            raise NotStarted("Passgram has not been started with the host bot")
        return self._gate

    def menu(self) -> list[tuple[str, str]]:
        """Passgram's commands for the host's menu (setMyCommands), by the names people type."""
        return self.commands.menu()

    async def start(self, calls: Calls, bot_username: str) -> None:
        # SQLite is brought to the migration head; PostgreSQL must be already (passgram db upgrade).
        await asyncio.to_thread(check_ready, self.settings.database_url)
        app = self.app = await build_app(self.settings, commands=self.commands)
        app.gate.deeplinks.bot_username = bot_username
        self._gate = GateChats(app.gate, calls)
        self._chat = PrivateChat(app.service, calls, self._gate.tell, hosted=True)
        # Deadlines that passed while the bot was down, and decisions a crash cut off.
        await self._gate.reconcile()
        self._jobs = start_all([*app.jobs, gate_job(self._gate)])
        log.info("Passgram started inside @%s", bot_username)

    async def stop(self) -> None:
        await stop_all(self._jobs)
        self._jobs = []
        self._chat = self._gate = None
        if self.app is not None:
            await self.app.close()
            self.app = None
