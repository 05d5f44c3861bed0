"""Signing up and in through the chat, end to end, in polling and webhook mode."""

from __future__ import annotations

import json

import httpx
import phonenumbers
import pytest
from sqlalchemy import func, select

from storage.models import AuditEvent, Conversation, Link, LocalAccount, TelegramUser
from tests.e2e.conftest import World, remember


def mobile(region: str = "GB") -> str:
    number = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


async def rows(world: World, model: type, **where: object) -> int:
    assert world.app is not None
    async with world.app.db.sessions() as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int(await session.scalar(query) or 0)


async def test_sign_up_by_email(running: World) -> None:
    w = running
    email = "jane.doe@example.com"
    remember(w, email)
    jane = w.botapi.user(first_name="Jane", username="jane")
    await jane.start()
    welcome = await jane.next_message()
    assert "sign-in bot for Acme" in (welcome.text or "")
    assert jane.keyboard and jane.keyboard[0][0].get("request_contact")

    await jane.send_text(email)
    sent = await jane.next_message()
    assert "j•••@example.com" in (sent.text or "")
    assert "Never send me a code you got from Telegram" in (sent.text or "")
    assert [b["text"] for row in sent.buttons for b in row] == [
        "Resend code (in 30 s)",
        "Use another email or number",
        "Cancel",
    ]
    code = await w.email_code(email)

    typed = await jane.send_text(f"{code[:3]} {code[3:]}")
    done = await jane.next_message()
    assert done.text is not None
    assert done.text.startswith("✅ You're signed in to Acme as jane.doe@example.com")
    assert "New account created" in done.text
    await jane.wait_for(lambda m: m.message_id == typed.message_id and m.deleted)
    assert await rows(w, Link, telegram_user_id=jane.id) == 1
    assert await rows(w, AuditEvent, event="signed_up", telegram_user_id=jane.id) == 1


async def test_sign_up_by_phone_then_sign_in_again_is_the_same_user(running: World) -> None:
    w = running
    number = mobile("GB")
    remember(w, number)
    bob = w.botapi.user(first_name="Bob")
    await bob.start()
    await bob.next_message()
    await bob.send_text(number)
    sent = await bob.next_message()
    assert "by SMS" in (sent.text or "")
    assert number[-4:] in (sent.text or "") and number not in (sent.text or "")
    await bob.send_text(await w.sms_code(number))
    assert "New account created" in ((await bob.next_message()).text or "")
    assert w.app is not None
    first = await w.app.store.get_link(bob.id)
    assert first is not None

    await bob.send_text("/logout")
    assert "signed out" in ((await bob.next_message()).text or "")
    assert await rows(w, Link, telegram_user_id=bob.id) == 0

    w.clock.advance(minutes=2)
    await bob.send_text(number)
    await bob.next_message()
    await bob.send_text(await w.sms_code(number))
    welcome_back = await bob.next_message()
    assert (welcome_back.text or "").startswith("✅ Welcome back")
    again = await w.app.store.get_link(bob.id)
    assert again is not None and again.auth_user_id == first.auth_user_id
    assert await rows(w, LocalAccount) == 1


async def test_own_contact_accepted_someone_elses_refused(running: World) -> None:
    w = running
    mine, theirs = mobile("US"), mobile("DE")
    remember(w, mine, theirs)
    ann = w.botapi.user(first_name="Ann", phone_number=mine)
    await ann.start()
    await ann.next_message()

    await ann.send_contact(phone_number=theirs, user_id=ann.id + 1)
    refused = await ann.next_message()
    assert (refused.text or "").startswith("That contact isn't you")
    await ann.send_contact(phone_number=theirs, user_id=None)
    assert (await ann.next_message()).text == refused.text
    assert w.twilio.messages == []

    await ann.tap("📱 Share my phone number")
    sent = await ann.next_message()
    assert "by SMS" in (sent.text or "")
    await ann.send_text(await w.sms_code(mine))
    assert "New account created" in ((await ann.next_message()).text or "")
    assert [m["to"] for m in w.twilio.messages] == [mine]


