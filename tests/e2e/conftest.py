"""End-to-end harness: the real bot over HTTP against the Bot API stand-in, real SMTP, loopback
Twilio, a real SQLite file. Each test gets a fresh world; `bot_mode` runs it polling and webhook,
`framework` on aiogram and on python-telegram-bot."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot import logs
from bot.config import Settings, load_settings
from bot.frameworks import runner_for
from bot.runtime import Runner
from bot.sandbox.botapi import BotApiServer
from bot.sandbox.twilio import TwilioStandIn
from bot.webhook import set_webhook
from bot.wiring import App, build_app
from storage.migrate import upgrade
from tests.support import unused_port
from tests.support.mail import SmtpSink

CODE = re.compile(r"\b(\d{6})\b")
SECRET = "e2e-secret-0123456789abcdefghijklmnop"
TWILIO_SID = "AC" + "0" * 32
TWILIO_TOKEN = "twilio-auth-token-e2e"


class Clock:
    """The time the bot and its backend see; tests move it instead of sleeping."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class LogSpy(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class World:
    botapi: BotApiServer
    token: str
    smtp: SmtpSink
    twilio: TwilioStandIn
    clock: Clock
    tmp: Path
    mode: str
    log: LogSpy
    framework: str = "aiogram"
    runner: Runner[Any] | None = None
    app: App | None = None
    sensitive: set[str] = field(default_factory=set)
    overrides: dict[str, Any] = field(default_factory=dict)

    def settings(self) -> Settings:
        values: dict[str, Any] = {
            "_env_file": None,
            "telegram_bot_token": self.token,
            "telegram_api_url": self.botapi.url,
            "database_url": f"sqlite+aiosqlite:///{self.tmp / 'passgram.db'}",
            "passgram_secret": SECRET,
            "smtp_url": self.smtp.url,
            "email_from": "Acme <no-reply@acme.test>",
            "twilio_account_sid": TWILIO_SID,
            "twilio_auth_token": TWILIO_TOKEN,
            "twilio_from": "+15005550006",
            "twilio_api_url": self.twilio.url,
            "app_name": "Acme",
            "sms_countries": "GB,US,CA",
            # Simulated people answer within milliseconds; Telegram's 1 message/s per private
            # chat would only slow these tests down (the limiter has tests of its own).
            "telegram_rate_private": "50/1",
            "telegram_framework": self.framework,
        }
        if self.mode == "webhook":
            port = unused_port()
            values |= {
                "webhook_url": f"http://127.0.0.1:{port}/telegram/webhook",
                "webhook_secret": "e2e-webhook-secret",
                "webhook_listen": f"127.0.0.1:{port}",
            }
        values |= self.overrides
        return load_settings(**values)

    async def start_bot(self, **runner_options: Any) -> None:
        settings = self.settings()
        await asyncio.to_thread(upgrade, settings.database_url)
        self.app = await build_app(settings, clock=self.clock)
        self.runner = runner_for(self.app, **runner_options)
        await self.runner.start()
        if settings.webhook_url:
            # As an operator does once with `passgram webhook set`; replicas only listen.
            await set_webhook(settings)

    async def stop_bot(self) -> None:
        if self.runner is not None:
            await self.runner.stop()
            self.runner = None
        if self.app is not None:
            await self.app.close()
            self.app = None

    async def email_code(self, to: str) -> str:
        message = await self.smtp.wait_for_message(to, timeout=5)
        body = message.get_body(("plain",))
        assert body is not None
        match = CODE.search(body.get_content())
        assert match, "no code in the email"
        self.sensitive.add(match.group(1))
        return match.group(1)

    async def sms_code(self, to: str) -> str:
        message = await self.twilio.wait_for_message(to, timeout=5)
        match = CODE.search(message.body)
        assert match, "no code in the SMS"
        self.sensitive.add(match.group(1))
        return match.group(1)


@pytest.fixture(params=["polling", "webhook"])
def bot_mode(request: pytest.FixtureRequest) -> str:
    mode: str = request.param
    return mode


@pytest.fixture(params=["aiogram", "ptb"])
def framework(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@asynccontextmanager
async def make_world(tmp: Path, mode: str, framework: str = "aiogram") -> AsyncIterator[World]:
    spy = LogSpy()
    # What `passgram run` prints (bot.logs): the chatty libraries' floors, known secrets replaced.
    spy.addFilter(logs.Quiet())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(spy)
    root.setLevel(logging.DEBUG)
    logging.getLogger("aiosqlite").setLevel(logging.INFO)  # every SQL call: noise, not signal
    botapi = BotApiServer()
    smtp = SmtpSink()
    twilio = TwilioStandIn(TWILIO_SID, TWILIO_TOKEN)
    await botapi.start()
    await smtp.start()
    await twilio.start()
    token = botapi.create_bot(username="acme_sign_in_bot", first_name="Acme sign-in")
    spy.setFormatter(logs.Formatter("%(name)s %(levelname)s %(message)s", [token]))
    world = World(botapi, token, smtp, twilio, Clock(), tmp, mode, spy, framework)
    try:
        yield world
    finally:
        await world.stop_bot()
        await twilio.stop()
        await smtp.stop()
        await botapi.stop()
        root.removeHandler(spy)
        root.setLevel(old_level)
    # Nothing secret may reach the logs: codes, the bot token, full emails or phone numbers.
    text = "\n".join(spy.lines)
    secret_part = token.split(":", 1)[1]
    leaks = [s for s in (*world.sensitive, secret_part) if s and s in text]
    assert not leaks, f"logs contain {leaks}"


@pytest.fixture
async def world(tmp_path: Path, bot_mode: str, framework: str) -> AsyncIterator[World]:
    async with make_world(tmp_path, bot_mode, framework) as w:
        yield w


@pytest.fixture
async def running(world: World) -> World:
    await world.start_bot()
    return world


def remember(world: World, *values: str) -> None:
    """Mark personal data a test uses: none of it may appear in the logs."""
    for value in values:
        world.sensitive.add(value)
        if value.startswith("+"):
            world.sensitive.add(value[1:])
