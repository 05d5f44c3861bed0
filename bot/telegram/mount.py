"""Passgram inside an aiogram bot that already exists: one Router to include.

    dp.include_router(passgram_router())  # reads Passgram's settings from the environment

Its startup and shutdown hooks build and close Passgram with the host's dispatcher (so its
database, deadlines and housekeeping run while the host does), and it answers in the private
chat only to its own commands and to sign-ins under way: everything else goes on to the
host's handlers.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiogram import Bot, Router

from bot.config import Settings
from bot.mounted import Mounted
from bot.telegram.calls import AiogramCalls
from bot.telegram.router import passgram_router as routes


def passgram_router(
    settings: Settings | None = None, *, commands: Mapping[str, str] | None = None
) -> Router:
    """`settings`: Passgram's (None: from the environment and .env, as `passgram run` reads
    them; the bot token is the host's). `commands`: renames, e.g. {"start": "signin"} when the
    host answers /start itself."""
    mounted = Mounted(settings, commands)
    router = routes(mounted)

    @router.startup()
    async def start(bot: Bot) -> None:
        me = await bot.me()
        await mounted.start(AiogramCalls(bot), me.username or "")

    @router.shutdown()
    async def stop() -> None:
        await mounted.stop()

    return router
