"""The spec checker catches what it should: each case spoils one real exchange one way."""

from __future__ import annotations

import dataclasses
import json

import pytest
from openapi_schema_validator import OAS30ReadValidator

from bot.identifiers import Identifier
from bot.sandbox.clerk import ClerkDouble, Exchange
from tests.clerk.conftest import MakeBackend, Person, stored
from tests.clerk.openapi_check import spec, violations

EMAIL = Identifier("email", "ada@example.com")


@pytest.fixture
async def recorded(
    double: ClerkDouble, backends: MakeBackend, person: Person
) -> dict[str, Exchange]:
    """One real fapi sign-in, by operation."""
    backend = backends(double, "fapi")
    double.create_user(email=EMAIL.value)
    challenge = await backend.start(EMAIL, person.requester)
    await backend.verify(stored(challenge), double.last_code(EMAIL) or "", person.requester)
    assert violations(double.exchanges) == []
    return {e.operation or "": e for e in double.exchanges}


def spoiled_answer(exchange: Exchange, change: object) -> Exchange:
    body = json.loads(exchange.response_body)
    change(body)  # type: ignore[operator]
    return dataclasses.replace(exchange, response_body=json.dumps(body).encode())


def only(exchange: Exchange) -> str:
    [problem] = violations([exchange])
    return problem


async def test_an_answer_missing_a_required_field(recorded: dict[str, Exchange]) -> None:
    bad = spoiled_answer(recorded["createSignIn"], lambda b: b["response"].pop("status"))
    assert "'status' is a required property" in only(bad)


async def test_an_answer_with_a_field_of_the_wrong_type(recorded: dict[str, Exchange]) -> None:
    bad = spoiled_answer(recorded["touchSession"], lambda b: b["response"].update(expire_at="soon"))
    assert "is not of type 'integer'" in only(bad)


async def test_an_undeclared_status(recorded: dict[str, Exchange]) -> None:
    assert "status 418 is not in the spec" in only(
        dataclasses.replace(recorded["createSignIn"], status=418)
    )


async def test_an_unknown_operation(recorded: dict[str, Exchange]) -> None:
    bad = dataclasses.replace(recorded["createSignIn"], method="PUT")
    assert "not an operation of the fapi spec" in only(bad)


async def test_an_undeclared_query_parameter(recorded: dict[str, Exchange]) -> None:
    exchange = recorded["attemptSignInFactorOne"]
    bad = dataclasses.replace(exchange, query=(*exchange.query, ("debug", "1")))
    assert "query parameter 'debug' is not in the spec" in only(bad)


async def test_a_client_token_without_the_native_flag(recorded: dict[str, Exchange]) -> None:
    bad = dataclasses.replace(recorded["attemptSignInFactorOne"], query=())
    assert "Authorization header without _is_native=true" in only(bad)


async def test_a_body_field_the_schema_forbids(recorded: dict[str, Exchange]) -> None:
    exchange = recorded["UpdateUserMetadata"]
    bad = dataclasses.replace(exchange, body=b'{"metadata": {}}')
    assert "Additional properties are not allowed" in only(bad)


async def test_a_body_as_json_where_a_form_is_declared(recorded: dict[str, Exchange]) -> None:
    exchange = recorded["createSignIn"]
    headers = {**exchange.headers, "Content-Type": "application/json"}
    bad = dataclasses.replace(exchange, headers=headers, body=b'{"identifier": "x"}')
    assert "body as application/json" in only(bad)


async def test_a_backend_call_without_the_secret_key(recorded: dict[str, Exchange]) -> None:
    exchange = recorded["UpdateUserMetadata"]
    headers = {k: v for k, v in exchange.headers.items() if k != "Authorization"}
    assert "no security requirement met" in only(dataclasses.replace(exchange, headers=headers))


def test_nullable_compositions_admit_null() -> None:
    """Why the checker reads `nullable` beside `oneOf` as Clerk's authors mean it."""
    fapi = spec("fapi")
    sign_in = fapi.document["components"]["schemas"]["Client.SignIn-2"]
    verification = sign_in["properties"]["first_factor_verification"]
    strict = OAS30ReadValidator({**verification, "components": fapi.document["components"]})
    assert not strict.is_valid(None)  # what a strict 3.0.3 reading says of Clerk's own answers
    assert fapi.errors(verification, None, request=False) == []
