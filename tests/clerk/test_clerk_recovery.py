"""A crash between Clerk taking the code and Passgram storing the link: the person types the
same code again (the stored challenge is still the one from before) and finishes, as the same
account and session, with nothing made twice."""

from __future__ import annotations

import pytest

from bot.auth.base import CodeExpired, NeedsMoreFields, WrongCode
from bot.auth.clerk import ClerkBackend
from bot.identifiers import Identifier
from bot.sandbox.clerk import TEST_CODE, ClerkDouble
from tests.clerk.conftest import Person, stored

TEST_EMAIL = Identifier("email", "jane+clerk_test@example.com")
TEST_PHONE = Identifier("phone", "+12015550123")
EMAIL = Identifier("email", "ada@example.com")


async def test_the_same_code_again_finishes_a_sign_in(
    mode: str, double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    user_id = double.create_user(email=EMAIL.value)
    challenge = await backend.start(EMAIL, person.requester)
    code = double.last_code(EMAIL)
    assert code is not None
    before_crash = await backend.verify(stored(challenge), code, person.requester)

    again = await backend.verify(stored(challenge), code, person.requester)

    assert (again.auth_user_id, again.created) == (user_id, False)
    assert again.session_id == before_crash.session_id
    if mode == "fapi":
        [session] = double.sessions(user_id)
        assert (session["id"], session["status"]) == (again.session_id, "active")
    assert double.metadata(user_id)["telegram"]["id"] == person.telegram_user_id


async def test_the_same_code_again_finishes_a_sign_up(
    mode: str, double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    challenge = await backend.start(TEST_PHONE, person.requester)
    before_crash = await backend.verify(stored(challenge), TEST_CODE, person.requester)

    again = await backend.verify(stored(challenge), TEST_CODE, person.requester)

    assert (again.auth_user_id, again.created) == (before_crash.auth_user_id, True)
    assert again.session_id == before_crash.session_id
    [user] = double.users()
    assert user["id"] == again.auth_user_id
    assert set(user["private_metadata"]) == {"telegram"}


async def test_the_same_code_again_asks_again_for_what_sign_up_still_misses(
    double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    double.require_fields("first_name")
    challenge = await backend.start(TEST_EMAIL, person.requester)
    with pytest.raises(NeedsMoreFields):
        await backend.verify(stored(challenge), TEST_CODE, person.requester)

    with pytest.raises(NeedsMoreFields) as asked:
        await backend.verify(stored(challenge), TEST_CODE, person.requester)
    assert asked.value.fields == ("first_name",)

    identity = await backend.complete(
        stored(asked.value.challenge), {"first_name": "Ada"}, person.requester
    )
    assert identity.created
    assert (double.user(identity.auth_user_id) or {})["first_name"] == "Ada"


async def test_the_same_answer_again_finishes_a_sign_up_that_asked_for_more(
    double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    double.require_fields("first_name")
    challenge = await backend.start(TEST_EMAIL, person.requester)
    with pytest.raises(NeedsMoreFields) as asked:
        await backend.verify(stored(challenge), TEST_CODE, person.requester)
    before_crash = await backend.complete(
        stored(asked.value.challenge), {"first_name": "Ada"}, person.requester
    )

    again = await backend.complete(
        stored(asked.value.challenge), {"first_name": "Ada"}, person.requester
    )

    assert (again.auth_user_id, again.session_id) == (
        before_crash.auth_user_id,
        before_crash.session_id,
    )
    assert len(double.users()) == 1


@pytest.mark.parametrize("mode", ["fapi"])
@pytest.mark.parametrize("code", ["verification_already_verified", "client_state_invalid"])
async def test_fapi_finishes_a_sign_up_clerk_refuses_to_update_once_complete(
    mode: str, code: str, double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    # Clerk does not document its answer to updating a finished sign-up; whatever refusal it
    # is, the sign-up as Clerk has it decides.
    double.require_fields("first_name")
    challenge = await backend.start(TEST_EMAIL, person.requester)
    with pytest.raises(NeedsMoreFields) as asked:
        await backend.verify(stored(challenge), TEST_CODE, person.requester)
    before_crash = await backend.complete(
        stored(asked.value.challenge), {"first_name": "Ada"}, person.requester
    )
    double.fail_next(400, code, operation="updateSignUps")

    again = await backend.complete(
        stored(asked.value.challenge), {"first_name": "Ada"}, person.requester
    )

    assert again.auth_user_id == before_crash.auth_user_id
    assert double.calls("getSignUps")


async def test_someone_elses_right_code_lets_nobody_else_in(
    mode: str, double: ClerkDouble, backend: ClerkBackend
) -> None:
    double.create_user(email=EMAIL.value)
    mallory, ada = Person(telegram_user_id=666, username="m"), Person(telegram_user_id=1)
    waiting = await backend.start(EMAIL, mallory.requester)
    mallorys_code = double.last_code(EMAIL)
    double.advance(31)
    challenge = await backend.start(EMAIL, ada.requester)
    code = double.last_code(EMAIL)
    assert code is not None
    await backend.verify(stored(challenge), code, ada.requester)
    guess = next(c for c in ("000000", "111111", "222222") if c not in (code, mallorys_code))

    # fapi: Mallory's own sign-in never saw a right code; bapi: Ada's code replaced Mallory's.
    with pytest.raises(WrongCode if mode == "fapi" else CodeExpired):
        await backend.verify(stored(waiting), guess, mallory.requester)
