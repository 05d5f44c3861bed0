"""Telegram's message limits in the Bot API stand-in: the windows a test reads after a burst,
the optional 429 past the limits, and a burst of 1,000 join requests served whole."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramRetryAfter
from aiogram.types import ChatJoinRequest

from bot.sandbox.botapi import ApiError, BotApiServer, CallRecord, RateLimits, rate_windows

START = 1_800_000_000.0
BOT = 7


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def api(clock: Clock) -> AsyncIterator[BotApiServer]:
    server = BotApiServer(clock=clock)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def bot(api: BotApiServer) -> AsyncIterator[Bot]:
    real = Bot(api.create_bot(), session=AiohttpSession(api=TelegramAPIServer.from_base(api.url)))
    yield real
    await real.session.close()


def sent(at: float, chat_id: int | None, method: str = "sendMessage", **kw: object) -> CallRecord:
    return CallRecord(BOT, method, {}, at=START + at, chat_id=chat_id, **kw)  # type: ignore[arg-type]


def test_windows_of_a_crafted_burst() -> None:
    alice, bob, group = 101, 102, -1001
    calls = [
        # Alice: three messages inside one second, a fourth exactly a second after the first.
        sent(0.0, alice), sent(0.4, alice), sent(0.99, alice), sent(1.0, alice),
        sent(0.5, bob),
        # The group: one message every three seconds for a minute, then one at 60.0 s, which
        # shares a minute with all but the first; an edit counts, a refused call does not.
        *[sent(3.0 * i, group) for i in range(20)],
        sent(60.0, group),
        sent(59.5, group, method="editMessageText"),
        sent(30.0, group, error=ApiError.make(429, retry_after=5)),
        sent(30.0, group, error=ApiError.make(403, "bot was kicked from the supergroup chat")),
        # Not messages: no limit applies.
        sent(0.1, group, method="approveChatJoinRequest"),
        sent(0.1, None, method="answerChatJoinRequestQuery"),
        # Another bot's messages are its own business.
        CallRecord(BOT + 1, "sendMessage", {}, at=START, chat_id=alice),
    ]  # fmt: skip
    windows = rate_windows(calls, BOT)
    assert (windows.private, windows.busiest_private) == (3, alice)
    assert (windows.group, windows.busiest_group) == (21, group)
    # In [0, 1): alice 0.0, 0.4, 0.99, bob 0.5 and the group's message at 0.0.
    assert windows.overall == 5
    assert not windows.within(RateLimits())
    assert windows.within(RateLimits(total=5, private=3, group=21))
    assert rate_windows(calls).private == 4  # both bots wrote to Alice at START


async def test_limits_are_answered_with_retry_after_when_asked(
    api: BotApiServer, bot: Bot, clock: Clock
) -> None:
    people = [api.user(f"User {i}") for i in range(31)]
    for person in people:
        await person.start()
    alice = people[0]
    await bot.send_message(alice.id, "one")  # nothing is enforced until asked
    await bot.send_message(alice.id, "two")
    api.limit_rates(RateLimits(total=30, private=1, group=20))
    clock.advance(1)

    await bot.send_message(alice.id, "three")
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(alice.id, "four")
    assert caught.value.retry_after == 1
    clock.advance(1)
    await bot.send_message(alice.id, "four")

    clock.advance(1)
    for person in people[:30]:
        await bot.send_message(person.id, "news")
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(people[30].id, "news")
    clock.advance(1)
    await bot.send_message(people[30].id, "news")

    owner = api.user("Olga")
    club = api.create_group("Book club", owner=owner)
    club.add_bot()
    for _ in range(20):
        clock.advance(2)
        await bot.send_message(club.id, "hello")
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(club.id, "one too many")
    assert caught.value.retry_after == 22  # the first of the 20 was 38 s ago
    clock.advance(22)
    await bot.send_message(club.id, "hello again")

    api.limit_rates(None)
    windows = api.rate_windows()
    # Refused calls sent nothing; the two unguarded messages are the only breach.
    assert (windows.overall, windows.private, windows.group) == (30, 2, 20)


async def test_a_thousand_join_requests_in_one_burst(api: BotApiServer, bot: Bot) -> None:
    owner = api.user("Olga")
    news = api.create_channel("News", owner=owner)
    news.add_bot(rights={"can_invite_users", "can_post_messages"})
    await bot.get_updates(timeout=0, allowed_updates=["chat_join_request", "chat_member"])
    link = await bot.create_chat_invite_link(news.id, creates_join_request=True)
    people = [api.user(f"Reader {i}") for i in range(1000)]

    began = time.perf_counter()
    for person in people:
        await person.ask_to_join(link.invite_link)
    asked = time.perf_counter()
    requests: list[ChatJoinRequest] = []
    offset = None
    while len(requests) < 1000:
        batch = await bot.get_updates(offset=offset, timeout=0)
        assert batch, f"only {len(requests)} join requests arrived"
        requests += [u.chat_join_request for u in batch if u.chat_join_request is not None]
        offset = batch[-1].update_id + 1
    for request in requests:
        await bot.approve_chat_join_request(news.id, request.from_user.id)
    done = time.perf_counter()
    print(f"1,000 requests: asked in {asked - began:.3f} s, served in {done - asked:.3f} s")

    assert sorted(r.from_user.id for r in requests) == [p.id for p in people]
    assert news.member_count == 1002
    assert news.group.links[link.invite_link].pending == 0
    assert all(news.status(person) == "member" for person in people)
