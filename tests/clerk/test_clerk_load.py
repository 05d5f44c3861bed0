"""Thirty people starting at the same moment in fapi mode, all from the bot's one IP: everyone
finishes, Clerk never has to refuse a request, and whoever has to queue is told how long."""

from __future__ import annotations

import asyncio
from bisect import bisect_left

from bot.auth.base import VerifiedIdentity
from bot.auth.clerk import ClerkBackend
from bot.identifiers import Identifier
from bot.sandbox.clerk import TEST_CODE
from tests.clerk.conftest import MakeBackend, Person, StartDouble, stored

# Clerk's counts per lane, in a half-second window rather than ten, so the test takes seconds.
WINDOW = 0.5
LIMITS = {
    "sign_in_create": (5, WINDOW),
    "sign_up_create": (5, WINDOW),
    "sign_in_attempt": (3, WINDOW),
    "sign_up_attempt": (3, WINDOW),
}
PEOPLE = 30


async def signs_in(
    backend: ClerkBackend, person: Person, identifier: Identifier
) -> VerifiedIdentity:
    challenge = await backend.start(identifier, person.requester)
    return await backend.verify(stored(challenge), TEST_CODE, person.requester)


async def test_thirty_people_at_once(clerk: StartDouble, backends: MakeBackend) -> None:
    double = await clerk(fapi_limits=LIMITS)
    backend = backends(double, "fapi", pace_window=WINDOW, pace_margin=0.25, notify_min_wait=0)
    people = [Person(telegram_user_id=1000 + n, username=f"user{n}") for n in range(PEOPLE)]
    identifiers = [Identifier("email", f"user{n}+clerk_test@example.com") for n in range(PEOPLE)]
    for identifier in identifiers[::2]:  # half of them have an account, half sign up
        double.create_user(email=identifier.value)

    identities = await asyncio.gather(
        *(signs_in(backend, p, i) for p, i in zip(people, identifiers, strict=True))
    )

    assert len({identity.auth_user_id for identity in identities}) == PEOPLE
    assert [identity.created for identity in identities] == [n % 2 == 1 for n in range(PEOPLE)]
    assert all("telegram" in double.metadata(i.auth_user_id) for i in identities)

    assert [e for e in double.exchanges if e.status == 429] == []
    for lane, (calls, window) in LIMITS.items():
        arrivals = sorted(e.at for e in double.exchanges if e.lane == lane)
        assert arrivals, lane
        busiest = max(bisect_left(arrivals, t + window) - i for i, t in enumerate(arrivals))
        assert busiest <= calls, f"{lane}: {busiest} requests within {window} s"

    # Five sign-in creates fit the first window; everyone else queued there at least.
    told = [person for person in people if person.waits]
    assert len(told) >= PEOPLE - 5
    assert all(0 < wait < 10 for person in told for wait in person.waits)
