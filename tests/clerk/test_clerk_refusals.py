"""Lasting refusals: what asking again cannot change is said as such, never as "try again in a
minute", and the operator is told what to change in the Clerk Dashboard where that would help."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from bot.auth.base import Refused, TooManyAttempts
from bot.auth.clerk import BLOCKED, MFA_REQUIRED, REQUIREMENTS, SIGN_UP_CLOSED, ClerkBackend
from bot.identifiers import Identifier
from bot.sandbox.clerk import TEST_CODE, ClerkDouble
from tests.clerk.conftest import Person, stored

TEST_EMAIL = Identifier("email", "jane+clerk_test@example.com")


def operator_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "bot.auth.clerk" and r.levelno >= logging.WARNING
    ]


async def test_multi_factor_is_a_lasting_refusal(
    mode: str,
    double: ClerkDouble,
    backend: ClerkBackend,
    person: Person,
    caplog: pytest.LogCaptureFixture,
) -> None:
    user_id = double.create_user(email=TEST_EMAIL.value, second_factor=True)

    with pytest.raises(Refused) as refused:
        # fapi: Clerk says so after the code; bapi: the account says so before any code.
        challenge = await backend.start(TEST_EMAIL, person.requester)
        await backend.verify(stored(challenge), TEST_CODE, person.requester)

    assert refused.value.reason == MFA_REQUIRED
    assert double.sessions(user_id) == []
    assert "telegram" not in double.metadata(user_id)
    if mode == "bapi":
        assert double.outbox == []
    [line] = operator_lines(caplog)
    assert "second factor" in line and "Clerk Dashboard (Multi-factor)" in line
    assert TEST_EMAIL.value not in line and TEST_EMAIL.masked in line


@pytest.mark.parametrize(
    ("mode", "requirement"),
    [
        ("fapi", "password"),
        ("fapi", "legal_accepted"),
        ("fapi", "phone_number"),
        ("bapi", "legal_accepted"),
        ("bapi", "phone_number"),
    ],
)
async def test_sign_up_requirements_the_chat_cannot_meet_are_a_lasting_refusal(
    mode: str,
    requirement: str,
    double: ClerkDouble,
    backend: ClerkBackend,
    person: Person,
    caplog: pytest.LogCaptureFixture,
) -> None:
    double.require_fields("first_name", requirement)

    with pytest.raises(Refused) as refused:
        await backend.start(TEST_EMAIL, person.requester)

    assert refused.value.reason == REQUIREMENTS
    # Refused before any code: nobody is asked for one that could not lead anywhere.
    assert double.outbox == []
    assert double.users() == []
    [line] = operator_lines(caplog)
    assert requirement in line and "first_name" not in line
    assert "optional in the Clerk Dashboard" in line


@pytest.mark.parametrize("mode", ["bapi"])
async def test_bapi_signs_up_without_a_password_where_others_can_sign_in_without_one(
    mode: str, double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    double.require_fields("password")
    challenge = await backend.start(TEST_EMAIL, person.requester)
    identity = await backend.verify(stored(challenge), TEST_CODE, person.requester)
    assert identity.created


async def test_a_banned_account_is_a_lasting_refusal(
    double: ClerkDouble, backend: ClerkBackend, person: Person, caplog: pytest.LogCaptureFixture
) -> None:
    user_id = double.create_user(email=TEST_EMAIL.value)
    double.ban(user_id)

    with pytest.raises(Refused) as refused:
        await backend.start(TEST_EMAIL, person.requester)

    assert refused.value.reason == BLOCKED
    assert double.outbox == []
    [line] = operator_lines(caplog)
    assert "banned" in line and TEST_EMAIL.masked in line


async def test_an_account_locked_until_unlocked_is_a_lasting_refusal(
    double: ClerkDouble, backend: ClerkBackend, person: Person, caplog: pytest.LogCaptureFixture
) -> None:
    user_id = double.create_user(email=TEST_EMAIL.value)
    double.lock(user_id)

    with pytest.raises(Refused) as refused:
        await backend.start(TEST_EMAIL, person.requester)

    assert refused.value.reason == BLOCKED
    assert double.outbox == []
    [line] = operator_lines(caplog)
    assert "locked" in line and "Clerk Dashboard" in line


async def test_an_account_locked_for_a_while_is_told_when_it_opens(
    double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    user_id = double.create_user(email=TEST_EMAIL.value)
    double.lock(user_id, seconds=1800)

    with pytest.raises(TooManyAttempts) as locked:
        await backend.start(TEST_EMAIL, person.requester)

    assert locked.value.retry_at is not None
    expected = datetime.now(UTC) + timedelta(minutes=30)
    assert abs(locked.value.retry_at - expected) < timedelta(seconds=5)

    double.advance(1801)
    challenge = await backend.start(TEST_EMAIL, person.requester)
    assert (await backend.verify(stored(challenge), TEST_CODE, person.requester)).auth_user_id == (
        user_id
    )


@pytest.mark.parametrize("mode", ["fapi"])
async def test_sign_ups_by_invitation_only_are_a_lasting_refusal(
    mode: str,
    double: ClerkDouble,
    backend: ClerkBackend,
    person: Person,
    caplog: pytest.LogCaptureFixture,
) -> None:
    double.restrict_sign_ups()

    with pytest.raises(Refused) as refused:
        await backend.start(TEST_EMAIL, person.requester)

    assert refused.value.reason == SIGN_UP_CLOSED
    assert double.outbox == []
    [line] = operator_lines(caplog)
    assert "sign_up_mode_restricted" in line and "Clerk Dashboard" in line
