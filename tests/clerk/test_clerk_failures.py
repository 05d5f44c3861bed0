"""When Clerk fails: outages and unknown answers are "unavailable, try again"; its rate limits
are waited out, never shown."""

from __future__ import annotations

import logging

import pytest

from bot.auth.base import BackendUnavailable
from bot.auth.clerk import ClerkBackend, InMemoryPacer
from bot.identifiers import Identifier
from bot.sandbox.clerk import TEST_CODE, ClerkDouble
from tests.clerk.conftest import MakeBackend, Person, VirtualTime, stored

TEST_EMAIL = Identifier("email", "jane+clerk_test@example.com")
FIRST_CALL = {"fapi": "createSignIn", "bapi": "GetUserList"}


async def test_a_server_error_is_unavailable_and_the_retry_works(
    mode: str, double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    double.fail_next(503, operation=FIRST_CALL[mode], retry_after=3)
    with pytest.raises(BackendUnavailable) as failed:
        await backend.start(TEST_EMAIL, person.requester)
    assert failed.value.retry_after == 3

    challenge = await backend.start(TEST_EMAIL, person.requester)
    assert (await backend.verify(stored(challenge), TEST_CODE, person.requester)).created


async def test_an_unknown_error_code_is_unavailable_and_logged(
    mode: str,
    double: ClerkDouble,
    backend: ClerkBackend,
    person: Person,
    caplog: pytest.LogCaptureFixture,
) -> None:
    double.fail_next(400, "brand_new_code", operation=FIRST_CALL[mode])
    with pytest.raises(BackendUnavailable):
        await backend.start(TEST_EMAIL, person.requester)
    [line] = [r.getMessage() for r in caplog.records if "brand_new_code" in r.getMessage()]
    trace = double.exchanges[-1].json()["clerk_trace_id"]
    assert f"clerk_trace_id={trace}" in line and TEST_EMAIL.masked in line


async def test_no_answer_at_all_is_unavailable(
    person: Person, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    backend = ClerkBackend.from_config("fapi", fapi_url="http://127.0.0.1:9")
    try:
        with pytest.raises(BackendUnavailable):
            await backend.start(TEST_EMAIL, person.requester)
    finally:
        await backend.aclose()
    assert any("no answer" in r.getMessage() for r in caplog.records)


async def test_a_rate_limit_is_a_wait_the_person_is_told_about(
    mode: str, double: ClerkDouble, backends: MakeBackend, person: Person
) -> None:
    time = VirtualTime()
    pacer = InMemoryPacer({}, notify_min_wait=0, clock=time.clock, sleep=time.sleep)
    backend = backends(double, mode, pacer=pacer)
    double.fail_next(429, "too_many_requests", operation=FIRST_CALL[mode], retry_after=4)

    challenge = await backend.start(TEST_EMAIL, person.requester)

    assert person.waits == [4.0]
    assert (await backend.verify(stored(challenge), TEST_CODE, person.requester)).created


@pytest.mark.parametrize("mode", ["fapi"])
async def test_fapi_signs_in_even_when_the_link_cannot_be_written(
    mode: str,
    double: ClerkDouble,
    backend: ClerkBackend,
    person: Person,
    caplog: pytest.LogCaptureFixture,
) -> None:
    challenge = await backend.start(TEST_EMAIL, person.requester)
    double.fail_next(500, operation="UpdateUserMetadata")

    identity = await backend.verify(stored(challenge), TEST_CODE, person.requester)

    assert identity.session_id is not None
    assert "telegram" not in double.metadata(identity.auth_user_id)
    assert any("link is not in Clerk" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("mode", ["bapi"])
async def test_bapi_sign_up_is_not_finished_until_its_marker_is_cleared(
    mode: str, double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    challenge = await backend.start(TEST_EMAIL, person.requester)
    double.fail_next(500, operation="UpdateUserMetadata")

    with pytest.raises(BackendUnavailable):
        await backend.verify(stored(challenge), TEST_CODE, person.requester)
    # Clerk has the code as right already; trying again finishes the sign-up.
    identity = await backend.verify(stored(challenge), TEST_CODE, person.requester)

    assert identity.created
    assert set(double.metadata(identity.auth_user_id)) == {"telegram"}
