"""Faults and races, end to end: updates out of order or redelivered, a stop or a crash in the
middle of a step, bodies that are not updates, a database that fails. Each test first does what
broke the bot before it was hardened, then checks what the person sees and what is stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from storage.models import Link, LocalAccount
from tests.e2e.conftest import World, make_world, remember
from tests.e2e.test_sign_in import rows
from tests.support.postgres import fresh_postgres


async def until(condition: Callable[[], bool], what: str, within: float = 5.0) -> None:
    """Wait for a state the test cannot be told about (no timing is asserted)."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - nothing signals these states
            await asyncio.sleep(0.01)
    assert condition(), what


async def code_step(w: World, name: str, email: str) -> tuple[object, str]:
    """A person at the code step; returns them and the code that was mailed."""
    remember(w, email)
    user = w.botapi.user(first_name=name)
    await user.send_text(email)
    sent = await user.next_message()
    assert "I've sent a 6-digit code" in (sent.text or "")
    return user, await w.email_code(email)


def bot_texts(user: object) -> list[str]:
    return [m.text or "" for m in user.history if m.from_bot]  # type: ignore[attr-defined]


@pytest.fixture(params=["sqlite", "postgresql"])
async def world(
    request: pytest.FixtureRequest, tmp_path: Path, bot_mode: str, framework: str
) -> AsyncIterator[World]:
    """Here every race and fault is played on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        async with make_world(tmp_path, bot_mode, framework) as w:
            yield w
        return
    async with fresh_postgres() as url, make_world(tmp_path, bot_mode, framework) as w:
        w.overrides["database_url"] = url
        yield w


@pytest.mark.parametrize("bot_mode", ["polling"])
async def test_a_code_and_a_press_in_one_batch_are_decided_in_order(running: World) -> None:
    w = running
    jane, code = await code_step(w, "Jane", "jane.batch@example.com")
    # Both reach the server before the bot polls again: one getUpdates batch.
    await jane.send_text(code)
    toast = await jane.press("cancel")
    await jane.wait_for(lambda m: m.from_bot and (m.text or "").startswith("✅"))
    assert toast == "That button no longer does anything."  # the press came after the sign-in
    assert await rows(w, Link, telegram_user_id=jane.id) == 1


async def test_a_command_and_a_press_together_are_both_answered(running: World) -> None:
    w = running
    ann, _ = await code_step(w, "Ann", "ann.batch@example.com")
    await ann.send_text("/help")
    await ann.press("cancel")
    await ann.wait_for(lambda m: m.from_bot and "one-time code" in (m.text or ""))
    await ann.wait_for(lambda m: m.from_bot and (m.text or "").startswith("Cancelled."))


@pytest.mark.parametrize("bot_mode", ["webhook"])
async def test_a_webhook_update_arriving_after_a_later_one_is_handled(running: World) -> None:
    w = running
    assert w.app is not None and w.app.settings.webhook_secret is not None
    ivy = w.botapi.user(first_name="Ivy")
    await ivy.send_text("/start")
    await ivy.next_message()

    def update(update_id: int, words: str) -> dict[str, object]:
        return {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": 0,
                "chat": {"id": ivy.id, "type": "private", "first_name": "Ivy"},
                "from": {"id": ivy.id, "is_bot": False, "first_name": "Ivy"},
                "text": words,
                "entities": [{"type": "bot_command", "offset": 0, "length": len(words)}],
            },
        }

    headers = {"X-Telegram-Bot-Api-Secret-Token": w.app.settings.webhook_secret.get_secret_value()}
    async with httpx.AsyncClient() as client:
        for update_id, words in ((6002, "/help"), (6001, "/me")):
            answer = await client.post(
                w.app.settings.webhook_url or "", json=update(update_id, words), headers=headers
            )
            assert answer.status_code == 200
        again = await client.post(
            w.app.settings.webhook_url or "", json=update(6001, "/me"), headers=headers
        )
        assert again.status_code == 200
    replies = bot_texts(ivy)
    assert any("one-time code" in r for r in replies)
    assert sum("You're not signed in" in r for r in replies) == 1  # the retry changed nothing


@pytest.mark.parametrize("bot_mode", ["webhook"])
async def test_webhook_refuses_bodies_that_are_not_updates(running: World) -> None:
    w = running
    assert w.app is not None and w.app.settings.webhook_secret is not None
    headers = {"X-Telegram-Bot-Api-Secret-Token": w.app.settings.webhook_secret.get_secret_value()}
    url = w.app.settings.webhook_url or ""
    async with httpx.AsyncClient() as client:
        for body in (b"{not json", b"[1,2,3]", b'{"update_id": "x"}', b"\xff\xfe"):
            answer = await client.post(url, content=body, headers=headers)
            assert answer.status_code == 400, body
        assert (await client.get(url.rsplit("/", 2)[0] + "/healthz")).status_code == 200
    assert not [line for line in w.log.lines if " ERROR " in line]


async def test_resend_after_the_code_expired_is_answered(running: World) -> None:
    w = running
    kim, _ = await code_step(w, "Kim", "kim.late@example.com")
    w.clock.advance(minutes=11)
    await kim.press("resend")
    expired = await kim.next_message()
    assert expired.text == "That code has expired."
    await kim.press("Send a new code")
    assert "I've sent a 6-digit code" in ((await kim.next_message()).text or "")


async def test_a_press_that_meets_a_broken_database_is_answered(running: World) -> None:
    w = running
    lee, _ = await code_step(w, "Lee", "lee.broken@example.com")
    assert w.app is not None
    async with w.app.db.engine.begin() as conn:
        await conn.execute(text("DROP TABLE handled_updates"))
    toast = await lee.press("cancel")  # returns only once the spinner was stopped
    assert toast is None
    failed = await lee.next_message()
    assert (failed.text or "").startswith("Something went wrong on my side")


async def test_stopping_finishes_a_step_in_flight(running: World) -> None:
    w = running
    assert w.runner is not None
    w.smtp.delay = 1.0
    email = "max.slow@example.com"
    remember(w, email)
    max_ = w.botapi.user(first_name="Max")
    await max_.send_text(email)
    runner = w.runner
    await until(lambda: len(runner.lanes) == 1, "the step is in flight")
    await w.stop_bot()
    assert not [line for line in w.log.lines if " ERROR " in line]  # a clean stop is quiet
    # Stopping waited for the step: the code went out and the person was told so.
    assert len(w.smtp.messages) == 1
    assert any("I've sent a 6-digit code" in t for t in bot_texts(max_))

    w.smtp.delay = 0
    await w.start_bot()  # an unconfirmed update comes back, and is recognised
    await max_.send_text("/me")
    await max_.wait_for(lambda m: m.from_bot and "not signed in" in (m.text or ""))
    assert len(w.smtp.messages) == 1
    assert sum("I've sent a 6-digit code" in t for t in bot_texts(max_)) == 1


FAIL_AUDIT = {
    # The database refuses the transaction that stores the link (as a full disk or a killed
    # connection would), after the code was judged right in an earlier one.
    "sqlite": [
        "CREATE TRIGGER fail_audit BEFORE INSERT ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION fail_audit() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'disk full'; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER fail_audit BEFORE INSERT ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION fail_audit()",
    ],
}
HEAL_AUDIT = {
    "sqlite": ["DROP TRIGGER fail_audit"],
    "postgresql": ["DROP TRIGGER fail_audit ON audit_log", "DROP FUNCTION fail_audit()"],
}


async def test_a_failure_between_checking_the_code_and_storing_the_link_loses_nothing(
    running: World,
) -> None:
    """The code is judged right, then storing the link fails (as when the process dies
    there): the same code must still sign the person in, once."""
    w = running
    sam, code = await code_step(w, "Sam", "sam.crash@example.com")
    assert w.app is not None
    engine = w.app.db.engine
    dialect = engine.dialect.name
    async with engine.begin() as conn:
        for statement in FAIL_AUDIT[dialect]:
            await conn.execute(text(statement))
    await sam.send_text(code)
    failed = await sam.next_message()
    assert (failed.text or "").startswith("Something went wrong on my side")
    assert await rows(w, Link, telegram_user_id=sam.id) == 0
    async with engine.begin() as conn:
        for statement in HEAL_AUDIT[dialect]:
            await conn.execute(text(statement))

    await sam.send_text(code)
    await sam.wait_for(lambda m: m.from_bot and (m.text or "").startswith("✅"))
    assert await rows(w, Link, telegram_user_id=sam.id) == 1
    assert await rows(w, LocalAccount) == 1
