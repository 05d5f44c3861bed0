"""The example host bots (examples/) against the Bot API stand-in: their own commands still
answer with Passgram mounted, and Passgram's sign-in, renamed /signin, completes inside them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from telegram.ext import ApplicationBuilder

from bot.ptb.mount import ALLOWED_UPDATES
from examples import aiogram_host, ptb_host
from tests.e2e.conftest import World, make_world, remember


@contextlib.asynccontextmanager
async def aiogram_bot(w: World) -> AsyncIterator[None]:
    settings = w.settings()
    session = AiohttpSession(api=TelegramAPIServer.from_base(w.botapi.url))
    bot = Bot(w.token, session=session)
    dp = aiogram_host.dispatcher(settings)
    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=1))
    try:
        yield
    finally:
        await dp.stop_polling()
        await polling


@contextlib.asynccontextmanager
async def ptb_bot(w: World) -> AsyncIterator[None]:
    base = w.botapi.url
    builder = ApplicationBuilder().token(w.token).base_url(f"{base}/bot")
    app = ptb_host.application(builder.base_file_url(f"{base}/file/bot"), w.settings())
    # What run_polling does, in the test's own event loop: initialise, post_init, poll …
    await app.initialize()
    assert app.post_init is not None and app.post_shutdown is not None
    await app.post_init(app)
    assert app.updater is not None
    await app.updater.start_polling(allowed_updates=ALLOWED_UPDATES, timeout=1)
    await app.start()
    try:
        yield
    finally:
        # … then stop, shut down, post_shutdown.
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
        await app.post_shutdown(app)


HOSTS = {"aiogram": aiogram_bot, "ptb": ptb_bot}


@pytest.fixture(params=sorted(HOSTS))
async def host(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    # No migrations run here: Passgram brings its SQLite database up to date as the host starts.
    async with make_world(tmp_path, "polling") as w:
        async with HOSTS[request.param](w):
            yield w


async def test_the_hosts_commands_answer_and_passgram_signs_in_inside_it(host: World) -> None:
    w = host
    email = "ann@example.com"
    remember(w, email)
    ann = w.botapi.user(first_name="Ann")

    await ann.start()  # the host's /start, not Passgram's
    hello = await ann.next_message()
    assert (hello.text or "").startswith("Hi! I'm the Acme community bot.")
    await ann.send_text("/roll")
    assert (await ann.next_message()).text in {f"🎲 {n}" for n in range(1, 7)}

    await ann.send_text("/signin")
    welcome = await ann.next_message()
    assert "sign-in bot for Acme" in (welcome.text or "")
    await ann.send_text(email)
    await ann.next_message()  # the code is on its way
    await ann.send_text(await w.email_code(email))
    done = await ann.next_message()
    assert (done.text or "").startswith("✅ You're signed in to Acme as ann@example.com")
    # Passgram's hints name the command as people type it here.
    assert "/me shows your account" in (done.text or "")

    await ann.send_text("/help")
    assert "/signin — sign in or create an account" in ((await ann.next_message()).text or "")
    # Not in a sign-in any more: plain text is the host's (which says nothing to it).
    await ann.send_text("hello there")
    await ann.send_text("/roll")
    assert ((await ann.next_message()).text or "").startswith("🎲")
