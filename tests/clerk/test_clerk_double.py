"""The Clerk double itself: test-mode codes, Clerk's limits answered with 429 and Retry-After,
and the Python API tests use."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.sandbox.clerk import TEST_CODE, ClerkDouble
from tests.clerk.conftest import StartDouble

NATIVE = {"_is_native": "1"}
VERSION = {"Clerk-API-Version": "2026-05-12"}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(headers=VERSION) as client:
        yield client


async def test_fapi_sign_in_creates_past_the_per_ip_limit_get_429(
    clerk: StartDouble, http: httpx.AsyncClient
) -> None:
    double = await clerk()  # Clerk's own numbers: 5 per 10 s
    url = f"{double.fapi_url}/v1/client/sign_ins"
    statuses = [
        (await http.post(url, params=NATIVE, data={"identifier": f"u{n}@example.com"})).status_code
        for n in range(6)
    ]
    assert statuses == [422] * 5 + [429]  # unknown people, then the limit
    refused = double.exchanges[-1]
    assert 1 <= int(refused.response_headers["Retry-After"]) <= 10
    assert refused.json()["errors"][0]["code"] == "too_many_requests"


async def test_bapi_metadata_writes_past_the_per_user_limit_get_429(
    clerk: StartDouble, http: httpx.AsyncClient
) -> None:
    double = await clerk()
    user_id = double.create_user(email="ada@example.com")
    url = f"{double.bapi_url}/v1/users/{user_id}/metadata"
    auth = {"Authorization": f"Bearer {double.secret_key}"}
    statuses = [
        (await http.patch(url, json={"private_metadata": {"n": n}}, headers=auth)).status_code
        for n in range(11)
    ]
    assert statuses == [200] * 10 + [429]
    assert double.metadata(user_id) == {"n": 9}


async def prepare(double: ClerkDouble, http: httpx.AsyncClient, value: str) -> str:
    """Has the double send a code to `value` (a new user's identifier); returns the code."""
    kind = "email" if "@" in value else "phone"
    user_id = (
        double.create_user(email=value) if kind == "email" else double.create_user(phone=value)
    )
    user = double.user(user_id)
    assert user is not None
    resource = "email_addresses" if kind == "email" else "phone_numbers"
    url = f"{double.bapi_url}/v1/{resource}/{user[resource][0]['id']}/prepare_verification"
    answer = await http.post(url, headers={"Authorization": f"Bearer {double.secret_key}"})
    assert answer.status_code == 200
    code = double.last_code(value)
    assert code is not None and len(code) == 6 and code.isdigit()
    assert (double.outbox[-1].identifier, double.outbox[-1].code) == (value, code)
    assert double.outbox[-1].channel == ("email" if kind == "email" else "sms")
    return code


async def test_test_identifiers_take_424242(double: ClerkDouble, http: httpx.AsyncClient) -> None:
    for value in ("jane+clerk_test@example.com", "+19735550133", "+12015550199"):
        assert await prepare(double, http, value) == TEST_CODE


async def test_other_identifiers_get_random_codes(
    double: ClerkDouble, http: httpx.AsyncClient
) -> None:
    codes = {await prepare(double, http, value) for value in ("ada@example.com", "+447700900123")}
    codes |= {await prepare(double, http, value) for value in ("bo@example.com", "+12015550200")}
    assert codes - {TEST_CODE}


async def test_python_api(double: ClerkDouble) -> None:
    user_id = double.create_user(
        email="ada@example.com", first_name="Ada", private_metadata={"plan": "pro"}
    )
    user = double.find_user("ADA@example.com")
    assert user is not None and (user["id"], user["first_name"]) == (user_id, "Ada")
    assert double.metadata(user_id) == {"plan": "pro"}
    assert double.sessions(user_id) == []
    double.create_user(phone="+12015550100", reserved=True)
    reserved = double.find_user("+12015550100")
    assert reserved is not None and reserved["phone_numbers"][0]["reserved"]
    with pytest.raises(ValueError):
        double.require_fields("middle_name")


async def test_browser_mode_is_not_served() -> None:
    async with ClerkDouble() as double, httpx.AsyncClient(headers=VERSION) as http:
        answer = await http.post(f"{double.fapi_url}/v1/client/sign_ins", data={"identifier": "x"})
        assert answer.status_code == 401
        assert answer.json()["errors"][0]["code"] == "dev_browser_unauthenticated"


async def test_a_second_attempt_on_a_finished_sign_in_is_already_verified(
    double: ClerkDouble, http: httpx.AsyncClient
) -> None:
    double.create_user(email="ada+clerk_test@example.com")
    base = f"{double.fapi_url}/v1/client/sign_ins"
    created = await http.post(
        base, params=NATIVE, data={"identifier": "ada+clerk_test@example.com"}
    )
    token = {"Authorization": created.headers["Authorization"]}
    sign_in = created.json()["response"]
    factor = sign_in["supported_first_factors"][0]
    form = {"strategy": "email_code", "email_address_id": factor["email_address_id"]}
    url = f"{base}/{sign_in['id']}"
    await http.post(f"{url}/prepare_first_factor", params=NATIVE, data=form, headers=token)
    attempt = {"strategy": "email_code", "code": TEST_CODE}
    first = await http.post(
        f"{url}/attempt_first_factor", params=NATIVE, data=attempt, headers=token
    )
    assert first.json()["response"]["status"] == "complete"

    second = await http.post(
        f"{url}/attempt_first_factor", params=NATIVE, data=attempt, headers=token
    )
    assert second.status_code == 400
    assert second.json()["errors"][0]["code"] == "verification_already_verified"
    read = await http.get(url, params=NATIVE, headers=token)
    assert read.json()["response"]["status"] == "complete"
    assert (
        read.json()["response"]["created_session_id"]
        == first.json()["response"]["created_session_id"]
    )
