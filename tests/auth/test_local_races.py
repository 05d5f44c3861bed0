"""Bursts against the embedded backend's counters, on SQLite and PostgreSQL.

Every cap, cooldown and lockout must hold exactly however many requests arrive at once, and
across processes: the last tests race two engines on one database, as two replicas would.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.auth.base import (
    Challenge,
    RateLimited,
    Requester,
    TooManyAttempts,
    VerifiedIdentity,
    WrongCode,
)
from bot.auth.limits import LocalLimits
from bot.identifiers import Identifier
from storage.engine import SessionFactory, create_engine, session_factory
from storage.local_auth import FAILURE, SEND_TO_IDENTIFIER, SEND_TOTAL, StaleVerification
from storage.migrate import upgrade
from storage.models import LocalAccount, LocalChallenge
from tests.auth.conftest import (
    ADA,
    ME,
    PHONE,
    Clock,
    RecordingChannel,
    challenge_row,
    events,
    finish,
    make_backend,
    person,
    rows,
    wrong,
)

NO_COOLDOWN = {"resend_cooldown": timedelta(0), "resend_cooldown_max": timedelta(0)}


def count(outcomes: list[object], kind: type) -> int:
    return sum(isinstance(outcome, kind) for outcome in outcomes)


async def test_one_person_asking_twenty_times_at_once_gets_one_code(
    sessions: SessionFactory, clock: Clock, email: RecordingChannel
) -> None:
    backend = make_backend(sessions, clock, email)

    outcomes = await asyncio.gather(
        *(backend.start(ADA, ME) for _ in range(20)), return_exceptions=True
    )

    assert (count(outcomes, Challenge), count(outcomes, RateLimited)) == (1, 19)
    assert len(email.sent) == 1
    assert len(await events(sessions, SEND_TO_IDENTIFIER)) == 1
    assert len(await rows(sessions, LocalChallenge)) == 1


async def test_many_people_asking_for_one_address_at_once_stop_at_its_cap(
    sessions: SessionFactory, clock: Clock, sms: RecordingChannel
) -> None:
    backend = make_backend(sessions, clock, sms, limits=LocalLimits(sends_per_identifier=8))

    outcomes = await asyncio.gather(
        *(backend.start(PHONE, person(n)) for n in range(30)), return_exceptions=True
    )

    assert (count(outcomes, Challenge), count(outcomes, RateLimited)) == (8, 22)
    assert len(sms.sent) == 8
    assert len(await events(sessions, SEND_TO_IDENTIFIER)) == 8


async def test_one_person_asking_for_many_addresses_at_once_stops_at_their_cap(
    sessions: SessionFactory, clock: Clock, email: RecordingChannel
) -> None:
    backend = make_backend(sessions, clock, email)

    outcomes = await asyncio.gather(
        *(backend.start(Identifier("email", f"u{n}@example.com"), ME) for n in range(30)),
        return_exceptions=True,
    )

    assert (count(outcomes, Challenge), count(outcomes, RateLimited)) == (10, 20)
    assert len(email.sent) == 10


async def test_everyone_asking_at_once_stops_at_the_total_cap(
    sessions: SessionFactory, clock: Clock, email: RecordingChannel
) -> None:
    limits = LocalLimits(sends_per_user=2, sends_total=7)
    backend = make_backend(sessions, clock, email, limits=limits)

    outcomes = await asyncio.gather(
        *(backend.start(Identifier("email", f"u{n}@example.com"), person(n)) for n in range(30)),
        return_exceptions=True,
    )

    assert (count(outcomes, Challenge), count(outcomes, RateLimited)) == (7, 23)
    assert len(email.sent) == 7
    assert len(await events(sessions, SEND_TOTAL)) == 7


async def test_one_persons_burst_of_guesses_stops_at_their_lockout(
    sessions: SessionFactory, clock: Clock, email: RecordingChannel
) -> None:
    backend = make_backend(sessions, clock, email, limits=LocalLimits(lockout_failures=3))
    challenge = await backend.start(ADA, ME)
    guess = wrong(email.last_code(ADA))

    outcomes = await asyncio.gather(
        *(backend.verify(challenge, guess, ME) for _ in range(20)), return_exceptions=True
    )

    # Two are told how many tries are left, the third locks, the rest are refused untried.
    assert count(outcomes, WrongCode) == 2
    assert count(outcomes, TooManyAttempts) == 18
    assert {o.retry_at for o in outcomes if isinstance(o, TooManyAttempts)} == {clock.at(hours=1)}
    stored = await challenge_row(sessions, challenge)
    assert stored is not None and stored.attempts == 3
    assert len(await events(sessions, FAILURE)) == 3


async def test_thirty_people_guessing_one_address_at_once_stop_at_its_backstop(
    sessions: SessionFactory, clock: Clock, email: RecordingChannel
) -> None:
    limits = LocalLimits(
        lockout_failures=3, lockout_failures_per_identifier=12, sends_per_identifier=30
    )
    backend = make_backend(sessions, clock, email, limits=limits)
    people = [person(n) for n in range(30)]
    held = [(await backend.start(ADA, who), email.last_code(ADA), who) for who in people]

    outcomes = await asyncio.gather(
        *(backend.verify(challenge, wrong(code), who) for challenge, code, who in held),
        return_exceptions=True,
    )

    assert count(outcomes, WrongCode) == 11
    assert count(outcomes, TooManyAttempts) == 19
    assert len(await events(sessions, FAILURE)) == 12
    # Only the judged guesses cost a try; the ones refused by the lock got theirs back.
    tries = sorted([c.attempts for c in await rows(sessions, LocalChallenge)], reverse=True)
    assert tries == [1] * 12 + [0] * 18


async def test_racing_commits_of_one_code_store_exactly_one_outcome(
    sessions: SessionFactory, clock: Clock, email: RecordingChannel
) -> None:
    backend = make_backend(sessions, clock, email)
    challenge = await backend.start(ADA, ME)
    code = email.last_code(ADA)
    verified = await asyncio.gather(
        *(backend.verify(challenge, code, ME) for _ in range(8)), return_exceptions=True
    )
    # Each verification spends a try, so the code is accepted at most as often as it has tries.
    identities = [v for v in verified if isinstance(v, VerifiedIdentity)]
    assert len(identities) == 5
    assert count(verified, TooManyAttempts) == 3

    committed = await asyncio.gather(
        *(finish(sessions, identity) for identity in identities), return_exceptions=True
    )

    assert committed.count(None) == 1
    assert count(committed, StaleVerification) == 4
    assert len({identity.auth_user_id for identity in identities}) == 1
    assert len(await rows(sessions, LocalAccount)) == 1
    stored = await challenge_row(sessions, challenge)
    assert stored is not None and stored.consumed_at is not None


async def test_two_processes_racing_keep_every_count_exact(database_url: str, clock: Clock) -> None:
    # The schema from the migrations, as deployments have it.
    await asyncio.to_thread(upgrade, database_url)
    engines = [create_engine(database_url) for _ in range(2)]
    try:
        replicas = [session_factory(engine) for engine in engines]
        email = RecordingChannel("email", frozenset({"email"}))
        limits = LocalLimits(
            **NO_COOLDOWN,
            sends_per_identifier=8,
            lockout_failures=3,
            lockout_failures_per_identifier=5,
        )
        backends = [make_backend(s, clock, email, limits=limits) for s in replicas]

        async def ask(n: int) -> tuple[Requester, Challenge]:
            return person(n), await backends[n % 2].start(ADA, person(n))

        started = await asyncio.gather(*(ask(n) for n in range(30)), return_exceptions=True)

        held = [s for s in started if isinstance(s, tuple)]
        assert (len(held), count(started, RateLimited)) == (8, 22)
        assert len(email.sent) == 8
        sent = {code for _, code in email.sent}
        guess = next(c for c in (f"{n:06d}" for n in range(10**6)) if c not in sent)

        judged = await asyncio.gather(
            *(
                backends[(n + i) % 2].verify(challenge, guess, who)
                for n, (who, challenge) in enumerate(held)
                for i in range(2)
            ),
            return_exceptions=True,
        )

        # The fifth failure locks the address; every guess after it is refused untried.
        assert count(judged, WrongCode) == 4
        assert count(judged, TooManyAttempts) == 12
        assert len(await events(replicas[1], FAILURE)) == 5
    finally:
        for engine in engines:
            await engine.dispose()