async def test_wrong_code_expired_code_and_a_new_one(running: World) -> None:
    w = running
    email = "wrong.code@example.com"
    remember(w, email)
    cy = w.botapi.user(first_name="Cy")
    await cy.send_text(email)  # no /start needed
    await cy.next_message()
    code = await w.email_code(email)
    wrong = "000000" if code != "000000" else "111111"

    await cy.send_text(wrong)
    assert (await cy.next_message()).text == "That code isn't right. 4 tries left."
    await cy.send_text("12-34-5")
    assert "6 digits" in ((await cy.next_message()).text or "")

    w.clock.advance(minutes=11)
    await cy.send_text(code)
    expired = await cy.next_message()
    assert expired.text == "That code has expired."
    await cy.press("Send a new code")
    await cy.next_message()
    fresh = await w.email_code(email)
    await cy.send_text(fresh)
    assert "signed in to Acme" in ((await cy.next_message()).text or "")


async def test_resend_before_and_after_cooldown(running: World) -> None:
    w = running
    email = "resend@example.com"
    remember(w, email)
    di = w.botapi.user(first_name="Di")
    await di.send_text(email)
    await di.next_message()
    first = await w.email_code(email)

    answer = await di.press("Resend code (in 30 s)")
    assert answer is not None and answer.startswith("You can ask for a new code in")
    assert len(w.smtp.messages) == 1

    w.clock.advance(seconds=31)
    assert await di.press("Resend code (in 30 s)") is None
    resent = await di.next_message()
    assert "new code" in (resent.text or "")
    second = await w.email_code(email)
    if second != first:
        await di.send_text(first)
        assert (await di.next_message()).text == "That code isn't right. 4 tries left."
    await di.send_text(second)
    assert "signed in to Acme" in ((await di.next_message()).text or "")


async def test_change_identifier_and_cancel(running: World) -> None:
    w = running
    first, second = "first@example.com", "second@example.com"
    remember(w, first, second)
    ed = w.botapi.user(first_name="Ed")
    await ed.send_text(first)
    await ed.next_message()
    await ed.press("Use another email or number")
    ask = await ed.next_message()
    assert "email address or phone number" in (ask.text or "")
    await ed.send_text(second)
    assert "s•••@example.com" in ((await ed.next_message()).text or "")

    await ed.press("Cancel")
    assert (await ed.next_message()).text == "Cancelled. Send /start whenever you want to sign in."
    await ed.send_sticker()
    nudge = await ed.next_message()
    assert "only read text" in (nudge.text or "")
    assert await rows(w, Link, telegram_user_id=ed.id) == 0


async def test_me_logout_and_forget(running: World) -> None:
    w = running
    email = "fay@example.com"
    remember(w, email)
    fay = w.botapi.user(first_name="Fay")
    await fay.send_text("/me")
    assert "not signed in" in ((await fay.next_message()).text or "")
    await fay.send_text(email)
    await fay.next_message()
    await fay.send_text(await w.email_code(email))
    await fay.next_message()

    await fay.send_text("/me")
    me = await fay.next_message()
    assert (me.text or "").startswith("You're signed in to Acme as fay@example.com since ")

    await fay.send_text("/forget")
    confirm = await fay.next_message()
    assert "erases everything I keep about you (your email" in (confirm.text or "")
    await fay.press("Keep it")
    assert (await fay.next_message()).text == "Kept. Nothing was erased."
    assert await rows(w, Link, telegram_user_id=fay.id) == 1

    await fay.send_text("/forget")
    await fay.next_message()
    await fay.press("Erase my data")
    assert (await fay.next_message()).text == "Done. I've erased your data and signed you out."
    for model, key in (
        (Link, "telegram_user_id"),
        (Conversation, "telegram_user_id"),
        (TelegramUser, "id"),
        (AuditEvent, "telegram_user_id"),
    ):
        assert await rows(w, model, **{key: fay.id}) == 0, model.__name__
    assert await rows(w, LocalAccount) == 0
    assert await rows(w, AuditEvent, event="erased") == 1


