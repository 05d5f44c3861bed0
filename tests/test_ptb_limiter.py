"""python-telegram-bot's calls through Passgram's rate limiter (bot.ptb.limiter), with a real
PTB Bot against the Bot API stand-in: the shared retry rules (5xx and proxy pages retried with
backoff, 429 obeyed, refusals not retried) and the outgoing limiter (a 429 pauses its chat).

The retry rules' sleep is injected and records each wait instead of waiting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from telegram.error import BadRequest, NetworkError
from telegram.ext import ApplicationBuilder, ExtBot

from bot.limits_out import LocalLimiter, Rate, Rates
from bot.ptb.limiter import PassgramRateLimiter
from bot.resend import Resend
from bot.sandbox.botapi import BotApiServer, SimUser

RATES = Rates(total=Rate(30, 1.0), private=Rate(1, 1.0), group=Rate(20, 60.0))


class Waits:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


class Paused:
    """The limiter, noting each pause a 429 puts on a chat."""

    def __init__(self) -> None:
        self.limiter = LocalLimiter(RATES)
        self.pauses: list[tuple[object, float]] = []
        original: Callable[[object, float], Awaitable[None]] = self.limiter.penalise  # type: ignore[assignment]

        async def penalise(chat_id: object, seconds: float) -> None:
            self.pauses.append((chat_id, seconds))
            await original(chat_id, seconds)

        self.limiter.penalise = penalise  # type: ignore[method-assign,assignment]


@pytest.fixture
async def api() -> AsyncIterator[BotApiServer]:
    server = BotApiServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def waits() -> Waits:
    return Waits()


@pytest.fixture
def paused() -> Paused:
    return Paused()


@pytest.fixture
async def bot(api: BotApiServer, waits: Waits, paused: Paused) -> AsyncIterator[ExtBot[None]]:
    limiter = PassgramRateLimiter(paused.limiter, Resend(sleep=waits))
    application = (
        ApplicationBuilder()
        .token(api.create_bot())
        .base_url(f"{api.url}/bot")
        .rate_limiter(limiter)
        .updater(None)
        .build()
    )
    async with application:
        yield application.bot


async def someone(api: BotApiServer) -> SimUser:
    user = api.user("Alice")
    await user.start()
    return user


def from_bot(user: SimUser) -> list[str | None]:
    return [m.text for m in user.history if m.from_bot]


@pytest.mark.parametrize("proxy_page", [False, True], ids=["json-502", "nginx-page-502"])
async def test_two_502s_then_the_message_is_delivered_once(
    api: BotApiServer, bot: ExtBot[None], waits: Waits, proxy_page: bool
) -> None:
    alice = await someone(api)
    api.fail_next("sendMessage", 502, times=2, proxy_page=proxy_page)

    await bot.send_message(alice.id, "Your code is on its way")

    assert from_bot(alice) == ["Your code is on its way"]
    assert [c.error.code for c in api.calls_to("sendMessage") if c.error] == [502, 502]
    assert len(waits.seconds) == 2
    assert 0.5 <= waits.seconds[0] <= 1.0
    assert 1.0 <= waits.seconds[1] <= 2.0


async def test_a_429_is_obeyed_and_pauses_its_chat(
    api: BotApiServer, bot: ExtBot[None], waits: Waits, paused: Paused
) -> None:
    alice = await someone(api)
    # The limiter's pause is real time (the retry's wait is not): keep it short.
    api.fail_next("sendMessage", 429, retry_after=1)

    await bot.send_message(alice.id, "Welcome back")

    assert waits.seconds == [1]
    assert paused.pauses == [(alice.id, 1.0)]
    assert from_bot(alice) == ["Welcome back"]


async def test_a_server_that_keeps_failing_is_given_up_on(
    api: BotApiServer, bot: ExtBot[None], waits: Waits
) -> None:
    alice = await someone(api)
    api.fail_next("sendMessage", 500, times=100)

    with pytest.raises(NetworkError):
        await bot.send_message(alice.id, "never")

    assert len(api.calls_to("sendMessage")) == 6
    assert len(waits.seconds) == 5
    assert from_bot(alice) == []


async def test_a_refusal_is_not_retried(api: BotApiServer, bot: ExtBot[None], waits: Waits) -> None:
    stranger = api.user("Stranger")  # never wrote to the bot: "chat not found"
    with pytest.raises(BadRequest):
        await bot.send_message(stranger.id, "hello")
    assert len(api.calls_to("sendMessage")) == 1
    assert waits.seconds == []
