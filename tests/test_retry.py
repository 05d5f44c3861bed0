"""Outgoing Bot API calls through the retry middleware, with a real aiogram Bot against the
Bot API stand-in: Telegram's 5xx, its proxy's error pages, lost connections and 429s.

The middleware's sleep is injected and records each wait instead of waiting, so a test of a
900 s `retry_after` takes no time and asserts exactly what was waited.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)

from bot.sandbox.botapi import BotApiServer, SimUser
from bot.telegram.retry import RetryAfter
from tests.support import unused_port


class Waits:
    """The injected sleep: records each wait; `then` runs on a wait (e.g. brings a server up)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.then: Callable[[], Awaitable[None]] | None = None

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)
        if self.then is not None:
            then, self.then = self.then, None
            await then()


@pytest.fixture
async def api() -> AsyncIterator[BotApiServer]:
    server = BotApiServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def waits() -> Waits:
    return Waits()


def make_bot(base_url: str, token: str, retry: RetryAfter) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(base_url))
    session.middleware(retry)
    return Bot(token, session=session)


@pytest.fixture
async def bot(api: BotApiServer, waits: Waits) -> AsyncIterator[Bot]:
    real = make_bot(api.url, api.create_bot(), RetryAfter(sleep=waits))
    yield real
    await real.session.close()


def from_bot(user: SimUser) -> list[str | None]:
    """What the user's chat shows from the bot, oldest first."""
    return [m.text for m in user.history if m.from_bot]


@pytest.mark.parametrize("proxy_page", [False, True], ids=["json-502", "nginx-page-502"])
async def test_two_502s_then_the_message_is_delivered_once(
    api: BotApiServer, bot: Bot, waits: Waits, proxy_page: bool
) -> None:
    alice = api.user("Alice")
    await alice.start()
    api.fail_next("sendMessage", 502, times=2, proxy_page=proxy_page)

    sent = await bot.send_message(alice.id, "Your code is on its way")

    assert from_bot(alice) == ["Your code is on its way"]
    assert sent.chat.id == alice.id
    assert [c.error.code for c in api.calls_to("sendMessage") if c.error] == [502, 502]
    # Exponential backoff with jitter: the n-th wait is between half and all of 1 s * 2**(n-1).
    assert len(waits.seconds) == 2
    assert 0.5 <= waits.seconds[0] <= 1.0
    assert 1.0 <= waits.seconds[1] <= 2.0


async def test_a_429_longer_than_five_minutes_is_obeyed(
    api: BotApiServer, bot: Bot, waits: Waits, caplog: pytest.LogCaptureFixture
) -> None:
    alice = api.user("Alice")
    await alice.start()
    api.fail_next("sendMessage", 429, retry_after=900)

    with caplog.at_level(logging.WARNING, logger="bot.resend"):
        await bot.send_message(alice.id, "Welcome back")

    assert waits.seconds == [900]
    assert from_bot(alice) == ["Welcome back"]
    assert any("900" in r.getMessage() and "sendMessage" in r.getMessage() for r in caplog.records)


async def test_a_lost_connection_is_retried_until_the_server_is_back(waits: Waits) -> None:
    port = unused_port()
    api = BotApiServer(port=port)
    token = api.create_bot()
    bot = make_bot(f"http://127.0.0.1:{port}", token, RetryAfter(sleep=waits))
    waits.then = api.start  # nothing listens until the middleware waits for the first time
    try:
        me = await bot.get_me()
        assert me.id == int(token.split(":")[0])
        assert len(waits.seconds) == 1
        assert len(api.calls_to("getMe")) == 1
    finally:
        await bot.session.close()
        await api.stop()


async def test_a_server_that_keeps_failing_is_given_up_on(
    api: BotApiServer, bot: Bot, waits: Waits
) -> None:
    alice = api.user("Alice")
    await alice.start()
    api.fail_next("sendMessage", 500, times=100)

    with pytest.raises(TelegramServerError):
        await bot.send_message(alice.id, "never")

    # The bound: 1 call and 5 retries, waiting at most 1+2+4+8+16 s in all.
    assert len(api.calls_to("sendMessage")) == 6
    assert len(waits.seconds) == 5
    assert sum(waits.seconds) <= 31
    assert all(w <= 16 for w in waits.seconds)
    assert from_bot(alice) == []


async def test_429s_without_end_are_given_up_on_after_obeying_each(
    api: BotApiServer, bot: Bot, waits: Waits
) -> None:
    alice = api.user("Alice")
    await alice.start()
    api.fail_next("sendMessage", 429, retry_after=2, times=100)

    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(alice.id, "never")

    assert waits.seconds == [2] * 10
    assert len(api.calls_to("sendMessage")) == 11


async def test_a_refusal_is_not_retried(api: BotApiServer, bot: Bot, waits: Waits) -> None:
    stranger = api.user("Stranger")  # never wrote to the bot: "chat not found"
    with pytest.raises(TelegramBadRequest):
        await bot.send_message(stranger.id, "hello")
    assert len(api.calls_to("sendMessage")) == 1
    assert waits.seconds == []


async def test_get_updates_is_left_to_the_polling_loop(
    api: BotApiServer, bot: Bot, waits: Waits
) -> None:
    """aiogram's polling loop retries getUpdates forever with its own backoff; retrying inside
    it as well would only hold the loop (and a stop) longer."""
    api.fail_next("getUpdates", 502)
    with pytest.raises(TelegramServerError):
        await bot.get_updates(timeout=0)
    assert waits.seconds == []
    api.fail_next("getUpdates", 502, proxy_page=True)
    with pytest.raises(Exception) as caught:
        await bot.get_updates(timeout=0)
    assert not isinstance(caught.value, TelegramNetworkError)
    assert waits.seconds == []
