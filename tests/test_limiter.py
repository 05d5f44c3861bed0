"""The outgoing limiter's core, in virtual time: Telegram's limits kept, callers served in order,
429s obeyed, nothing kept for chats gone quiet.

Each test runs on an event loop whose clock jumps to the next timer when every task waits
(tests/support/virtual_time.py), and the limiter gets that loop's clock and sleep. A "call" holds
its slot for a network round trip of virtual time and reaches the server midway, at a time that
varies from call to call, as over a real network; the limits are checked on those arrivals, the
way Telegram (and the Bot API stand-in) counts them.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiogram import methods as aiogram_methods

from bot.config import ConfigError, load_settings
from bot.limits_out import (
    ADMINISTRATION,
    MESSAGES,
    Cost,
    LocalLimiter,
    Rate,
    Rates,
    cost_of,
    limiter_for,
)
from tests.support.virtual_time import run_virtual

PRIVATE, GROUP = 1001, -1001234567890


@dataclass
class Telegram:
    """The far side: when each call arrived, in which chat, in arrival order."""

    rng: random.Random = field(default_factory=lambda: random.Random(7))
    arrivals: list[tuple[float, int | str | None, str]] = field(default_factory=list)

    def at(self, chat: int | str | None = None) -> list[float]:
        return [t for t, c, _ in self.arrivals if chat is None or c == chat]

    def labels(self, chat: int | str | None = None) -> list[str]:
        return [label for _, c, label in self.arrivals if chat is None or c == chat]


def virtual_limiter(rates: Rates | None = None) -> LocalLimiter:
    loop = asyncio.get_running_loop()
    return LocalLimiter(rates, clock=loop.time, sleep=asyncio.sleep)


async def call(
    limiter: LocalLimiter,
    telegram: Telegram,
    chat: int | str | None,
    label: str = "",
    *,
    cost: Cost = Cost.CHAT,
    answer: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """One Bot API call through the limiter: a round trip of 20-300 ms, arriving midway."""
    trip = telegram.rng.uniform(0.02, 0.3)
    arrives = telegram.rng.uniform(0.0, 1.0)
    async with limiter.slot(chat, cost):
        await asyncio.sleep(trip * arrives)
        telegram.arrivals.append((asyncio.get_running_loop().time(), chat, label))
        if answer is not None:
            await answer()
        await asyncio.sleep(trip * (1 - arrives))


def busiest(times: list[float], window: float) -> int:
    """The most of these instants inside any half-open interval `window` long."""
    times = sorted(times)
    return max((bisect_left(times, t + window, i) - i for i, t in enumerate(times)), default=0)


def now() -> float:
    return asyncio.get_running_loop().time()


# --- Telegram's three limits ----------------------------------------------------------------


def test_a_burst_to_100_private_chats_goes_out_at_most_30_a_second() -> None:
    async def main() -> float:
        limiter, telegram = virtual_limiter(), Telegram()
        await asyncio.gather(*(call(limiter, telegram, PRIVATE + i) for i in range(100)))
        assert len(telegram.arrivals) == 100
        assert {c for _, c, _ in telegram.arrivals} == {PRIVATE + i for i in range(100)}
        assert busiest(telegram.at(), 1.0) <= 30
        return now()

    # Four rounds of 30: paced, not stalled (each window opens when the last answer came back).
    assert 3.0 < run_virtual(main()) < 4.5


def test_five_messages_to_one_private_chat_take_four_seconds_and_keep_their_order() -> None:
    async def main() -> None:
        limiter, telegram = virtual_limiter(), Telegram()
        await asyncio.gather(*(call(limiter, telegram, PRIVATE, f"m{i}") for i in range(5)))
        times = telegram.at(PRIVATE)
        assert all(later - earlier >= 1.0 for earlier, later in itertools.pairwise(times))
        assert times[-1] - times[0] >= 4.0
        assert telegram.labels(PRIVATE) == ["m0", "m1", "m2", "m3", "m4"]

    run_virtual(main())


def test_25_messages_to_one_group_spread_over_more_than_a_minute() -> None:
    async def main() -> None:
        limiter, telegram = virtual_limiter(), Telegram()
        await asyncio.gather(*(call(limiter, telegram, GROUP, f"m{i}") for i in range(25)))
        times = telegram.at(GROUP)
        assert len(times) == 25
        assert busiest(times, 60.0) <= 20
        assert times[-1] - times[0] > 60.0
        # A window, not a drip: the first 20 go out together.
        assert times[19] - times[0] < 1.0
        assert set(telegram.labels(GROUP)[20:]) == {f"m{i}" for i in range(20, 25)}

    run_virtual(main())


def test_a_group_waiting_for_its_window_holds_no_one_else_up() -> None:
    async def main() -> None:
        limiter, telegram = virtual_limiter(), Telegram()
        group = [asyncio.create_task(call(limiter, telegram, GROUP, "g")) for _ in range(25)]
        await asyncio.sleep(0.5)  # 20 sent, 5 waiting for the minute to pass; then others write
        await asyncio.gather(*(call(limiter, telegram, PRIVATE + i, "p") for i in range(10)))
        assert max(t for t, _, label in telegram.arrivals if label == "p") < 2
        await asyncio.gather(*group)
        assert telegram.labels()[-5:] == ["g"] * 5
        assert busiest(telegram.at(GROUP), 60.0) <= 20

    run_virtual(main())


def test_callers_are_served_first_come_first_served_overall() -> None:
    async def main() -> None:
        limiter, telegram = virtual_limiter(Rates(total=Rate(1, 1.0))), Telegram()
        await asyncio.gather(*(call(limiter, telegram, PRIVATE + i, f"m{i}") for i in range(6)))
        assert telegram.labels() == [f"m{i}" for i in range(6)]

    run_virtual(main())


def test_a_caller_arriving_as_the_lane_opens_queues_behind_those_waiting() -> None:
    async def main() -> None:
        limiter, telegram = virtual_limiter(Rates(total=Rate(1, 1.0))), Telegram()

        async def late() -> None:
            await asyncio.sleep(5)  # woken first at t=5, before the waiting caller
            await call(limiter, telegram, PRIVATE + 1, "late")

        latecomer = asyncio.create_task(late())
        await asyncio.sleep(0)
        await limiter.penalise(None, 5)
        await call(limiter, telegram, PRIVATE, "waiting")
        await latecomer
        assert telegram.labels() == ["waiting", "late"]

    run_virtual(main())


# --- 429 -------------------------------------------------------------------------------------


def test_a_429_in_a_chat_pauses_that_chat_only() -> None:
    async def main() -> None:
        limiter, telegram = virtual_limiter(), Telegram()

        async def flood() -> None:
            await limiter.penalise(GROUP, 30)

        await call(limiter, telegram, GROUP, "refused", answer=flood)
        paused_at = now()
        await asyncio.gather(
            call(limiter, telegram, GROUP, "after"),
            call(limiter, telegram, PRIVATE, "elsewhere"),
            # Administration is not paced per chat, but the chat's pause holds it too.
            call(limiter, telegram, GROUP, "approve", cost=Cost.BOT),
            call(limiter, telegram, -42, "approve elsewhere", cost=Cost.BOT),
        )
        at = dict(zip(telegram.labels(), telegram.at(), strict=True))
        assert at["after"] >= paused_at + 29.5  # the 429 came mid-call, before its answer
        assert at["approve"] >= paused_at + 29.5
        assert at["elsewhere"] < paused_at + 1
        assert at["approve elsewhere"] < paused_at + 1

    run_virtual(main())


def test_a_429_naming_no_chat_pauses_every_counted_call_but_not_free_ones() -> None:
    async def main() -> None:
        limiter, telegram = virtual_limiter(), Telegram()
        await limiter.penalise(None, 10)
        await asyncio.gather(
            call(limiter, telegram, PRIVATE, "message"),
            call(limiter, telegram, GROUP, "ban", cost=Cost.BOT),
            call(limiter, telegram, None, "answerCallbackQuery", cost=Cost.FREE),
        )
        at = dict(zip(telegram.labels(), telegram.at(), strict=True))
        assert at["answerCallbackQuery"] < 1
        assert at["message"] >= 10
        assert at["ban"] >= 10

    run_virtual(main())


def test_calls_queued_during_a_pause_leave_in_their_order_and_at_the_rate() -> None:
    async def main() -> None:
        limiter, telegram = virtual_limiter(Rates(total=Rate(3, 1.0))), Telegram()
        await limiter.penalise(None, 5)
        await asyncio.gather(*(call(limiter, telegram, PRIVATE + i, f"m{i}") for i in range(9)))
        # Three a second, in the order they came (within a round, the network decides).
        labels = telegram.labels()
        assert [set(labels[i : i + 3]) for i in (0, 3, 6)] == [
            {"m0", "m1", "m2"},
            {"m3", "m4", "m5"},
            {"m6", "m7", "m8"},
        ]
        assert min(telegram.at()) >= 5
        assert busiest(telegram.at(), 1.0) <= 3

    run_virtual(main())


# --- Administration and free calls ----------------------------------------------------------


def test_administration_counts_overall_but_not_against_the_group() -> None:
    async def main() -> None:
        limiter, telegram = virtual_limiter(), Telegram()
        await asyncio.gather(*(call(limiter, telegram, GROUP, cost=Cost.BOT) for _ in range(90)))
        times = telegram.at(GROUP)
        # 90 approvals in one group: three seconds at 30 a second, not four and a half minutes.
        assert times[-1] - times[0] < 4
        assert busiest(times, 1.0) <= 30

    run_virtual(main())


@pytest.mark.parametrize(
    ("method", "cost"),
    [
        ("sendMessage", Cost.CHAT),
        ("sendPhoto", Cost.CHAT),
        ("editMessageText", Cost.CHAT),
        ("copyMessage", Cost.CHAT),
        ("forwardMessage", Cost.CHAT),
        ("approveChatJoinRequest", Cost.BOT),
        ("declineChatJoinRequest", Cost.BOT),
        ("restrictChatMember", Cost.BOT),
        ("banChatMember", Cost.BOT),
        ("unbanChatMember", Cost.BOT),
        ("createChatInviteLink", Cost.BOT),
        ("deleteMessage", Cost.BOT),
        ("answerCallbackQuery", Cost.FREE),
        ("answerChatJoinRequestQuery", Cost.FREE),
        ("sendChatJoinRequestWebApp", Cost.FREE),
        ("sendChatAction", Cost.FREE),
        ("getUpdates", Cost.FREE),
        ("getMe", Cost.FREE),
        ("setWebhook", Cost.FREE),
        ("getChatMember", Cost.FREE),
    ],
)
def test_what_each_call_costs(method: str, cost: Cost) -> None:
    assert cost_of(method) is cost


def test_every_counted_name_is_a_bot_api_method() -> None:
    known = {
        getattr(cls, "__api_method__", None)
        for cls in vars(aiogram_methods).values()
        if isinstance(cls, type)
    }
    assert (MESSAGES | ADMINISTRATION) - known == set()
    assert not MESSAGES & ADMINISTRATION


# --- Memory and cancellation ----------------------------------------------------------------


def test_chats_gone_quiet_leave_no_state() -> None:
    async def main() -> None:
        limiter, telegram = virtual_limiter(), Telegram()
        held: list[int] = []

        async def stream() -> None:
            # 3,000 people, each written to once, as fast as the limits allow (100 s).
            for start in range(0, 3000, 30):
                batch = [call(limiter, telegram, PRIVATE + i) for i in range(start, start + 30)]
                await asyncio.gather(*batch, call(limiter, telegram, GROUP - start))
                held.append(limiter.chats_held)

        await stream()
        assert len(telegram.arrivals) == 3100
        # Only the chats within their window: private ones for a second, groups for a minute.
        assert max(held) <= 2 * 30 + 60
        await asyncio.sleep(61)
        await call(limiter, telegram, PRIVATE)
        assert limiter.chats_held == 1
        await asyncio.sleep(1)
        await limiter.penalise(GROUP, 5)
        assert limiter.chats_held == 1  # a paused chat is kept for its pause...
        await asyncio.sleep(5)
        await call(limiter, telegram, None)
        assert limiter.chats_held == 0  # ...and no longer

    run_virtual(main())


def test_a_caller_that_gives_up_while_waiting_leaves_its_place_and_no_state() -> None:
    async def main() -> None:
        limiter, telegram = virtual_limiter(), Telegram()
        first = asyncio.create_task(call(limiter, telegram, PRIVATE, "first"))
        quitter = asyncio.create_task(call(limiter, telegram, PRIVATE, "quitter"))
        last = asyncio.create_task(call(limiter, telegram, PRIVATE, "last"))
        await asyncio.sleep(0.5)
        quitter.cancel()
        await asyncio.gather(first, last)
        with pytest.raises(asyncio.CancelledError):
            await quitter
        assert telegram.labels() == ["first", "last"]
        assert telegram.at()[1] - telegram.at()[0] < 2
        await asyncio.sleep(2)
        await call(limiter, telegram, None)
        assert limiter.chats_held == 0

    run_virtual(main())


def test_the_head_of_the_queue_giving_up_lets_the_next_one_through() -> None:
    async def main() -> None:
        limiter, telegram = virtual_limiter(Rates(total=Rate(1, 1.0))), Telegram()
        await call(limiter, telegram, PRIVATE, "first")
        head = asyncio.create_task(call(limiter, telegram, PRIVATE + 1, "head"))
        second = asyncio.create_task(call(limiter, telegram, PRIVATE + 2, "second"))
        await asyncio.sleep(0.1)
        head.cancel()
        await second
        assert telegram.labels() == ["first", "second"]

    run_virtual(main())


# --- Settings --------------------------------------------------------------------------------


def test_the_settings_default_to_telegrams_limits() -> None:
    settings = load_settings(_env_file=None)
    assert (settings.telegram_rate_total, settings.telegram_rate_private) == ("30/1s", "1/1s")
    assert settings.telegram_rate_group == "20/60s"
    limiter = limiter_for(settings)
    assert isinstance(limiter, LocalLimiter)
    assert limiter.rates == Rates(Rate(30, 1.0), Rate(1, 1.0), Rate(20, 60.0))


def test_a_bare_count_is_per_the_settings_own_window() -> None:
    settings = load_settings(
        _env_file=None,
        telegram_rate_total="1000",
        telegram_rate_private="2/3s",
        telegram_rate_group="10",
    )
    limiter = limiter_for(settings)
    assert isinstance(limiter, LocalLimiter)
    assert limiter.rates == Rates(Rate(1000, 1.0), Rate(2, 3.0), Rate(10, 60.0))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0", "expected 1 to 100000 calls"),
        ("twenty", "expected N or N/SECONDS"),
        ("20/0", "more than 0"),
        ("20/7200", "at most 3600"),
        ("-5", "expected N or N/SECONDS"),
    ],
)
def test_a_bad_rate_is_refused_in_one_line_naming_the_setting(value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(_env_file=None, telegram_rate_group=value)
    message = str(refused.value)
    assert message.startswith("TELEGRAM_RATE_GROUP: ")
    assert reason in message
    assert "\n" not in message


def test_the_rate_settings_are_documented_with_their_defaults() -> None:
    root = Path(__file__).resolve().parent.parent
    example = (root / ".env.example").read_text()
    readme = (root / "README.md").read_text()
    defaults = load_settings(_env_file=None)
    for name in ("TELEGRAM_RATE_TOTAL", "TELEGRAM_RATE_PRIVATE", "TELEGRAM_RATE_GROUP"):
        assert f"\n{name}={getattr(defaults, name.lower())}\n" in example
        assert f"`{name}`" in readme
