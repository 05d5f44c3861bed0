"""Pacing calls under Clerk's rate limits, so people wait in a queue instead of collecting 429s.

Clerk limits its Frontend API per client IP, and every Telegram user reaches Clerk from the
bot's IP: five sign-in creates in ten seconds are five people, not five tries of one. So each
limited call first takes a slot in a lane (one lane per limit, and per key where the limit is
per user, like metadata writes). A slot is a send time that keeps at most `calls` sends in any
`window` (plus a margin for the network between us and Clerk). Slots are handed out in order,
so the wait is known the moment a caller queues, and the caller is told it right away.

A 429 that comes anyway (another process sharing the IP, a limit lower than configured) closes
the lane for Retry-After seconds; callers already queued past that point are unaffected, the
others queue again behind the block.

`Pacer` is the seam for running several replicas: the shared implementation
(`bot.coordination.pacer`) keeps the same per-lane log of send times in Redis (a sorted set,
updated by one script so a reservation is atomic) and answers `acquire` the same way.
`InMemoryPacer` is the single-process one; a `PacerFactory` picks between them.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from bot.auth.base import WaitNotifier

# Lanes. Clerk's docs list each create and each attempt endpoint with its own limit.
SIGN_IN_CREATE = "fapi.sign_in.create"
SIGN_UP_CREATE = "fapi.sign_up.create"
SIGN_IN_ATTEMPT = "fapi.sign_in.attempt"
SIGN_UP_ATTEMPT = "fapi.sign_up.attempt"
FAPI = "fapi"  # every other Frontend API call: not paced, but a 429 still closes it
BAPI = "bapi"  # the Backend API, limited per instance
METADATA = "bapi.metadata"  # metadata writes, limited per Clerk user (key = user id)


@dataclass(frozen=True, slots=True)
class PaceLimit:
    """At most `calls` sends in any `window` seconds."""

    calls: int
    window: float

    def __post_init__(self) -> None:
        if self.calls < 1 or self.window <= 0:
            raise ValueError("a pace limit needs at least one call in a positive window")


def clerk_limits(
    *,
    sign_in_create: int = 5,
    sign_up_create: int = 5,
    attempt: int = 3,
    window: float = 10.0,
    bapi: int = 100,
    bapi_window: float = 10.0,
    metadata: int = 10,
    metadata_window: float = 10.0,
) -> dict[str, PaceLimit]:
    """Clerk's published limits (development BAPI: 100 per 10 s; production allows 1,000)."""
    return {
        SIGN_IN_CREATE: PaceLimit(sign_in_create, window),
        SIGN_UP_CREATE: PaceLimit(sign_up_create, window),
        SIGN_IN_ATTEMPT: PaceLimit(attempt, window),
        SIGN_UP_ATTEMPT: PaceLimit(attempt, window),
        BAPI: PaceLimit(bapi, bapi_window),
        METADATA: PaceLimit(metadata, metadata_window),
    }


class Pacer(Protocol):
    async def acquire(self, lane: str, key: str = "", notify: WaitNotifier | None = None) -> float:
        """Wait for a slot in the lane; tell `notify` how long first. Returns seconds waited."""
        ...

    async def penalise(self, lane: str, retry_after: float, key: str = "") -> None:
        """Clerk answered 429 in this lane: send nothing more there for `retry_after` seconds."""
        ...


class PacerFactory(Protocol):
    """Makes the pacer for the given limits: `InMemoryPacer` itself, or a shared one's maker."""

    def __call__(
        self, limits: Mapping[str, PaceLimit], *, margin: float, notify_min_wait: float
    ) -> Pacer: ...


@dataclass(slots=True)
class _Lane:
    slots: deque[float] = field(default_factory=deque)  # reserved send times, ascending
    blocked_until: float = 0.0


class InMemoryPacer:
    """Pacing for one process. Lanes without a limit are not paced, but can be closed by a 429.

    `margin`: seconds added to every window, for the jitter between our send and Clerk's count.
    `notify_min_wait`: shorter waits are not worth a message to the user.
    """

    _SWEEP_EVERY = 256

    def __init__(
        self,
        limits: Mapping[str, PaceLimit],
        *,
        margin: float = 0.5,
        notify_min_wait: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._limits = dict(limits)
        self._margin = margin
        self._notify_min_wait = notify_min_wait
        self._clock = clock
        self._sleep = sleep
        self._lanes: dict[tuple[str, str], _Lane] = {}
        self._since_sweep = 0

    async def acquire(self, lane: str, key: str = "", notify: WaitNotifier | None = None) -> float:
        state = self._lane(lane, key)
        limit = self._limits.get(lane)
        waited = 0.0
        while True:
            now = self._clock()
            at = self._reserve(state, limit, now)
            if at <= now:
                return waited
            if notify is not None and at - now >= self._notify_min_wait:
                await notify(at - now)
            try:
                await self._sleep(max(0.0, at - self._clock()))
            except BaseException:
                self._release(state, limit, at)
                raise
            waited += self._clock() - now
            if state.blocked_until <= at:
                return waited
            # A 429 closed the lane while we slept: our slot now falls inside the block.
            self._release(state, limit, at)

    async def penalise(self, lane: str, retry_after: float, key: str = "") -> None:
        state = self._lane(lane, key)
        state.blocked_until = max(state.blocked_until, self._clock() + retry_after)

    def _reserve(self, state: _Lane, limit: PaceLimit | None, now: float) -> float:
        at = max(now, state.blocked_until)
        if limit is None:
            return at
        span = limit.window + self._margin
        while state.slots and state.slots[0] <= now - span:
            state.slots.popleft()
        if state.slots:
            # Slots only ever go to the end of the queue, so every window keeps its count even
            # after a waiting caller gives its slot back.
            at = max(at, state.slots[-1])
            if len(state.slots) >= limit.calls:
                at = max(at, state.slots[-limit.calls] + span)
        state.slots.append(at)
        return at

    def _release(self, state: _Lane, limit: PaceLimit | None, at: float) -> None:
        if limit is not None and at in state.slots:
            state.slots.remove(at)

    def _lane(self, lane: str, key: str) -> _Lane:
        self._since_sweep += 1
        if self._since_sweep >= self._SWEEP_EVERY:
            self._sweep()
        return self._lanes.setdefault((lane, key), _Lane())

    def _sweep(self) -> None:
        """Forget idle lanes, so per-user lanes don't pile up for users long gone."""
        self._since_sweep = 0
        now = self._clock()
        longest = max((limit.window for limit in self._limits.values()), default=0.0)
        horizon = now - longest - self._margin
        idle = [
            name
            for name, state in self._lanes.items()
            if state.blocked_until <= now and (not state.slots or state.slots[-1] <= horizon)
        ]
        for name in idle:
            del self._lanes[name]
