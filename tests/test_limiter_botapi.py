"""The outgoing limiter in a real aiogram Bot, inside the retry middleware as the bot runs them,
against the Bot API stand-in. The stand-in records when each call arrived and, told to, answers
what breaks a limit with 429 as Telegram does; the windows are counted here from its records.

The limits are scaled down (10 messages a second overall) to keep the test short.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.limits_out import MESSAGES, LocalLimiter, Rate, Rates
from bot.sandbox.botapi import BotApiServer, CallRecord, RateLimits, SimUser
from bot.sandbox.botapi.rates import MESSAGE_METHODS
from bot.telegram.limiter import LimiterMiddleware
from bot.telegram.retry import RetryAfter

RATES = Rates(total=Rate(10, 1.0), private=Rate(1, 1.0), group=Rate(20, 60.0))
STAND_IN_LIMITS = RateLimits(total=10, private=1, group=20)


@pytest.fixture
async def api() -> AsyncIterator[BotApiServer]:
    server = BotApiServer()
    await server.start()
    yield server
    await server.stop()


def make_bot(api: BotApiServer, *, limited: bool = True) -> Bot:
    """A bot whose session is set up as the runner's: retry outside, limiter inside."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(api.url))
    session.middleware(RetryAfter())
    if limited:
        session.middleware(LimiterMiddleware(LocalLimiter(RATES)))
    return Bot(api.create_bot(), session=session)


@pytest.fixture
async def bot(api: BotApiServer) -> AsyncIterator[Bot]:
    real = make_bot(api)
    yield real
    await real.session.close()


async def people(api: BotApiServer, count: int) -> list[SimUser]:
    users = [api.user(f"Person {i}") for i in range(count)]
    for user in users:
        await user.start()
    return users


def sent(api: BotApiServer) -> list[CallRecord]:
    return [c for c in api.calls_to("sendMessage") if c.ok]


def busiest(times: list[float], window: float) -> int:
    times = sorted(times)
    return max((bisect_left(times, t + window, i) - i for i, t in enumerate(times)), default=0)


def from_bot(user: SimUser) -> list[str | None]:
    return [m.text for m in user.history if m.from_bot]


async def test_40_messages_to_40_people_never_break_the_overall_limit(
    api: BotApiServer, bot: Bot
) -> None:
    api.limit_rates(STAND_IN_LIMITS)
    users = await people(api, 40)

    await asyncio.gather(*(bot.send_message(u.id, f"Hello {i}") for i, u in enumerate(users)))

    assert all(from_bot(u) == [f"Hello {i}"] for i, u in enumerate(users))
    assert busiest([c.at for c in sent(api)], 1.0) <= 10
    assert [c for c in api.calls_to("sendMessage") if not c.ok] == []  # the stand-in saw no 429
    assert api.rate_windows().within(STAND_IN_LIMITS)


async def test_without_the_limiter_the_same_burst_breaks_it(api: BotApiServer) -> None:
    unlimited = make_bot(api, limited=False)
    users = await people(api, 40)
    try:
        await asyncio.gather(*(unlimited.send_message(u.id, "Hello") for u in users))
    finally:
        await unlimited.session.close()

    assert busiest([c.at for c in sent(api)], 1.0) > 10


async def test_a_429_pauses_its_chat_for_the_retried_call_and_those_behind_it(
    api: BotApiServer,
) -> None:
    """Three messages a second into a private chat here, so only the pause holds them back."""
    retrying = asyncio.Event()

    async def sleep(seconds: float) -> None:  # the retry middleware's wait, observed
        retrying.set()
        await asyncio.sleep(seconds)

    session = AiohttpSession(api=TelegramAPIServer.from_base(api.url))
    session.middleware(RetryAfter(sleep=sleep))
    session.middleware(LimiterMiddleware(LocalLimiter(Rates(private=Rate(3, 1.0)))))
    bot = Bot(api.create_bot(), session=session)
    alice, bob = await people(api, 2)
    api.fail_next("sendMessage", 429, retry_after=2)
    try:
        first = asyncio.create_task(bot.send_message(alice.id, "one"))
        await retrying.wait()
        await asyncio.gather(
            first,
            *(bot.send_message(alice.id, text) for text in ("two", "three", "four")),
            bot.send_message(bob.id, "to bob"),
        )
    finally:
        await bot.session.close()

    (refused,) = [c for c in api.calls_to("sendMessage") if not c.ok]
    assert refused.error is not None and refused.error.code == 429
    # Sent at the same time, so in any order; none lost.
    assert sorted(map(str, from_bot(alice))) == ["four", "one", "three", "two"]
    assert from_bot(bob) == ["to bob"]
    to_alice = [c.at for c in sent(api) if c.chat_id == alice.id]
    (to_bob,) = [c.at for c in sent(api) if c.chat_id == bob.id]
    assert to_bob < min(to_alice)  # another chat is not held up
    assert min(to_alice) >= refused.at + 2
    # The retried call queued again with the rest: still three a second after the pause.
    assert busiest(to_alice, 1.0) <= 3


def test_every_method_the_stand_in_counts_as_a_message_is_one_here() -> None:
    ours = {name.lower() for name in MESSAGES}
    assert MESSAGE_METHODS - ours == set()
