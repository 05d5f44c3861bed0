"""`passgram run` with a token Telegram refuses, on either framework: one line, non-zero."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.sandbox.botapi import BotApiServer


@pytest.fixture
async def api() -> AsyncIterator[BotApiServer]:
    server = BotApiServer()
    await server.start()
    yield server
    await server.stop()


@pytest.mark.parametrize("framework", ["aiogram", "ptb"])
async def test_a_refused_token_stops_run_with_one_line(
    api: BotApiServer, tmp_path: Path, framework: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.isupper() or k in ("PATH", "HOME")}
    env = clean | {
        "TELEGRAM_BOT_TOKEN": "123456789:AAEnobodyknowsthistokenatall0000",
        "TELEGRAM_API_URL": api.url,
        "TELEGRAM_FRAMEWORK": framework,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'passgram.db'}",
        "PASSGRAM_SECRET": "token-test-secret-0123456789abcdef",
        "DEV_DELIVERY": "1",
        "LOG_LEVEL": "ERROR",
    }
    run = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        _, err = await run.communicate()
    assert run.returncode == 2
    last = err.decode().strip().splitlines()[-1]
    assert last == "passgram: Telegram refused the bot token (401): check TELEGRAM_BOT_TOKEN"
