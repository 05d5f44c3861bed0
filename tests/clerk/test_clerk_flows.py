"""The Clerk backend against the Clerk double, in both modes: sign-up, sign-in, the ways a code
goes wrong, and sign-out/erase. Challenges go through JSON between steps, as they do in the
database, so nothing works only because an object stayed in memory."""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from urllib.parse import quote

import pytest

from bot.auth.base import (
    BackendUnavailable,
    CodeExpired,
    InvalidIdentifier,
    LinkRef,
    NeedsMoreFields,
    RateLimited,
    TooManyAttempts,
    VerifiedIdentity,
    WrongCode,
)
from bot.auth.clerk import TAKEN, ClerkBackend
from bot.identifiers import Identifier
from bot.sandbox.clerk import TEST_CODE, ClerkDouble
from tests.clerk.conftest import MakeBackend, Person, StartDouble, stored

TEST_EMAIL = Identifier("email", "jane+clerk_test@example.com")
TEST_PHONE = Identifier("phone", "+12015550123")
EMAIL = Identifier("email", "ada@example.com")


def wrong(code: str) -> str:
    return "000000" if code != "000000" else "111111"


def link_of(person: Person, identity: VerifiedIdentity) -> LinkRef:
    return LinkRef(
        telegram_user_id=person.telegram_user_id,
        auth_user_id=identity.auth_user_id,
        identifier=identity.identifier,
        session_id=identity.session_id,
        state=identity.state,
    )


async def sign_in(
    backend: ClerkBackend, double: ClerkDouble, identifier: Identifier, person: Person
) -> VerifiedIdentity:
    challenge = await backend.start(identifier, person.requester)
    code = double.last_code(identifier)
    assert code is not None
    return await backend.verify(stored(challenge), code, person.requester)


