"""The embedded backend, one rule per test: what the person is told and what the database holds.

Every test runs on SQLite and on PostgreSQL (see conftest.py).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import replace
from datetime import timedelta

import pytest

from bot.auth import codes
from bot.auth.base import (
    BackendUnavailable,
    Challenge,
    CodeExpired,
    LinkRef,
    RateLimited,
    TooManyAttempts,
    UnsupportedIdentifier,
    VerifiedIdentity,
    WrongCode,
)
from bot.auth.delivery import DeliveryError
from bot.auth.limits import LocalLimits
from bot.auth.local import LocalBackend
from bot.identifiers import Identifier, IdentifierKind
from storage.engine import SessionFactory
from storage.local_auth import FAILURE, SEND_BY_USER, SEND_TO_IDENTIFIER, SEND_TOTAL
from storage.models import LocalAccount, LocalChallenge, LocalEvent
from tests.auth.conftest import (
    ADA,
    BOB,
    BOTH,
    EMAIL_ONLY,
    ME,
    OTHER,
    PHONE,
    PHONE_ONLY,
    T0,
    VAULT,
    Clock,
    RecordingChannel,
    challenge_row,
    events,
    finish,
    make_backend,
    person,
    rows,
    sign_in,
    spend_tries,
    wrong,
)

# -- codes --------------------------------------------------------------------------------


def test_codes_are_six_digits_from_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []

    def fake_randbelow(n: int) -> int:
        asked.append(n)
        return 42

    monkeypatch.setattr(secrets, "randbelow", fake_randbelow)
    assert codes.new_code() == "000042"
    assert asked == [1_000_000]


def test_generated_codes_look_like_codes() -> None:
    made = [codes.new_code() for _ in range(200)]
    assert all(len(code) == 6 and code.isascii() and code.isdigit() for code in made)
    assert len(set(made)) > 190


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("123456", "123456"),
        (" 123 456 ", "123456"),
        ("123-456", "123456"),
        ("12 34 56", "123456"),
        ("123\u2013456", "123456"),
        ("12345", None),
        ("1234567", None),
        ("12a456", None),
        ("\u0661\u0662\u0663\u0664\u0665\u0666", None),  # Arabic-Indic digits
        ("", None),
    ],
)
def test_typed_codes_are_normalised(typed: str, read: str | None) -> None:
    assert codes.normalise(typed) == read


async def test_code_is_sent_and_stored_only_as_a_mac(
    backend: LocalBackend, email: RecordingChannel, sessions: SessionFactory
) -> None:
    challenge = await backend.start(ADA, ME)

    assert email.sent == [(ADA, email.last_code(ADA))]
    code = email.last_code(ADA)
    assert challenge.backend == "local"
    assert challenge.channel == "email"
    assert challenge.identifier == ADA
    assert challenge.expires_at == T0 + timedelta(minutes=10)
    assert challenge.resend_at == T0 + timedelta(seconds=30)
    (stored,) = await rows(sessions, LocalChallenge)
    assert challenge.state == {"id": stored.id}
    # Only a MAC keyed by the secret and bound to this challenge and address is kept.
    index = VAULT.index("email", ADA.value)
    assert stored.code_mac == codes.code_mac(VAULT, stored.id, index, code)
    assert stored.code_mac != VAULT.mac("local-code", code)
    assert code not in {str(value) for value in vars(stored).values()}
    assert ADA.value not in repr(vars(stored))
    assert (stored.attempts, stored.sends, stored.consumed_at) == (0, 1, None)
    assert email.ttl_minutes == {10}


# -- verification -------------------------------------------------------------------------


async def test_right_code_for_a_new_address_signs_up(
    backend: LocalBackend, email: RecordingChannel, sessions: SessionFactory
) -> None:
    challenge = await backend.start(ADA, ME)

    verified = await backend.verify(challenge, email.last_code(ADA), ME)

    assert verified.created is True
    assert verified.identifier == ADA
    assert verified.auth_user_id.startswith("usr_")
    (account,) = await rows(sessions, LocalAccount)
    assert account.id == verified.auth_user_id
    assert account.identifier_kind == "email"
    assert account.identifier_index == VAULT.index("email", ADA.value)
    assert VAULT.decrypt(account.identifier_enc) == ADA.value
    assert ADA.value.encode() not in account.identifier_enc


async def test_right_code_for_a_known_address_signs_in(
    backend: LocalBackend, email: RecordingChannel, clock: Clock
) -> None:
    signed_up = await backend.verify(await backend.start(ADA, ME), email.last_code(ADA), ME)
    clock.advance(seconds=30)

    signed_in = await backend.verify(await backend.start(ADA, OTHER), email.last_code(ADA), OTHER)

    assert signed_in.created is False
    assert signed_in.auth_user_id == signed_up.auth_user_id


async def test_digits_grouped_with_spaces_or_dashes_are_accepted(
    backend: LocalBackend, email: RecordingChannel
) -> None:
    challenge = await backend.start(ADA, ME)
    code = email.last_code(ADA)

    verified = await backend.verify(challenge, f" {code[:3]} - {code[3:]} ", ME)

    assert verified.created is True


async def test_a_code_works_only_once(
    backend: LocalBackend, email: RecordingChannel, sessions: SessionFactory
) -> None:
    challenge = await backend.start(ADA, ME)
    await sign_in(backend, sessions, challenge, email.last_code(ADA), ME)

    with pytest.raises(CodeExpired):
        await backend.verify(challenge, email.last_code(ADA), ME)


async def test_a_code_is_valid_for_ten_minutes(
    backend: LocalBackend, email: RecordingChannel, clock: Clock
) -> None:
    for_ada = await backend.start(ADA, ME)
    for_bob = await backend.start(BOB, ME)

    clock.advance(minutes=10, seconds=-1)
    assert (await backend.verify(for_ada, email.last_code(ADA), ME)).created is True
    clock.advance(seconds=1)
    with pytest.raises(CodeExpired):
        await backend.verify(for_bob, email.last_code(BOB), ME)


async def test_an_expired_code_cannot_be_resent(
    backend: LocalBackend, email: RecordingChannel, clock: Clock
) -> None:
    challenge = await backend.start(ADA, ME)
    clock.advance(minutes=10)

    with pytest.raises(CodeExpired):
        await backend.resend(challenge, ME)
    assert len(email.sent) == 1


async def test_wrong_codes_say_how_many_tries_are_left(
    backend: LocalBackend, email: RecordingChannel
) -> None:
    challenge = await backend.start(ADA, ME)

    refusals = await spend_tries(backend, challenge, email.last_code(ADA), ME, 4)

    assert [type(r) for r in refusals] == [WrongCode] * 4
    assert [r.tries_left for r in refusals if isinstance(r, WrongCode)] == [4, 3, 2, 1]


async def test_the_fifth_wrong_code_uses_the_code_up(
    backend: LocalBackend, email: RecordingChannel
) -> None:
    challenge = await backend.start(ADA, ME)

    refusals = await spend_tries(backend, challenge, email.last_code(ADA), ME, 5)

    last = refusals[-1]
    assert isinstance(last, TooManyAttempts) and last.retry_at is None


async def test_the_sixth_submission_fails_even_with_the_right_code(
    backend: LocalBackend, email: RecordingChannel, sessions: SessionFactory
) -> None:
    challenge = await backend.start(ADA, ME)
    await spend_tries(backend, challenge, email.last_code(ADA), ME, 5)

    with pytest.raises(TooManyAttempts) as refused:
        await backend.verify(challenge, email.last_code(ADA), ME)

    assert refused.value.retry_at is None
    stored = await challenge_row(sessions, challenge)
    assert stored is not None and stored.attempts == 5 and stored.consumed_at is None
    assert await rows(sessions, LocalAccount) == []


async def test_something_that_is_not_a_code_costs_a_try(
    backend: LocalBackend, email: RecordingChannel
) -> None:
    challenge = await backend.start(ADA, ME)

    with pytest.raises(WrongCode) as refused:
        await backend.verify(challenge, "hello", ME)

    assert refused.value.tries_left == 4


async def test_a_code_only_works_for_its_own_challenge(
    backend: LocalBackend, email: RecordingChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(codes, "new_code", iter(["111111", "222222"]).__next__)
    for_ada = await backend.start(ADA, ME)
    for_bob = await backend.start(BOB, ME)

    with pytest.raises(WrongCode):
        await backend.verify(for_bob, email.last_code(ADA), ME)

    assert (await backend.verify(for_ada, email.last_code(ADA), ME)).identifier == ADA


async def test_a_challenge_cannot_be_moved_to_another_address_or_person(
    backend: LocalBackend, email: RecordingChannel, sessions: SessionFactory
) -> None:
    challenge = await backend.start(ADA, ME)
    code = email.last_code(ADA)

    with pytest.raises(CodeExpired):
        await backend.verify(replace(challenge, identifier=BOB), code, ME)
    with pytest.raises(CodeExpired):
        await backend.verify(challenge, code, OTHER)

    stored = await challenge_row(sessions, challenge)
    assert stored is not None and stored.attempts == 0
    assert (await backend.verify(challenge, code, ME)).identifier == ADA


async def test_a_challenge_of_another_backend_is_refused(backend: LocalBackend) -> None:
    foreign = Challenge("clerk", ADA, "email", T0, T0, {"id": "sia_123"})
    empty = Challenge("local", ADA, "email", T0, T0, {})

    for challenge in (foreign, empty):
        with pytest.raises(CodeExpired):
            await backend.verify(challenge, "123456", ME)
        with pytest.raises(CodeExpired):
            await backend.resend(challenge, ME)


async def test_starting_again_replaces_the_previous_code_of_the_same_person(
    backend: LocalBackend, email: RecordingChannel, clock: Clock, sessions: SessionFactory
) -> None:
    first = await backend.start(ADA, ME)
    first_code = email.last_code(ADA)
    clock.advance(seconds=30)
    other_person = await backend.start(ADA, OTHER)
    other_code = email.last_code(ADA)
    clock.advance(seconds=60)

    second = await backend.start(ADA, ME)
    await finish(sessions, second)  # as the chat stores its step

    with pytest.raises(CodeExpired):
        await backend.verify(first, first_code, ME)
    assert (await backend.verify(second, email.last_code(ADA), ME)).created is True
    assert (await backend.verify(other_person, other_code, OTHER)).created is False


async def test_concurrent_wrong_guesses_never_pass_the_cap(
    backend: LocalBackend, email: RecordingChannel, sessions: SessionFactory
) -> None:
    challenge = await backend.start(ADA, ME)
    guess = wrong(email.last_code(ADA))

    outcomes = await asyncio.gather(
        *(backend.verify(challenge, guess, ME) for _ in range(50)), return_exceptions=True
    )

    assert sum(isinstance(o, WrongCode) for o in outcomes) == 4
    assert sum(isinstance(o, TooManyAttempts) and o.retry_at is None for o in outcomes) == 46
    stored = await challenge_row(sessions, challenge)
    assert stored is not None and stored.attempts == 5
    assert len(await events(sessions, FAILURE)) == 5


async def test_concurrent_first_verifications_create_one_account(
    backend: LocalBackend,
    email: RecordingChannel,
    clock: Clock,
    sessions: SessionFactory,
) -> None:
    mine = await backend.start(ADA, ME)
    my_code = email.last_code(ADA)
    clock.advance(seconds=30)
    theirs = await backend.start(ADA, OTHER)
    their_code = email.last_code(ADA)

    outcomes = await asyncio.gather(
        backend.verify(mine, my_code, ME), backend.verify(theirs, their_code, OTHER)
    )

    assert sorted(o.created for o in outcomes) == [False, True]
    assert outcomes[0].auth_user_id == outcomes[1].auth_user_id
    assert len(await rows(sessions, LocalAccount)) == 1


# -- resending ----------------------------------------------------------------------------


async def test_a_resend_replaces_the_code(
    backend: LocalBackend, email: RecordingChannel, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(codes, "new_code", iter(["111111", "222222"]).__next__)
    challenge = await backend.start(ADA, ME)
    clock.advance(seconds=30)

    resent = await backend.resend(challenge, ME)

    assert [code for _, code in email.sent] == ["111111", "222222"]
    assert resent.state == challenge.state
    assert resent.expires_at == clock.now + timedelta(minutes=10)
    with pytest.raises(WrongCode):
        await backend.verify(resent, "111111", ME)
    assert (await backend.verify(resent, "222222", ME)).created is True


async def test_a_resend_does_not_give_tries_back(
    backend: LocalBackend, email: RecordingChannel, clock: Clock, sessions: SessionFactory
) -> None:
    challenge = await backend.start(ADA, ME)
    await spend_tries(backend, challenge, email.last_code(ADA), ME, 3)
    clock.advance(seconds=30)

    resent = await backend.resend(challenge, ME)
    code = email.last_code(ADA)

    assert len(await events(sessions, FAILURE)) == 3
    with pytest.raises(WrongCode) as refused:
        await backend.verify(resent, wrong(code), ME)
    assert refused.value.tries_left == 1
    with pytest.raises(TooManyAttempts):
        await backend.verify(resent, wrong(code), ME)
    with pytest.raises(TooManyAttempts):
        await backend.verify(resent, code, ME)


async def test_a_used_up_code_is_not_resent(
    backend: LocalBackend, email: RecordingChannel, clock: Clock
) -> None:
    challenge = await backend.start(ADA, ME)
    await spend_tries(backend, challenge, email.last_code(ADA), ME, 5)
    clock.advance(seconds=30)

    with pytest.raises(TooManyAttempts) as refused:
        await backend.resend(challenge, ME)

    assert refused.value.retry_at is None
    assert len(email.sent) == 1


async def test_a_used_or_someone_elses_code_is_not_resent(
    backend: LocalBackend, email: RecordingChannel, clock: Clock, sessions: SessionFactory
) -> None:
    used = await backend.start(ADA, ME)
    await sign_in(backend, sessions, used, email.last_code(ADA), ME)
    theirs = await backend.start(BOB, OTHER)
    clock.advance(seconds=30)

    with pytest.raises(CodeExpired):
        await backend.resend(used, ME)
    with pytest.raises(CodeExpired):
        await backend.resend(theirs, ME)
    assert len(email.sent) == 2


async def test_a_code_used_while_its_replacement_is_on_the_way_ends_the_resend(
    backend: LocalBackend, email: RecordingChannel, clock: Clock, sessions: SessionFactory
) -> None:
    challenge = await backend.start(ADA, ME)
    first_code = email.last_code(ADA)
    signed_in: list[VerifiedIdentity] = []

    async def sign_in_meanwhile() -> None:
        signed_in.append(await sign_in(backend, sessions, challenge, first_code, ME))

    email.while_sending = sign_in_meanwhile
    clock.advance(seconds=30)

    with pytest.raises(CodeExpired):
        await backend.resend(challenge, ME)

    assert [v.identifier for v in signed_in] == [ADA]


def test_the_cooldown_doubles_up_to_its_cap() -> None:
    limits = LocalLimits()

    waits = [limits.cooldown_after(n).total_seconds() for n in range(1, 8)]

    assert waits == [30, 60, 120, 240, 300, 300, 300]


async def test_resending_too_early_is_refused_and_the_wait_grows(
    backend: LocalBackend, email: RecordingChannel, clock: Clock
) -> None:
    challenge = await backend.start(ADA, ME)
    assert challenge.resend_at == clock.at(seconds=30)

    for wait, next_wait in ((30, 60), (60, 120), (120, 240)):
        clock.advance(seconds=wait - 1)
        with pytest.raises(RateLimited) as refused:
            await backend.resend(challenge, ME)
        assert refused.value.retry_after == 1
        clock.advance(seconds=1)
        challenge = await backend.resend(challenge, ME)
        assert challenge.resend_at == clock.now + timedelta(seconds=next_wait)

    assert len(email.sent) == 4


async def test_starting_again_does_not_skip_the_cooldown(
    backend: LocalBackend, email: RecordingChannel, clock: Clock
) -> None:
    await backend.start(ADA, ME)
    clock.advance(seconds=10)

    with pytest.raises(RateLimited) as refused:
        await backend.start(ADA, ME)

    assert refused.value.retry_after == 20
    assert len(email.sent) == 1


async def test_a_failed_resend_keeps_the_code_already_sent(
    backend: LocalBackend, email: RecordingChannel, clock: Clock
) -> None:
    challenge = await backend.start(ADA, ME)
    code = email.last_code(ADA)
    clock.advance(seconds=30)
    email.failure = DeliveryError("mail server down", temporary=True)

    with pytest.raises(BackendUnavailable):
        await backend.resend(challenge, ME)

    assert (await backend.verify(challenge, code, ME)).created is True


# -- caps on sending ----------------------------------------------------------------------


async def test_one_persons_sends_to_one_address_are_capped(
    backend: LocalBackend, email: RecordingChannel, clock: Clock
) -> None:
    challenge = await backend.start(ADA, ME)
    for _ in range(4):
        clock.now = challenge.resend_at
        challenge = await backend.start(ADA, ME)
    # After the fifth send the button waits for the first send to leave the hour.
    assert challenge.resend_at == clock.at(hours=1)
    clock.advance(minutes=5)

    with pytest.raises(RateLimited) as refused:
        await backend.start(ADA, ME)

    assert refused.value.retry_after == (clock.at(hours=1) - clock.now).total_seconds()
    assert len(email.sent) == 5
    assert (await backend.start(ADA, OTHER)).resend_at == clock.now + timedelta(seconds=30)


async def test_sends_by_one_telegram_user_are_capped(
    backend: LocalBackend, email: RecordingChannel
) -> None:
    for n in range(10):
        await backend.start(Identifier("email", f"user{n}@example.com"), ME)

    with pytest.raises(RateLimited) as refused:
        await backend.start(ADA, ME)

    assert refused.value.retry_after == 3600
    assert len(email.sent) == 10
    assert (await backend.start(ADA, OTHER)).identifier == ADA


async def test_sends_in_total_are_capped(
    sessions: SessionFactory, clock: Clock, email: RecordingChannel
) -> None:
    limits = LocalLimits(sends_per_user=2, sends_total=3)
    backend = make_backend(sessions, clock, email, limits=limits)
    for n in range(3):
        await backend.start(Identifier("email", f"user{n}@example.com"), person(n))
    clock.advance(minutes=20)

    with pytest.raises(RateLimited) as refused:
        await backend.start(ADA, ME)

    assert refused.value.retry_after == 40 * 60
    assert len(email.sent) == 3


# -- lockout ------------------------------------------------------------------------------


async def test_ten_failures_lock_the_person_out_of_the_address_across_codes(
    backend: LocalBackend, email: RecordingChannel, clock: Clock
) -> None:
    first = await backend.start(ADA, ME)
    await spend_tries(backend, first, email.last_code(ADA), ME, 5)
    clock.advance(seconds=30)
    second = await backend.start(ADA, ME)

    refusals = await spend_tries(backend, second, email.last_code(ADA), ME, 5)

    assert [type(r) for r in refusals] == [WrongCode] * 4 + [TooManyAttempts]
    locked = refusals[-1]
    assert isinstance(locked, TooManyAttempts) and locked.retry_at == clock.at(hours=1)
    # … and no code is sent to the address for them until then.
    clock.advance(minutes=5)
    with pytest.raises(TooManyAttempts) as refused:
        await backend.start(ADA, ME)
    assert refused.value.retry_at == clock.at(hours=1)
    assert len(email.sent) == 2


async def test_while_locked_even_the_right_code_is_refused_without_costing_a_try(
    sessions: SessionFactory, clock: Clock, email: RecordingChannel
) -> None:
    backend = make_backend(sessions, clock, email, limits=LocalLimits(lockout_failures=7))
    first = await backend.start(ADA, ME)
    await spend_tries(backend, first, email.last_code(ADA), ME, 5)
    clock.advance(seconds=30)
    second = await backend.start(ADA, ME)
    await spend_tries(backend, second, email.last_code(ADA), ME, 2)

    with pytest.raises(TooManyAttempts) as refused:
        await backend.verify(second, email.last_code(ADA), ME)

    assert refused.value.retry_at == clock.at(hours=1)
    stored = await challenge_row(sessions, second)
    assert stored is not None and stored.attempts == 2
    assert await rows(sessions, LocalAccount) == []


async def test_a_lock_lifts_when_the_oldest_failure_leaves_the_hour(
    backend: LocalBackend, email: RecordingChannel, clock: Clock
) -> None:
    first = await backend.start(ADA, ME)
    await spend_tries(backend, first, email.last_code(ADA), ME, 5)
    clock.advance(seconds=30)
    second = await backend.start(ADA, ME)
    await spend_tries(backend, second, email.last_code(ADA), ME, 5)

    clock.now = clock.at(hours=1, seconds=-1)
    with pytest.raises(TooManyAttempts):
        await backend.start(ADA, ME)
    clock.advance(seconds=1)
    challenge = await backend.start(ADA, ME)

    assert (await backend.verify(challenge, email.last_code(ADA), ME)).created is True


async def test_a_right_code_forgives_earlier_failures(
    backend: LocalBackend, email: RecordingChannel, clock: Clock, sessions: SessionFactory
) -> None:
    first = await backend.start(ADA, ME)
    await spend_tries(backend, first, email.last_code(ADA), ME, 5)
    clock.advance(seconds=30)
    second = await backend.start(ADA, ME)
    await spend_tries(backend, second, email.last_code(ADA), ME, 4)

    await sign_in(backend, sessions, second, email.last_code(ADA), ME)

    assert await events(sessions, FAILURE) == []
    clock.advance(seconds=60)
    third = await backend.start(ADA, ME)
    refusals = await spend_tries(backend, third, email.last_code(ADA), ME, 4)
    assert [type(r) for r in refusals] == [WrongCode] * 4


# -- channels and delivery failures -------------------------------------------------------


@pytest.mark.parametrize(
    ("channels", "email_ok", "phone_ok"),
    [
        ([("email", EMAIL_ONLY)], True, False),
        ([("sms", PHONE_ONLY)], False, True),
        ([("log", BOTH)], True, True),
        ([("email", EMAIL_ONLY), ("sms", PHONE_ONLY)], True, True),
        ([], False, False),
    ],
)
def test_supports_only_what_a_channel_can_deliver(
    sessions: SessionFactory,
    clock: Clock,
    channels: list[tuple[str, frozenset[IdentifierKind]]],
    email_ok: bool,
    phone_ok: bool,
) -> None:
    backend = make_backend(sessions, clock, *(RecordingChannel(n, k) for n, k in channels))

    assert (backend.supports("email"), backend.supports("phone")) == (email_ok, phone_ok)


async def test_an_undeliverable_kind_is_refused_before_anything_happens(
    sessions: SessionFactory, clock: Clock, email: RecordingChannel
) -> None:
    backend = make_backend(sessions, clock, email)

    with pytest.raises(UnsupportedIdentifier) as refused:
        await backend.start(PHONE, ME)

    assert refused.value.kind == "phone"
    assert email.sent == []
    assert await rows(sessions, LocalChallenge) == []
    assert await rows(sessions, LocalEvent) == []


async def test_each_kind_goes_through_its_own_channel(
    backend: LocalBackend,
    email: RecordingChannel,
    sms: RecordingChannel,
    sessions: SessionFactory,
    clock: Clock,
) -> None:
    by_sms = await backend.start(PHONE, ME)
    by_email = await backend.start(ADA, ME)
    log_only = make_backend(sessions, clock, RecordingChannel("log", BOTH))

    assert (by_sms.channel, by_email.channel) == ("sms", "email")
    assert (sms.sent[0][0], email.sent[0][0]) == (PHONE, ADA)
    assert (await log_only.start(BOB, OTHER)).channel == "log"


async def test_a_passing_delivery_failure_costs_the_user_nothing(
    backend: LocalBackend, email: RecordingChannel, sessions: SessionFactory
) -> None:
    email.failure = DeliveryError("mail server down", temporary=True, retry_after=5)

    with pytest.raises(BackendUnavailable) as refused:
        await backend.start(ADA, ME)

    assert refused.value.retry_after == 5
    assert await rows(sessions, LocalChallenge) == []
    assert await rows(sessions, LocalEvent) == []
    email.failure = None
    challenge = await backend.start(ADA, ME)
    assert challenge.resend_at == T0 + timedelta(seconds=30)


async def test_a_lasting_delivery_failure_is_paced_like_a_send(
    backend: LocalBackend, email: RecordingChannel, sessions: SessionFactory
) -> None:
    email.failure = DeliveryError("mailbox unknown", temporary=False)

    with pytest.raises(BackendUnavailable):
        await backend.start(ADA, ME)

    assert await rows(sessions, LocalChallenge) == []
    assert len(await events(sessions, SEND_TO_IDENTIFIER)) == 1
    assert len(await events(sessions, SEND_BY_USER)) == 1
    assert await events(sessions, SEND_TOTAL) == []
    with pytest.raises(RateLimited) as refused:
        await backend.start(ADA, ME)
    assert refused.value.retry_after == 30


# -- sign-out, erasure, housekeeping ------------------------------------------------------


async def test_revoke_has_nothing_to_end(
    backend: LocalBackend, email: RecordingChannel, sessions: SessionFactory
) -> None:
    verified = await backend.verify(await backend.start(ADA, ME), email.last_code(ADA), ME)

    await backend.revoke(LinkRef(ME.telegram_user_id, verified.auth_user_id, ADA))

    assert [a.id for a in await rows(sessions, LocalAccount)] == [verified.auth_user_id]


async def test_complete_has_nothing_to_complete(backend: LocalBackend) -> None:
    challenge = await backend.start(ADA, ME)

    with pytest.raises(CodeExpired):
        await backend.complete(challenge, {"first_name": "Ada"}, ME)


async def test_erase_forgets_the_account_and_the_persons_codes_but_keeps_the_counts(
    backend: LocalBackend, email: RecordingChannel, clock: Clock, sessions: SessionFactory
) -> None:
    verified = await sign_in(
        backend, sessions, await backend.start(ADA, ME), email.last_code(ADA), ME
    )
    await backend.start(BOB, ME)
    theirs = await backend.start(ADA, OTHER)
    await spend_tries(backend, theirs, email.last_code(ADA), OTHER, 1)
    kept = len(await rows(sessions, LocalEvent))

    await backend.erase(LinkRef(ME.telegram_user_id, verified.auth_user_id, ADA))

    assert await rows(sessions, LocalAccount) == []
    assert [c.id for c in await rows(sessions, LocalChallenge)] == [theirs.state["id"]]
    assert len(await rows(sessions, LocalEvent)) == kept
    clock.advance(minutes=2)
    again = await backend.verify(await backend.start(ADA, ME), email.last_code(ADA), ME)
    assert again.created is True and again.auth_user_id != verified.auth_user_id


async def test_expired_codes_and_old_events_are_pruned(
    backend: LocalBackend,
    email: RecordingChannel,
    clock: Clock,
    sessions: SessionFactory,
) -> None:
    stale = await backend.start(ADA, ME)
    await spend_tries(backend, stale, email.last_code(ADA), ME, 1)
    clock.advance(minutes=11)

    fresh = await backend.start(BOB, OTHER)

    assert [c.id for c in await rows(sessions, LocalChallenge)] == [fresh.state["id"]]
    assert len(await rows(sessions, LocalEvent)) == 7  # 2 sends × 3 caps + 1 failure
    clock.advance(hours=1)
    await backend.start(BOB, ME)
    assert all(e.at == clock.now for e in await rows(sessions, LocalEvent))


async def test_logs_never_hold_a_code_or_an_address(
    backend: LocalBackend,
    email: RecordingChannel,
    sms: RecordingChannel,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    challenge = await backend.start(PHONE, ME)
    await spend_tries(backend, challenge, sms.last_code(PHONE), ME, 1)
    clock.advance(seconds=30)
    challenge = await backend.resend(challenge, ME)
    clock.advance(seconds=60)
    sms.failure = DeliveryError("carrier said no", temporary=True)
    with pytest.raises(BackendUnavailable):
        await backend.resend(challenge, ME)
    await backend.verify(challenge, sms.last_code(PHONE), ME)
    await backend.verify(await backend.start(ADA, ME), email.last_code(ADA), ME)

    assert caplog.records
    secrets_seen = [code for _, code in sms.sent + email.sent]
    for secret in [*secrets_seen, PHONE.value, PHONE.value[2:], ADA.value, "ada@"]:
        assert secret not in caplog.text


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="tries_per_code"):
        LocalLimits(tries_per_code=0)
    with pytest.raises(ValueError, match="resend_cooldown_max"):
        LocalLimits(resend_cooldown_max=timedelta(seconds=10))
    with pytest.raises(ValueError, match="code_ttl"):
        LocalLimits(code_ttl=timedelta(0))
    with pytest.raises(ValueError, match=r"sends_total must be more than .*sends_per_user"):
        LocalLimits(sends_per_user=1000)
