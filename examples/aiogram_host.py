"""An aiogram bot of its own (/start greets, /roll rolls a die) with Passgram's sign-in and gate
added in two lines, marked below. The bot answers /start itself, so Passgram's is renamed
/signin.

    TELEGRAM_BOT_TOKEN=… DEV_DELIVERY=1 python examples/aiogram_host.py

Passgram reads its own settings (database, code delivery, APP_NAME…) from the environment and
.env, as `passgram run` does.
"""

from __future__ import annotations

import asyncio
import os
import secrets

from aiogram import Bot, Dispatcher, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from bot.config import Settings
from bot.telegram.mount import passgram_router  # Passgram (1/2)


def host_router() -> Router:
    router = Router(name="host")

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        await message.answer(
            "Hi! I'm the Acme community bot. /roll rolls a die; /signin signs you in."
        )

    @router.message(Command("roll"))
    async def roll(message: Message) -> None:
        await message.answer(f"🎲 {secrets.randbelow(6) + 1}")

    return router


def dispatcher(settings: Settings | None = None) -> Dispatcher:
    dp = Dispatcher()
    dp.include_router(passgram_router(settings, commands={"start": "signin"}))  # Passgram (2/2)
    dp.include_router(host_router())
    return dp


async def main() -> None:
    bot = Bot(os.environ["TELEGRAM_BOT_TOKEN"])
    await dispatcher().start_polling(bot)


if __name__ == "__main__":
    asyncio.run(main())
