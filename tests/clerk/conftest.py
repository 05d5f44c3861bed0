"""Clerk backend tests: a Clerk double per test, every exchange with it checked against the
published specs when the test ends (a violation fails the test)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.auth.base import Challenge, Requester
from bot.auth.clerk import ClerkBackend
from bot.sandbox.clerk import FAPI_LIMITS, ClerkDouble
from tests.clerk.openapi_check import spec_checked

StartDouble = Callable[..., Awaitable[ClerkDouble]]
MakeBackend = Callable[..., ClerkBackend]


@pytest.fixture
async def clerk() -> AsyncIterator[StartDouble]:
    async with contextlib.AsyncExitStack() as stack:

        async def start(**options: Any) -> ClerkDouble:
            return await stack.enter_async_context(spec_checked(**options))

        yield start


# Clerk's limits with a short window, so a test that makes a fifth attempt doesn't wait 10 s.
WINDOW = 0.3
FAST_LIMITS = {lane: (calls, WINDOW) for lane, (calls, _) in FAPI_LIMITS.items()}


@pytest.fixture
async def double(clerk: StartDouble) -> ClerkDouble:
    return await clerk(fapi_limits=FAST_LIMITS)


@pytest.fixture(params=["fapi", "bapi"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def backends() -> AsyncIterator[MakeBackend]:
    made: list[ClerkBackend] = []

    def make(double: ClerkDouble, mode: str = "fapi", **options: Any) -> ClerkBackend:
        settings: dict[str, Any] = {
            "fapi_url": double.fapi_url,
            "bapi_url": double.bapi_url,
            "secret_key": double.secret_key,
            "pace_window": WINDOW,
            "pace_margin": 0.05,
            "notify_min_wait": 0.0,
            **options,
        }
        backend = ClerkBackend.from_config(mode, **settings)  # type: ignore[arg-type]
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()


@pytest.fixture
def backend(double: ClerkDouble, mode: str, backends: MakeBackend) -> ClerkBackend:
    return backends(double, mode, sign_in_url="https://app.example/sign-in")


@dataclass
class Person:
    """A Telegram user talking to the bot; `waits` holds what they were told to wait."""

    telegram_user_id: int = 4242
    username: str | None = "jane"
    waits: list[float] = field(default_factory=list)

    async def _told_to_wait(self, seconds: float) -> None:
        self.waits.append(seconds)

    @property
    def requester(self) -> Requester:
        return Requester(self.telegram_user_id, self.username, self._told_to_wait)


@pytest.fixture
def person() -> Person:
    return Person()


class VirtualTime:
    """A clock that moves only when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def stored(challenge: Challenge) -> Challenge:
    """The challenge as it comes back from the database: through JSON and back."""
    return Challenge.from_dict(json.loads(json.dumps(challenge.to_dict())))
