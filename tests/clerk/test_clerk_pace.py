"""Pacing under Clerk's limits, on a clock the test owns, and 429s waited out by the transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from bot.auth.clerk import InMemoryPacer, PaceLimit
from bot.auth.clerk.transport import Transport
from bot.sandbox.clerk import ClerkDouble
from tests.clerk.conftest import VirtualTime

LANE = "fapi.sign_in.create"


class Told:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(round(seconds, 6))


def pacer(time: VirtualTime, calls: int = 2, **options: float) -> InMemoryPacer:
    return InMemoryPacer(
        {LANE: PaceLimit(calls, 10.0)},
        margin=options.get("margin", 0.5),
        notify_min_wait=options.get("notify_min_wait", 0.0),
        clock=time.clock,
        sleep=time.sleep,
    )


async def test_calls_under_the_limit_go_at_once() -> None:
    time, told = VirtualTime(), Told()
    paced = pacer(time)
    assert await paced.acquire(LANE, notify=told) == 0
    assert await paced.acquire(LANE, notify=told) == 0
    assert told.waits == [] and time.sleeps == []


async def test_the_next_call_waits_for_the_window_and_is_told_first() -> None:
    time, told = VirtualTime(), Told()
    paced = pacer(time)
    for _ in range(5):
        await paced.acquire(LANE, notify=told)
    # Two per 10.5 s (window plus margin): calls 3 and 4 at 10.5, call 5 at 21.
    assert told.waits == [10.5, 10.5]
    assert time.now == 21.0


async def test_queued_callers_are_served_in_order_and_told_their_own_wait() -> None:
    time, told = VirtualTime(), Told()
    gate = asyncio.Event()

    async def held(seconds: float) -> None:
        await gate.wait()

    paced = InMemoryPacer(
        {LANE: PaceLimit(2, 10.0)}, margin=0.5, notify_min_wait=0, clock=time.clock, sleep=held
    )
    tasks = [asyncio.create_task(paced.acquire(LANE, notify=told)) for _ in range(6)]
    await asyncio.sleep(0)
    assert sorted(told.waits) == [10.5, 10.5, 21.0, 21.0]
    gate.set()
    await asyncio.gather(*tasks)


async def test_a_caller_who_gives_up_gives_its_slot_back() -> None:
    time, told = VirtualTime(), Told()
    never = asyncio.Event()

    async def held(seconds: float) -> None:
        await never.wait()

    paced = InMemoryPacer(
        {LANE: PaceLimit(1, 10.0)}, margin=0.0, notify_min_wait=0, clock=time.clock, sleep=held
    )
    await paced.acquire(LANE)
    waiting = asyncio.create_task(paced.acquire(LANE, notify=told))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    latecomer = asyncio.create_task(paced.acquire(LANE, notify=told))
    await asyncio.sleep(0)
    assert told.waits == [10.0, 10.0]  # the same slot, not one behind it
    latecomer.cancel()


async def test_short_waits_are_not_worth_a_message() -> None:
    time, told = VirtualTime(), Told()
    paced = pacer(time, notify_min_wait=11.0)
    for _ in range(5):
        await paced.acquire(LANE, notify=told)
    assert told.waits == []
    assert time.sleeps == [10.5, 10.5]


async def test_a_429_closes_the_lane_for_retry_after() -> None:
    time, told = VirtualTime(), Told()
    paced = pacer(time, calls=5)
    await paced.acquire(LANE)
    await paced.penalise(LANE, 7.0)
    await paced.acquire(LANE, notify=told)
    assert told.waits == [7.0]


async def test_lanes_without_a_limit_are_not_paced_but_can_be_closed() -> None:
    time, told = VirtualTime(), Told()
    paced = pacer(time)
    for _ in range(10):
        await paced.acquire("fapi", notify=told)
    assert told.waits == []
    await paced.penalise("fapi", 3.0)
    await paced.acquire("fapi", notify=told)
    assert told.waits == [3.0]


async def test_keys_are_separate_lanes() -> None:
    time, told = VirtualTime(), Told()
    paced = InMemoryPacer(
        {"bapi.metadata": PaceLimit(1, 10.0)},
        margin=0,
        notify_min_wait=0,
        clock=time.clock,
        sleep=time.sleep,
    )
    await paced.acquire("bapi.metadata", "user_a", told)
    await paced.acquire("bapi.metadata", "user_b", told)
    assert told.waits == []
    await paced.acquire("bapi.metadata", "user_a", told)
    assert told.waits == [10.0]


def test_a_limit_needs_calls_and_a_window() -> None:
    with pytest.raises(ValueError):
        PaceLimit(0, 10.0)
    with pytest.raises(ValueError):
        PaceLimit(5, 0)


# -- the transport against the double ---------------------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def transport(double: ClerkDouble, http: httpx.AsyncClient, time: VirtualTime) -> Transport:
    paced = InMemoryPacer({}, notify_min_wait=0, clock=time.clock, sleep=time.sleep)
    auth = {"Authorization": f"Bearer {double.secret_key}"}
    return Transport(http, double.bapi_url, paced, headers=auth, max_retries=2)


async def test_a_rate_limit_429_is_waited_out_and_sent_again(
    double: ClerkDouble, http: httpx.AsyncClient
) -> None:
    time, told = VirtualTime(), Told()
    user_id = double.create_user(email="ada@example.com")
    double.fail_next(429, "too_many_requests", operation="GetUser", retry_after=7)

    reply = await transport(double, http, time).call(
        "GET", f"/v1/users/{user_id}", operation="users.get", slots=[("bapi", "")], notify=told
    )

    assert reply.status == 200 and reply.json()["id"] == user_id
    assert time.sleeps == [7.0] and told.waits == [7.0]
    assert [e.status for e in double.calls("GetUser")] == [429, 200]


async def test_a_429_about_the_persons_own_request_is_an_answer_not_a_wait(
    double: ClerkDouble, http: httpx.AsyncClient
) -> None:
    time = VirtualTime()
    user_id = double.create_user(email="ada@example.com")
    double.fail_next(429, "verification_code_too_many_requests", operation="GetUser")

    reply = await transport(double, http, time).call(
        "GET", f"/v1/users/{user_id}", operation="users.get", slots=[("bapi", "")]
    )

    assert reply.status == 429 and time.sleeps == []


async def test_retries_stop_after_a_while(double: ClerkDouble, http: httpx.AsyncClient) -> None:
    time = VirtualTime()
    user_id = double.create_user(email="ada@example.com")
    for _ in range(3):
        double.fail_next(429, "too_many_requests", operation="GetUser", retry_after=1)

    reply = await transport(double, http, time).call(
        "GET", f"/v1/users/{user_id}", operation="users.get", slots=[("bapi", "")]
    )

    assert reply.status == 429 and time.sleeps == [1.0, 1.0]
