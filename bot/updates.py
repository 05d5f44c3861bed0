"""Incoming updates, handled in order per person and confirmed only once handled.

Frameworks run updates concurrently, so one person's code and button press could be decided in
either order; here each person's updates run one after another, in the order Telegram numbered
them, while different people's run side by side. For long polling, `confirm_point` is the offset
that confirms to Telegram only what is finished: an update in flight when the process dies is
delivered again (and recognised by its id if it got as far as being stored). Nothing here
knows a Telegram framework, so every adapter shares it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable

log = logging.getLogger(__name__)

# An update still running after this long no longer holds back the confirmation of the ones
# after it: it is most likely waiting out a long Telegram retry_after, and holding the offset
# would make every poll return it again.
STUCK_AFTER = 120.0


class Lanes:
    def __init__(self, *, stuck_after: float = STUCK_AFTER) -> None:
        self._stuck_after = stuck_after
        self._tails: dict[Hashable, asyncio.Task[None]] = {}
        self._running: dict[int, tuple[float, asyncio.Task[None]]] = {}
        self._finished: set[int] = set()  # done, but above the last confirm point
        self._highest: int | None = None
        self._progress = asyncio.Event()
        self._awaited = 0  # how many more updates must finish before `progress` returns

    def __len__(self) -> int:
        return len(self._running)

    def known(self, update_id: int) -> bool:
        """Whether the update is running or finished since the last confirmation."""
        return update_id in self._running or update_id in self._finished

    def submit(
        self, key: Hashable | None, update_id: int, handle: Callable[[], Awaitable[None]]
    ) -> asyncio.Task[None]:
        """Run `handle` after every earlier update of the same `key` (None: no ordering)."""
        previous = self._tails.get(key) if key is not None else None
        task = asyncio.create_task(self._run(previous, handle))
        self._running[update_id] = (time.monotonic(), task)
        if key is not None:
            self._tails[key] = task
        if self._highest is None or update_id > self._highest:
            self._highest = update_id
        task.add_done_callback(lambda done: self._done(key, update_id, done))
        return task

    @staticmethod
    async def _run(
        previous: asyncio.Task[None] | None, handle: Callable[[], Awaitable[None]]
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # its failure is its own; only its end matters here
        await handle()

    def _done(self, key: Hashable | None, update_id: int, task: asyncio.Task[None]) -> None:
        self._running.pop(update_id, None)
        self._finished.add(update_id)
        if key is not None and self._tails.get(key) is task:
            del self._tails[key]
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("update %s failed: %s", update_id, type(exc).__name__)
        self._awaited -= 1
        if self._awaited <= 0:
            self._progress.set()

    def confirm_point(self) -> int | None:
        """The getUpdates offset that confirms exactly what is finished (None: nothing seen)."""
        if self._highest is None:
            return None
        now = time.monotonic()
        waiting = [
            update_id
            for update_id, (started, _) in self._running.items()
            if now - started < self._stuck_after
        ]
        point = min(waiting) if waiting else self._highest + 1
        self._finished = {update_id for update_id in self._finished if update_id >= point}
        return point

    async def progress(self, within: float, *, share: float = 0.0) -> None:
        """Wait until updates finish, at least one and `share` of those running, or until
        `within` seconds have passed."""
        self._awaited = max(1, int(len(self._running) * share))
        self._progress.clear()
        try:
            await asyncio.wait_for(self._progress.wait(), within)
        except TimeoutError:
            pass

    async def drain(self, within: float) -> int:
        """Let every running update finish; after `within` seconds, cancel the rest and say how
        many were left."""
        tasks = [task for _, task in self._running.values()]
        if not tasks:
            return 0
        _, pending = await asyncio.wait(tasks, timeout=within)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        return len(pending)
