"""The same conversation with Clerk as the backend: bot ↔ Bot API stand-in, bot ↔ Clerk double,
in both Clerk modes. Every exchange with the double is checked against Clerk's published specs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.sandbox.clerk import FAPI_LIMITS, TEST_CODE, ClerkDouble
from tests.clerk.openapi_check import spec_checked
from tests.e2e.conftest import World, make_world, remember

WINDOW = 0.3  # Clerk's per-IP limits over a short window, so paced tests stay quick


@pytest.fixture(params=["fapi", "bapi"])
def clerk_mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def double() -> AsyncIterator[ClerkDouble]:
    limits = {lane: (calls, WINDOW) for lane, (calls, _) in FAPI_LIMITS.items()}
    async with spec_checked(fapi_limits=limits) as d:
        yield d


@pytest.fixture
async def clerk_world(tmp_path: Path, double: ClerkDouble, clerk_mode: str) -> AsyncIterator[World]:
    async with make_world(tmp_path, "polling") as world:
        world.overrides = {
            "auth_backend": "clerk",
            "clerk_mode": clerk_mode,
            "clerk_fapi_url": double.fapi_url,
            "clerk_bapi_url": double.bapi_url,
            "clerk_secret_key": double.secret_key,
            "clerk_pace_window": WINDOW,
        }
        await world.start_bot()
        yield world


async def test_sign_up_by_email_links_the_clerk_user(
    clerk_world: World, double: ClerkDouble
) -> None:
    w = clerk_world
    email = "jane+clerk_test@example.com"
    remember(w, email)
    jane = w.botapi.user(first_name="Jane", username="jane")
    await jane.send_text(email)
    sent = await jane.next_message()
    assert "j•••@example.com" in (sent.text or "") and "by email" in (sent.text or "")
    await jane.send_text(TEST_CODE)
    done = await jane.next_message()
    assert (done.text or "").startswith(f"✅ You're signed in to Acme as {email}")
    assert "New account created" in (done.text or "")

    user = double.find_user(email)
    assert user is not None
    assert w.app is not None
    link = await w.app.store.get_link(jane.id)
    assert link is not None and link.auth_user_id == user["id"]
    telegram = double.metadata(user["id"]).get("telegram")
    assert telegram and telegram["id"] == jane.id and telegram["username"] == "jane"


async def test_sign_up_by_phone_asks_for_the_missing_first_name(
    clerk_world: World, double: ClerkDouble
) -> None:
    w = clerk_world
    double.require_fields("first_name")
    number = "+12015550142"
    remember(w, number)
    bob = w.botapi.user(first_name="Bob")
    await bob.send_text(number)
    assert "by SMS" in ((await bob.next_message()).text or "")
    await bob.send_text(TEST_CODE)
    ask = await bob.next_message()
    assert ask.text == "One more thing for your new account: what's your first name?"
    await bob.send_text("Bobby")
    done = await bob.next_message()
    assert "New account created" in (done.text or "")
    user = double.find_user(number)
    assert user is not None and user["first_name"] == "Bobby"


async def test_existing_user_signs_in(clerk_world: World, double: ClerkDouble) -> None:
    w = clerk_world
    email = "old.friend+clerk_test@example.com"
    remember(w, email)
    user_id = double.create_user(email=email, first_name="Old")
    cy = w.botapi.user(first_name="Cy")
    await cy.send_text(email)
    await cy.next_message()
    await cy.send_text(TEST_CODE)
    done = await cy.next_message()
    assert (done.text or "").startswith("✅ Welcome back — signed in to Acme")
    assert w.app is not None
    link = await w.app.store.get_link(cy.id)
    assert link is not None and link.auth_user_id == user_id


async def test_wrong_code_expired_and_too_many(clerk_world: World, double: ClerkDouble) -> None:
    w = clerk_world
    email = "mistakes+clerk_test@example.com"
    remember(w, email)
    di = w.botapi.user(first_name="Di")
    await di.send_text(email)
    await di.next_message()
    await di.send_text("111111")
    assert (await di.next_message()).text == "That code isn't right. 2 tries left."

    double.advance(11 * 60)
    await di.send_text(TEST_CODE)
    assert (await di.next_message()).text == "That code has expired."
    await di.press("Send a new code")
    assert "m•••@example.com" in ((await di.next_message()).text or "")

    for _ in range(3):
        await di.send_text("111111")
        reply = await di.next_message()
    assert (reply.text or "").startswith("Too many wrong codes")
    assert w.app is not None
    assert await w.app.store.get_link(di.id) is None


async def test_logout_ends_the_session_and_forget_clears_metadata(
    clerk_world: World, double: ClerkDouble, clerk_mode: str
) -> None:
    w = clerk_world
    email = "leaver+clerk_test@example.com"
    remember(w, email)
    ed = w.botapi.user(first_name="Ed", username="ed")
    await ed.send_text(email)
    await ed.next_message()
    await ed.send_text(TEST_CODE)
    await ed.next_message()
    user = double.find_user(email)
    assert user is not None
    assert "telegram" in double.metadata(user["id"])
    if clerk_mode == "fapi":
        assert [s["status"] for s in double.sessions(user["id"])] == ["active"]

    await ed.send_text("/logout")
    assert "signed out" in ((await ed.next_message()).text or "")
    assert all(s["status"] != "active" for s in double.sessions(user["id"]))
    assert "telegram" not in double.metadata(user["id"])

    await ed.send_text(email)
    await ed.next_message()
    await ed.send_text(TEST_CODE)
    await ed.next_message()
    assert "telegram" in double.metadata(user["id"])
    await ed.send_text("/forget")
    await ed.next_message()
    await ed.press("Erase my data")
    assert (await ed.next_message()).text == "Done. I've erased your data and signed you out."
    assert "telegram" not in double.metadata(user["id"])
    assert all(s["status"] != "active" for s in double.sessions(user["id"]))