async def test_sign_up_by_email(
    mode: str, double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    challenge = await backend.start(TEST_EMAIL, person.requester)
    assert (challenge.backend, challenge.channel, challenge.state["mode"]) == (
        "clerk",
        "email",
        mode,
    )
    assert challenge.expires_at > datetime.now(UTC)

    identity = await backend.verify(stored(challenge), "424 242", person.requester)

    assert identity.created and identity.identifier == TEST_EMAIL
    user = double.user(identity.auth_user_id)
    assert user is not None
    [email] = user["email_addresses"]
    assert email["email_address"] == TEST_EMAIL.value
    assert email["verification"]["status"] == "verified" and not email["reserved"]
    link = user["private_metadata"]["telegram"]
    assert (link["id"], link["username"]) == (person.telegram_user_id, "jane")
    assert datetime.fromisoformat(link["linked_at"]) <= datetime.now(UTC)
    if mode == "fapi":
        [session] = double.sessions(identity.auth_user_id)
        assert (session["id"], session["status"]) == (identity.session_id, "active")
        assert double.calls("touchSession")
    else:
        assert identity.session_id is None
        assert set(user["private_metadata"]) == {"telegram"}  # the sign-up marker is gone
    assert identity.sign_in_url is not None
    assert identity.sign_in_url.startswith("https://app.example/sign-in?__clerk_ticket=")


async def test_sign_up_by_phone_asks_for_a_missing_first_name(
    double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    double.require_fields("first_name")
    challenge = await backend.start(TEST_PHONE, person.requester)
    assert challenge.channel == "sms"

    with pytest.raises(NeedsMoreFields) as asked:
        await backend.verify(stored(challenge), TEST_CODE, person.requester)
    assert asked.value.fields == ("first_name",)

    # A blank answer is no answer: the same question again.
    with pytest.raises(NeedsMoreFields) as again:
        await backend.complete(stored(asked.value.challenge), {"first_name": " "}, person.requester)
    assert again.value.fields == ("first_name",)

    identity = await backend.complete(
        stored(again.value.challenge), {"first_name": "Ada"}, person.requester
    )
    assert identity.created
    user = double.user(identity.auth_user_id)
    assert user is not None and user["first_name"] == "Ada"
    [phone] = user["phone_numbers"]
    assert phone["phone_number"] == TEST_PHONE.value
    assert phone["verification"]["status"] == "verified"
    assert "telegram" in user["private_metadata"]


async def test_a_taken_username_is_asked_for_again(
    double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    double.create_user(email="someone@example.com", username="ada")
    double.require_fields("username")
    challenge = await backend.start(TEST_EMAIL, person.requester)
    with pytest.raises(NeedsMoreFields) as asked:
        await backend.verify(stored(challenge), TEST_CODE, person.requester)

    with pytest.raises(NeedsMoreFields) as taken:
        await backend.complete(stored(asked.value.challenge), {"username": "ada"}, person.requester)
    assert taken.value.fields == ("username",)

    identity = await backend.complete(
        stored(taken.value.challenge), {"username": "ada_l"}, person.requester
    )
    assert (double.user(identity.auth_user_id) or {})["username"] == "ada_l"


async def test_sign_in_of_an_existing_user(
    mode: str, double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    user_id = double.create_user(email=EMAIL.value, first_name="Ada")
    identity = await sign_in(backend, double, EMAIL, person)

    assert (identity.auth_user_id, identity.created) == (user_id, False)
    assert double.metadata(user_id)["telegram"]["id"] == person.telegram_user_id
    if mode == "fapi":
        assert [s["status"] for s in double.sessions(user_id)] == ["active"]
    assert len(double.users()) == 1


async def test_wrong_code_says_how_many_tries_are_left(
    double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    double.create_user(email=EMAIL.value)
    challenge = await backend.start(EMAIL, person.requester)
    code = double.last_code(EMAIL)
    assert code is not None

    tries = []
    for _ in range(2):
        with pytest.raises(WrongCode) as failed:
            await backend.verify(stored(challenge), wrong(code), person.requester)
        tries.append(failed.value.tries_left)
    assert tries == [2, 1]

    identity = await backend.verify(stored(challenge), code, person.requester)
    assert not identity.created


async def test_too_many_wrong_codes(
    mode: str, double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    challenge = await backend.start(TEST_EMAIL, person.requester)
    for tries_left in (2, 1):
        with pytest.raises(WrongCode) as failed:
            await backend.verify(stored(challenge), "000000", person.requester)
        assert failed.value.tries_left == tries_left
    with pytest.raises(TooManyAttempts) as locked:
        await backend.verify(stored(challenge), "000000", person.requester)
    assert locked.value.retry_at is not None

    # The code is spent, and so is the account begun for it; the right code is refused now
    # (bapi: the code went with the account, so it is a new code that is wanted).
    assert double.find_user(TEST_EMAIL) is None
    with pytest.raises(TooManyAttempts if mode == "fapi" else CodeExpired):
        await backend.verify(stored(challenge), TEST_CODE, person.requester)

    # Starting over works at once.
    fresh = await backend.start(TEST_EMAIL, person.requester)
    identity = await backend.verify(stored(fresh), TEST_CODE, person.requester)
    assert identity.created


async def test_expired_verification(
    double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    double.create_user(email=EMAIL.value)
    challenge = await backend.start(EMAIL, person.requester)
    first_code = double.last_code(EMAIL)
    assert first_code is not None
    double.advance(601)

    with pytest.raises(CodeExpired):
        await backend.verify(stored(challenge), first_code, person.requester)

    renewed = await backend.resend(stored(challenge), person.requester)
    assert renewed.expires_at > challenge.expires_at
    code = double.last_code(EMAIL)
    assert code is not None
    identity = await backend.verify(stored(renewed), code, person.requester)
    assert identity.identifier == EMAIL


async def test_resend_too_soon_is_rate_limited(
    double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    challenge = await backend.start(TEST_PHONE, person.requester)
    with pytest.raises(RateLimited) as limited:
        await backend.resend(stored(challenge), person.requester)
    assert 0 < limited.value.retry_after <= 31

    double.advance(31)
    renewed = await backend.resend(stored(challenge), person.requester)
    assert len(double.outbox) == 2
    identity = await backend.verify(stored(renewed), TEST_CODE, person.requester)
    assert identity.created


async def test_revoke_ends_the_session_and_unlinks(
    mode: str, double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    user_id = double.create_user(email=EMAIL.value)
    identity = await sign_in(backend, double, EMAIL, person)

    await backend.revoke(link_of(person, identity))

    assert "telegram" not in double.metadata(user_id)
    if mode == "fapi":
        assert [s["status"] for s in double.sessions(user_id)] == ["ended"]
    token_id = identity.state["sign_in_token_id"]
    assert double.instance.sign_in_tokens[token_id].status == "revoked"
    # Signing out twice is signing out once.
    await backend.revoke(link_of(person, identity))


async def test_erase_clears_the_link_and_keeps_the_apps_metadata(
    double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    user_id = double.create_user(email=EMAIL.value, private_metadata={"plan": "pro"})
    identity = await sign_in(backend, double, EMAIL, person)
    assert set(double.metadata(user_id)) == {"plan", "telegram"}

    await backend.erase(link_of(person, identity))

    assert double.metadata(user_id) == {"plan": "pro"}
    assert double.user(user_id) is not None  # the account is the app's, not ours to delete


async def test_unlinking_leaves_a_newer_link_alone(
    double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    user_id = double.create_user(email=EMAIL.value)
    first = await sign_in(backend, double, EMAIL, person)
    double.advance(31)
    other = Person(telegram_user_id=77, username="ada")
    await sign_in(backend, double, EMAIL, other)

    await backend.revoke(link_of(person, first))

    assert double.metadata(user_id)["telegram"]["id"] == 77


async def test_nothing_personal_is_logged(
    double: ClerkDouble, backend: ClerkBackend, person: Person, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    double.create_user(email=EMAIL.value)
    challenge = await backend.start(EMAIL, person.requester)
    code = double.last_code(EMAIL)
    assert code is not None
    with pytest.raises(WrongCode):
        await backend.verify(stored(challenge), wrong(code), person.requester)
    await backend.verify(stored(challenge), code, person.requester)
    with pytest.raises(InvalidIdentifier):
        await backend.start(Identifier("phone", "+1201"), person.requester)

    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "clerk_trace_id=" in text
    for secret in (EMAIL.value, quote(EMAIL.value), code, wrong(code), "+1201", "%2B1201"):
        assert secret not in text


# -- fapi ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["fapi"])
async def test_fapi_speaks_as_a_native_client(
    mode: str, double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    await backend.start(TEST_EMAIL, person.requester)
    challenge = await backend.start(TEST_PHONE, person.requester)
    await backend.verify(stored(challenge), TEST_CODE, person.requester)

    calls = [e for e in double.exchanges if e.api == "fapi"]
    assert all(dict(e.query).get("_is_native") == "1" for e in calls)
    assert all(e.headers.get("Clerk-API-Version") == "2026-05-12" for e in calls)
    assert all(
        e.headers.get("Content-Type") == "application/x-www-form-urlencoded"
        for e in calls
        if e.body
    )
    # Each start is a new client; within one, the token goes back exactly as it came.
    starts = [i for i, e in enumerate(calls) if e.operation == "createSignIn"]
    assert [("Authorization" in calls[i].headers) for i in starts] == [False, False]
    for before, after in pairwise(calls):
        if after.operation != "createSignIn":
            assert after.headers["Authorization"] == before.response_headers["Authorization"]
    touch = double.calls("touchSession")[-1]
    assert touch.body == b"intent=select_session"


@pytest.mark.parametrize("mode", ["fapi"])
async def test_fapi_without_native_api_is_unavailable_and_says_why(
    mode: str,
    clerk: StartDouble,
    backends: MakeBackend,
    person: Person,
    caplog: pytest.LogCaptureFixture,
) -> None:
    double = await clerk(native_api=False)
    backend = backends(double, "fapi")
    with pytest.raises(BackendUnavailable):
        await backend.start(TEST_EMAIL, person.requester)
    assert any(
        "Native API" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records
    )


@pytest.mark.parametrize("mode", ["fapi"])
@pytest.mark.parametrize("token", [None, "a-token-clerk-no-longer-knows"])
async def test_fapi_revoke_falls_back_to_the_secret_key(
    mode: str, token: str | None, double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    user_id = double.create_user(email=EMAIL.value)
    identity = await sign_in(backend, double, EMAIL, person)
    link = dataclasses.replace(
        link_of(person, identity), state={"client_token": token} if token else {}
    )

    await backend.revoke(link)

    assert [s["status"] for s in double.sessions(user_id)] == ["revoked"]


# -- bapi ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["bapi"])
async def test_bapi_keeps_a_new_identifier_reserved_until_the_code(
    mode: str, double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    challenge = await backend.start(TEST_EMAIL, person.requester)
    pending = double.find_user(TEST_EMAIL)
    assert pending is not None
    [email] = pending["email_addresses"]
    assert email["reserved"] and email["verification"]["status"] == "unverified"
    assert "passgram_pending" in pending["private_metadata"]

    identity = await backend.verify(stored(challenge), TEST_CODE, person.requester)

    user = double.user(identity.auth_user_id)
    assert user is not None
    [email] = user["email_addresses"]
    assert email["verification"]["status"] == "verified" and not email["reserved"]
    assert "passgram_pending" not in user["private_metadata"]


@pytest.mark.parametrize("mode", ["bapi"])
async def test_bapi_refuses_an_identifier_someone_holds_unverified(
    mode: str, double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    user_id = double.create_user(email=EMAIL.value)
    for item in double.instance.identifications.values():
        item.status = "unverified"
    with pytest.raises(InvalidIdentifier) as refused:
        await backend.start(EMAIL, person.requester)
    assert refused.value.reason == TAKEN
    assert double.user(user_id) is not None


@pytest.mark.parametrize("mode", ["bapi"])
async def test_bapi_sweeps_abandoned_sign_ups(
    mode: str, double: ClerkDouble, backends: MakeBackend, person: Person
) -> None:
    now = [datetime.now(UTC)]
    backend = backends(double, "bapi", clock=lambda: now[0])
    finished = await backend.verify(
        stored(await backend.start(TEST_EMAIL, person.requester)), TEST_CODE, person.requester
    )
    await backend.start(TEST_PHONE, person.requester)  # and never a code
    assert len(double.users()) == 2

    assert await backend.sweep_abandoned() == 0  # too recent to call abandoned
    now[0] += timedelta(hours=2)
    assert await backend.sweep_abandoned() == 1

    assert double.find_user(TEST_PHONE) is None
    assert double.user(finished.auth_user_id) is not None


@pytest.mark.parametrize("mode", ["bapi"])
async def test_bapi_asks_for_the_names_clerk_requires(
    mode: str, double: ClerkDouble, backend: ClerkBackend, person: Person
) -> None:
    double.require_fields("last_name", "first_name")
    challenge = await backend.start(TEST_EMAIL, person.requester)

    # Clerk named what it requires by refusing the user; the user was then made without them.
    refused, created = double.calls("CreateUser")
    [error] = refused.json()["errors"]
    assert (refused.status, error["code"]) == (422, "form_data_missing")
    assert sorted(error["meta"]["param_names"]) == ["first_name", "last_name"]
    assert json.loads(created.body)["skip_user_requirement"] is True
    assert created.status == 200

    with pytest.raises(NeedsMoreFields) as asked:
        await backend.verify(stored(challenge), TEST_CODE, person.requester)
    assert asked.value.fields == ("first_name", "last_name")

    with pytest.raises(NeedsMoreFields) as still:
        await backend.complete(
            stored(asked.value.challenge), {"first_name": "Ada"}, person.requester
        )
    assert still.value.fields == ("last_name",)
    identity = await backend.complete(
        stored(still.value.challenge), {"last_name": "Lovelace"}, person.requester
    )

    user = double.user(identity.auth_user_id)
    assert user is not None and identity.created
    assert (user["first_name"], user["last_name"]) == ("Ada", "Lovelace")
    assert set(user["private_metadata"]) == {"telegram"}
