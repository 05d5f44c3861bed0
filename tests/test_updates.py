"""Lanes (bot/updates.py): one person's updates run in order while different people's run side
by side; the confirm point never passes an update still running; `progress` returns once the
share of running updates it waits for has finished; a stop cancels what outlives its wait."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bot.updates import Lanes

FOREVER = 3600.0  # a wait no test reaches: what ends it is the updates finishing


class Gated:
    """Updates that finish when the test says so, and the order they ran in."""

    def __init__(self) -> None:
        self.gates: dict[int, asyncio.Event] = {}
        self.ran: list[int] = []

    def handler(self, update_id: int) -> Callable[[], Awaitable[None]]:
        gate = self.gates[update_id] = asyncio.Event()

        async def handle() -> None:
            self.ran.append(update_id)
            await gate.wait()

        return handle

    def finish(self, *update_ids: int) -> None:
        for update_id in update_ids:
            self.gates[update_id].set()


async def settle() -> None:
    """Let every task that can run, run (no timing involved)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_one_persons_updates_run_in_order_and_others_beside_them() -> None:
    lanes, updates = Lanes(), Gated()
    lanes.submit("ada", 1, updates.handler(1))
    lanes.submit("ada", 2, updates.handler(2))
    lanes.submit("bob", 3, updates.handler(3))
    await settle()
    assert updates.ran == [1, 3]  # Ada's second waits for her first; Bob's does not
    updates.finish(1)
    await settle()
    assert updates.ran == [1, 3, 2]
    updates.finish(2, 3)
    assert await lanes.drain(FOREVER) == 0


async def test_the_confirm_point_stops_at_the_oldest_update_still_running() -> None:
    lanes, updates = Lanes(), Gated()
    assert lanes.confirm_point() is None  # nothing seen: no offset to confirm
    for update_id in (10, 11, 12):
        lanes.submit(update_id, update_id, updates.handler(update_id))
    updates.finish(10, 12)
    await settle()
    assert lanes.confirm_point() == 11
    assert lanes.known(12) and not lanes.known(10)  # 12 finished but is not confirmed yet
    updates.finish(11)
    await settle()
    assert lanes.confirm_point() == 13
    assert not lanes.known(12)


async def test_an_update_stuck_past_its_time_no_longer_holds_back_the_others() -> None:
    lanes, updates = Lanes(stuck_after=0.0), Gated()
    lanes.submit(1, 1, updates.handler(1))
    lanes.submit(2, 2, updates.handler(2))
    updates.finish(2)
    await settle()
    assert lanes.confirm_point() == 3
    updates.finish(1)
    assert await lanes.drain(FOREVER) == 0


async def test_progress_waits_for_its_share_of_the_running_updates() -> None:
    lanes, updates = Lanes(), Gated()
    for update_id in range(8):
        lanes.submit(update_id, update_id, updates.handler(update_id))
    await settle()
    waiting = asyncio.create_task(lanes.progress(FOREVER, share=0.25))  # 2 of the 8
    updates.finish(0)
    await settle()
    assert not waiting.done()
    updates.finish(1)
    await settle()
    assert waiting.done()
    # With no share, one finished update is enough.
    waiting = asyncio.create_task(lanes.progress(FOREVER))
    await settle()
    assert not waiting.done()
    updates.finish(2)
    await settle()
    assert waiting.done()
    updates.finish(*range(3, 8))
    assert await lanes.drain(FOREVER) == 0


async def test_progress_returns_after_its_time_when_nothing_finishes() -> None:
    lanes, updates = Lanes(), Gated()
    lanes.submit(1, 1, updates.handler(1))
    await lanes.progress(0.0)
    assert lanes.known(1) and len(lanes) == 1
    updates.finish(1)
    assert await lanes.drain(FOREVER) == 0


async def test_a_failed_update_counts_as_finished_and_does_not_stop_the_next() -> None:
    lanes, ran = Lanes(), []

    async def fails() -> None:
        raise RuntimeError("boom")

    async def second() -> None:
        ran.append(2)

    lanes.submit("ada", 1, fails)
    lanes.submit("ada", 2, second)
    assert await lanes.drain(FOREVER) == 0
    assert ran == [2]
    assert lanes.confirm_point() == 3


async def test_drain_cancels_what_outlives_its_wait_and_says_how_many() -> None:
    lanes, updates = Lanes(), Gated()
    lanes.submit(1, 1, updates.handler(1))
    lanes.submit(2, 2, updates.handler(2))
    updates.finish(1)
    await settle()
    assert await lanes.drain(0.0) == 1
    assert len(lanes) == 0
