"""The bot on the Telegram framework the settings name (TELEGRAM_FRAMEWORK)."""

from __future__ import annotations

from typing import Any

from bot.runtime import DRAIN_TIMEOUT, Runner
from bot.wiring import App


def runner_for(app: App, *, drain_timeout: float = DRAIN_TIMEOUT) -> Runner[Any]:
    # Imported here: a deployment loads only the framework it runs on.
    if app.settings.telegram_framework == "ptb":
        from bot.ptb.runner import ptb_runner

        return ptb_runner(app, drain_timeout=drain_timeout)
    from bot.telegram.runner import aiogram_runner

    return aiogram_runner(app, drain_timeout=drain_timeout)