async def test_restart_between_code_sent_and_code_typed(running: World) -> None:
    w = running
    email = "restart@example.com"
    remember(w, email)
    gus = w.botapi.user(first_name="Gus")
    await gus.send_text(email)
    await gus.next_message()
    code = await w.email_code(email)

    await w.stop_bot()
    await gus.send_text(code)  # arrives while the bot is down
    await w.start_bot()
    assert "New account created" in ((await gus.next_message(timeout=10)).text or "")


async def test_two_messages_at_the_same_instant(running: World) -> None:
    w = running
    a, b = "twin.a@example.com", "twin.b@example.com"
    remember(w, a, b)
    hal = w.botapi.user(first_name="Hal")
    await hal.send_text(a)
    await hal.send_text(b)
    first, second = await hal.next_message(), await hal.next_message()
    assert "t•••@example.com" in (first.text or "") and "t•••@example.com" in (second.text or "")
    code_a, code_b = await w.email_code(a), await w.email_code(b)
    if code_a != code_b:  # the newer address replaced the older one's code
        await hal.send_text(code_a)
        assert "isn't right" in ((await hal.next_message()).text or "")
    await hal.send_text(code_b)
    done = await hal.next_message()
    assert "twin.b@example.com" in (done.text or "")
    assert await rows(w, Link, telegram_user_id=hal.id) == 1


async def test_duplicate_update_is_answered_once(running: World) -> None:
    w = running
    ivy = w.botapi.user(first_name="Ivy")
    await ivy.send_text("/help")
    await ivy.next_message()
    await ivy.resend_last_update()
    await ivy.send_text("/me")
    assert "not signed in" in ((await ivy.next_message()).text or "")
    assert len([m for m in ivy.history if m.from_bot]) == 2


async def test_commands_are_registered(running: World) -> None:
    await running.botapi.wait_for_call("setMyCommands")
    (call,) = running.botapi.calls_to("setMyCommands")
    assert call.ok
    commands = call.params["commands"]
    names = [
        c["command"] for c in (json.loads(commands) if isinstance(commands, str) else commands)
    ]
    assert names == ["start", "me", "logout", "forget", "help", "cancel"]


@pytest.mark.parametrize("bot_mode", ["webhook"])
async def test_webhook_checks_the_secret_header_and_answers_healthz(running: World) -> None:
    assert running.app is not None
    live = running.app.settings
    assert live.webhook_url and live.webhook_listen
    base = f"http://{live.webhook_listen}"
    update = {
        "update_id": 999,
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": 1, "type": "private"},
            "text": "/start",
        },
    }
    async with httpx.AsyncClient() as client:
        health = await client.get(f"{base}/healthz")
        assert health.status_code == 200 and health.json() == {"ok": True}
        forged = await client.post(
            live.webhook_url,
            json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": "not-the-secret"},
        )
        assert forged.status_code in (401, 403)
        missing = await client.post(live.webhook_url, json=update)
        assert missing.status_code in (401, 403)
    assert not running.botapi.calls_to("sendMessage")


async def test_telegram_429_is_obeyed_and_the_reply_still_arrives(running: World) -> None:
    w = running
    kim = w.botapi.user(first_name="Kim")
    w.botapi.fail_next("sendMessage", 429, retry_after=1)
    await kim.start()
    welcome = await kim.next_message(timeout=10)
    assert "sign-in bot for Acme" in (welcome.text or "")
    attempts = w.botapi.calls_to("sendMessage")
    assert [c.ok for c in attempts] == [False, True]


async def test_mail_server_down_gets_a_clear_answer_and_loses_nothing(running: World) -> None:
    w = running
    email = "down@example.com"
    remember(w, email)
    lee = w.botapi.user(first_name="Lee")
    await w.smtp.stop()
    await lee.send_text(email)
    down = await lee.next_message()
    assert (down.text or "").startswith("I can't reach the sign-in service right now")
    await w.smtp.start()
    await lee.send_text(email)
    assert "d•••@example.com" in ((await lee.next_message()).text or "")
    await lee.send_text(await w.email_code(email))
    assert "New account created" in ((await lee.next_message()).text or "")
