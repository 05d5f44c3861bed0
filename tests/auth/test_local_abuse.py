"""Attacks on the embedded backend and faults in the middle of a sign-in, on SQLite and
PostgreSQL: what the person under attack is told, and what the database keeps."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete

from bot.auth.base import CodeExpired, LinkRef, RateLimited, TooManyAttempts, WrongCode
from bot.auth.limits import LocalLimits
from bot.auth.local import LocalBackend
from storage.engine import SessionFactory
from storage.local_auth import FAILURE, StaleVerification
from storage.models import Link, LocalAccount, LocalChallenge, TelegramUser
from storage.repos import Changes, LinkRecord, Store, UserInfo
from tests.auth.conftest import (
    ADA,
    BOB,
    ME,
    OTHER,
    VAULT,
    Clock,
    RecordingChannel,
    challenge_row,
    events,
    finish,
    link,
    make_backend,
    person,
    rows,
    sign_in,
    spend_tries,
)

ATTACKER = person(666)

# -- one account cannot lock an address or spend its sends for everyone --------------------


async def test_an_attackers_wrong_guesses_lock_only_the_attacker(
    backend: LocalBackend, email: RecordingChannel, clock: Clock, sessions: SessionFactory
) -> None:
    first = await backend.start(ADA, ATTACKER)
    await spend_tries(backend, first, email.last_code(ADA), ATTACKER, 5)
    clock.advance(seconds=30)
    second = await backend.start(ADA, ATTACKER)
    refusals = await spend_tries(backend, second, email.last_code(ADA), ATTACKER, 5)
    locked = refusals[-1]
    assert isinstance(locked, TooManyAttempts) and locked.retry_at == clock.at(hours=1)
    with pytest.raises(TooManyAttempts):
        await backend.start(ADA, ATTACKER)

    mine = await backend.start(ADA, ME)

    assert mine.resend_at == clock.now + timedelta(seconds=30)
    signed_up = await sign_in(backend, sessions, mine, email.last_code(ADA), ME)
    assert signed_up.created is True


async def test_other_peoples_requests_do_not_delay_the_owner(
    backend: LocalBackend, email: RecordingChannel, clock: Clock
) -> None:
    # One account spends all it may on the address; four more ask once each.
    challenge = await backend.start(ADA, ATTACKER)
    for _ in range(4):
        clock.now = challenge.resend_at
        challenge = await backend.resend(challenge, ATTACKER)
    with pytest.raises(RateLimited):
        await backend.start(ADA, ATTACKER)
    for n in range(4):
        await backend.start(ADA, person(n))

    mine = await backend.start(ADA, ME)

    assert mine.resend_at == clock.now + timedelta(seconds=30)
    assert len(email.sent) == 10


async def test_a_right_code_forgives_only_its_own_persons_failures(
    backend: LocalBackend, email: RecordingChannel, clock: Clock, sessions: SessionFactory
) -> None:
    theirs = await backend.start(ADA, ATTACKER)
    await spend_tries(backend, theirs, email.last_code(ADA), ATTACKER, 3)
    mine = await backend.start(ADA, ME)
    await spend_tries(backend, mine, email.last_code(ADA), ME, 4)
    attacker_index = VAULT.index("telegram", str(ATTACKER.telegram_user_id))

    await sign_in(backend, sessions, mine, email.last_code(ADA), ME)

    left = await events(sessions, FAILURE)
    assert len(left) == 3 and {e.requester for e in left} == {attacker_index}


async def test_many_accounts_together_still_meet_the_failure_backstop(
    sessions: SessionFactory, email: RecordingChannel, clock: Clock
) -> None:
    limits = LocalLimits(lockout_failures=4, lockout_failures_per_identifier=10)
    backend = make_backend(sessions, clock, email, limits=limits)
    mine = await backend.start(ADA, ME)
    my_code = email.last_code(ADA)
    # Three accounts, none of which may fail more than four times, add up to ten failures.
    refusals = []
    for who, tries in ((person(1), 4), (person(2), 4), (person(3), 2)):
        challenge = await backend.start(ADA, who)
        refusals += await spend_tries(backend, challenge, email.last_code(ADA), who, tries)

    assert [type(r) for r in refusals[-2:]] == [WrongCode, TooManyAttempts]
    with pytest.raises(TooManyAttempts) as refused:
        await backend.verify(mine, my_code, ME)
    assert refused.value.retry_at == clock.at(hours=1)
    with pytest.raises(TooManyAttempts):
        await backend.start(ADA, person(4))
    stored = await challenge_row(sessions, mine)
    assert stored is not None and stored.attempts == 0


async def test_many_accounts_together_still_meet_the_send_backstop(
    backend: LocalBackend, email: RecordingChannel, clock: Clock
) -> None:
    # Four accounts each spend their five sends; together they fill the address's twenty.
    held = [await backend.start(ADA, person(n)) for n in range(4)]
    for _ in range(4):
        clock.now = max(challenge.resend_at for challenge in held)
        held = [await backend.resend(challenge, person(n)) for n, challenge in enumerate(held)]
    assert len(email.sent) == 20

    with pytest.raises(RateLimited) as refused:
        await backend.start(ADA, ME)

    assert refused.value.retry_after == (clock.at(hours=1) - clock.now).total_seconds()
    assert len(email.sent) == 20


# -- a code and the link it makes are one outcome ----------------------------------------


async def test_a_code_checked_but_never_linked_can_be_typed_again(
    backend: LocalBackend, email: RecordingChannel, sessions: SessionFactory
) -> None:
    challenge = await backend.start(ADA, ME)
    code = email.last_code(ADA)
    crashed = await backend.verify(challenge, code, ME)  # the link is never stored

    again = await backend.verify(challenge, code, ME)

    assert (again.auth_user_id, again.created) == (crashed.auth_user_id, True)
    assert len(await rows(sessions, LocalAccount)) == 1
    stored = await challenge_row(sessions, challenge)
    assert stored is not None and (stored.attempts, stored.consumed_at) == (2, None)
    await finish(sessions, again)
    with pytest.raises(CodeExpired):
        await backend.verify(challenge, code, ME)


async def test_a_stored_outcome_cannot_be_stored_twice(
    backend: LocalBackend, email: RecordingChannel, sessions: SessionFactory
) -> None:
    challenge = await backend.start(ADA, ME)
    code = email.last_code(ADA)
    first = await backend.verify(challenge, code, ME)
    second = await backend.verify(challenge, code, ME)
    await finish(sessions, first)

    with pytest.raises(StaleVerification):
        await finish(sessions, second)

    stored = await challenge_row(sessions, challenge)
    assert stored is not None and stored.consumed_at is not None


async def test_a_refused_commit_rolls_back_the_rest_of_its_transaction(
    backend: LocalBackend, email: RecordingChannel, sessions: SessionFactory
) -> None:
    challenge = await backend.start(ADA, ME)
    code = email.last_code(ADA)
    first = await backend.verify(challenge, code, ME)
    second = await backend.verify(challenge, code, ME)
    await finish(sessions, first)
    assert second.commit is not None

    linked = LinkRecord(ME.telegram_user_id, "local", second.auth_user_id, "email", ADA.value)
    with pytest.raises(StaleVerification):
        await Store(sessions, VAULT).apply(
            Changes(
                user=UserInfo(ME.telegram_user_id),
                conversation=None,
                link=linked,
                work=[second.commit],
            )
        )

    assert await rows(sessions, Link) == []
    assert ME.telegram_user_id not in {user.id for user in await rows(sessions, TelegramUser)}
    assert len(await rows(sessions, LocalAccount)) == 1


# -- erasure forgets one person, not the people sharing their account ---------------------


async def test_forgetting_one_person_keeps_the_account_others_are_linked_to(
    backend: LocalBackend, email: RecordingChannel, clock: Clock, sessions: SessionFactory
) -> None:
    mine = await sign_in(backend, sessions, await backend.start(ADA, ME), email.last_code(ADA), ME)
    await link(sessions, ME, mine)
    theirs = await sign_in(
        backend, sessions, await backend.start(ADA, OTHER), email.last_code(ADA), OTHER
    )
    await link(sessions, OTHER, theirs)
    pending = await backend.start(ADA, person(3))
    pending_code = email.last_code(ADA)
    clock.advance(seconds=30)
    my_pending = await backend.start(ADA, ME)

    await backend.erase(LinkRef(ME.telegram_user_id, mine.auth_user_id, ADA))

    assert [a.id for a in await rows(sessions, LocalAccount)] == [mine.auth_user_id]
    assert await challenge_row(sessions, my_pending) is None
    later = await sign_in(backend, sessions, pending, pending_code, person(3))
    assert (later.auth_user_id, later.created) == (mine.auth_user_id, False)


async def test_forgetting_the_last_linked_person_deletes_the_account(
    backend: LocalBackend, email: RecordingChannel, sessions: SessionFactory
) -> None:
    mine = await sign_in(backend, sessions, await backend.start(ADA, ME), email.last_code(ADA), ME)
    await link(sessions, ME, mine)
    theirs = await sign_in(
        backend, sessions, await backend.start(ADA, OTHER), email.last_code(ADA), OTHER
    )
    await link(sessions, OTHER, theirs)
    await backend.erase(LinkRef(ME.telegram_user_id, mine.auth_user_id, ADA))
    async with sessions.begin() as session:  # the chat then deletes ME's own link
        await session.execute(delete(Link).where(Link.telegram_user_id == ME.telegram_user_id))

    await backend.erase(LinkRef(OTHER.telegram_user_id, theirs.auth_user_id, ADA))

    assert await rows(sessions, LocalAccount) == []


async def test_an_account_erased_before_a_pending_link_is_stored_refuses_that_link(
    backend: LocalBackend, email: RecordingChannel, sessions: SessionFactory
) -> None:
    mine = await sign_in(backend, sessions, await backend.start(ADA, ME), email.last_code(ADA), ME)
    await link(sessions, ME, mine)
    challenge = await backend.start(ADA, OTHER)
    code = email.last_code(ADA)
    theirs = await backend.verify(challenge, code, OTHER)

    await backend.erase(LinkRef(ME.telegram_user_id, mine.auth_user_id, ADA))

    with pytest.raises(StaleVerification):
        await finish(sessions, theirs)
    again = await sign_in(backend, sessions, challenge, code, OTHER)
    assert again.created is True and again.auth_user_id != mine.auth_user_id


async def test_forgetting_keeps_other_peoples_codes_for_the_address(
    backend: LocalBackend, email: RecordingChannel, clock: Clock, sessions: SessionFactory
) -> None:
    mine = await sign_in(backend, sessions, await backend.start(ADA, ME), email.last_code(ADA), ME)
    theirs = await backend.start(ADA, OTHER)
    their_code = email.last_code(ADA)
    await backend.start(BOB, ME)

    await backend.erase(LinkRef(ME.telegram_user_id, mine.auth_user_id, ADA))

    assert [c.id for c in await rows(sessions, LocalChallenge)] == [theirs.state["id"]]
    assert (await sign_in(backend, sessions, theirs, their_code, OTHER)).created is True


def test_the_limits_keep_one_account_below_every_backstop() -> None:
    limits = LocalLimits()

    assert limits.lockout_failures < limits.lockout_failures_per_identifier <= 100
    assert limits.sends_per_identifier_per_user < limits.sends_per_identifier
    assert limits.sends_per_user < limits.sends_total
    with pytest.raises(ValueError, match="lockout_failures_per_identifier"):
        LocalLimits(lockout_failures=10, lockout_failures_per_identifier=10)
    with pytest.raises(ValueError, match="sends_per_identifier"):
        LocalLimits(sends_per_identifier_per_user=5, sends_per_identifier=5)
    with pytest.raises(ValueError, match="sends_total"):
        LocalLimits(sends_per_user=10, sends_total=10)
