"""A python-telegram-bot bot of its own (/start greets, /roll rolls a die) with Passgram's
sign-in and gate added in two lines, marked below. The bot answers /start itself, so Passgram's
is renamed /signin.

    TELEGRAM_BOT_TOKEN=… DEV_DELIVERY=1 python examples/ptb_host.py

Passgram reads its own settings (database, code delivery, APP_NAME…) from the environment and
.env, as `passgram run` does.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from telegram import Update
from telegram.ext import Application, ApplicationBuilder, CommandHandler, ContextTypes

from bot.config import Settings
from bot.ptb.mount import ALLOWED_UPDATES, add_passgram  # Passgram (1/2)

HostApplication = Application[Any, Any, Any, Any, Any, Any]


async def start(update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_text(
        "Hi! I'm the Acme community bot. /roll rolls a die; /signin signs you in."
    )


async def roll(update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_text(f"🎲 {secrets.randbelow(6) + 1}")


def application(builder: ApplicationBuilder, settings: Settings | None = None) -> HostApplication:
    app = builder.build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CommandHandler("roll", roll))
    add_passgram(app, settings, commands={"start": "signin"})  # Passgram (2/2)
    return app


def main() -> None:
    builder = ApplicationBuilder().token(os.environ["TELEGRAM_BOT_TOKEN"])
    # Telegram sends member changes (the gate's members mode) only to bots that ask for them.
    application(builder).run_polling(allowed_updates=ALLOWED_UPDATES)


if __name__ == "__main__":
    main()
