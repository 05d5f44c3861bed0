"""Passgram inside a python-telegram-bot bot that already exists: one call on its Application.

    add_passgram(application)  # reads Passgram's settings from the environment

Passgram's handlers go in a handler group of their own, so the host's keep seeing every
update; in the private chat Passgram answers only its own commands and sign-ins under way.
It is built after the host's Application initialises and closed when it shuts down (its
post_init and post_shutdown, the host's own hooks still run), so its database, deadlines and
housekeeping run while the host does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from telegram.ext import Application

from bot.config import Settings
from bot.mounted import Mounted
from bot.ptb.calls import PtbCalls
from bot.ptb.handlers import passgram_handlers
from bot.webhook import ALLOWED_UPDATES

GROUP = -100  # before the host's default group 0: a sign-in step is answered first

__all__ = ["ALLOWED_UPDATES", "GROUP", "add_passgram"]

PtbApplication = Application[Any, Any, Any, Any, Any, Any]


def add_passgram(
    application: PtbApplication,
    settings: Settings | None = None,
    *,
    commands: Mapping[str, str] | None = None,
    group: int = GROUP,
) -> Mounted:
    """`settings`: Passgram's (None: from the environment and .env, as `passgram run` reads
    them; the bot token is the host's). `commands`: renames, e.g. {"start": "signin"} when the
    host answers /start itself. Poll with `allowed_updates=ALLOWED_UPDATES` (or
    Update.ALL_TYPES): Telegram sends member changes only to bots that ask for them."""
    mounted = Mounted(settings, commands)
    application.add_handlers(passgram_handlers(mounted), group=group)
    host_init, host_shutdown = application.post_init, application.post_shutdown

    async def post_init(app: PtbApplication) -> None:
        await mounted.start(PtbCalls(app.bot), app.bot.username)
        if host_init is not None:
            await host_init(app)

    async def post_shutdown(app: PtbApplication) -> None:
        if host_shutdown is not None:
            await host_shutdown(app)
        await mounted.stop()

    application.post_init = post_init
    application.post_shutdown = post_shutdown
    return mounted
