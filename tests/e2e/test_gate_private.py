"""Channels are managed from the private chat (nobody types commands in a channel), end to end:
the real bot over HTTP against the stand-in, admins and others played by simulated people."""

from __future__ import annotations

from bot.sandbox.botapi.state import ChatMessage
from bot.sandbox.botapi.users import SimUser
from tests.e2e.conftest import World
from tests.e2e.test_gate import gate_store, known


async def reply(user: SimUser, text: str, expect: str) -> ChatMessage:
    """The user's text, and the bot's answer to it, told apart by what it says (a message
    about a chat the bot was just added to may come in between)."""
    sent = await user.send_text(text)
    return await user.wait_for(
        lambda m: m.from_bot and m.message_id > sent.message_id and expect in (m.text or ""),
        what=f"answer to {text!r} saying {expect!r}",
    )


async def test_a_channel_owner_manages_the_gate_from_the_private_chat(running: World) -> None:
    w = running
    api = w.botapi
    olga = api.user(first_name="Olga")
    news = api.create_channel("Acme News", owner=olga, join_by_request=True)
    club = api.create_group("Book club", owner=olga)
    news.add_bot()
    club.add_bot()
    elsewhere = api.create_channel("Not Olga's", owner=api.user(first_name="Ed"))
    elsewhere.add_bot()
    for chat in (news, club, elsewhere):
        await known(w, chat.id)

    listed = await reply(olga, "/gate", "Chats you administer")
    text = listed.text or ""
    assert f"Acme News (channel, {news.id}): gate off" in text
    assert f"Book club (supergroup, {club.id}): gate off" in text
    assert "Not Olga's" not in text
    assert olga.keyboard is not None
    buttons = {b["text"]: b for row in olga.keyboard for b in row}
    assert buttons["Add a channel"]["request_chat"]["chat_is_channel"] is True
    assert buttons["Add a group"]["request_chat"]["chat_is_channel"] is False

    on = await reply(olga, f"/gate {news.id} on", "The gate is on.")
    assert (on.text or "").startswith("The gate is on.")
    record = await gate_store(w).get_chat(news.id)
    assert record is not None and record.enabled
    policy = await reply(olga, f"/gate {news.id} policy email-domain:acme.com", "Policy")
    assert "accepts addresses at acme.com" in (policy.text or "")
    status = await reply(olga, f"/gate {news.id}", "Gate:")
    assert "Gate: on" in (status.text or "") and "email-domain:acme.com" in (status.text or "")
    assert not news.bot_messages  # nothing was posted to the subscribers

    again = await reply(olga, "/gate", "Chats you")
    assert f"Acme News (channel, {news.id}): gate on" in (again.text or "")
    help_ = await reply(olga, "/help", "/start")
    assert "/gate" in (help_.text or "")


async def test_someone_who_is_not_an_admin_is_refused(running: World) -> None:
    w = running
    api = w.botapi
    olga = api.user(first_name="Olga")
    news = api.create_channel("Acme News", owner=olga, join_by_request=True)
    news.add_bot()
    await known(w, news.id)
    max_ = api.user(first_name="Max")
    await max_.ask_to_join(news)

    nothing = await reply(max_, "/gate", "administer")
    assert "You don't administer any chat" in (nothing.text or "")
    refused = await reply(max_, f"/gate {news.id} on", "admin")
    assert refused.text == "Only this chat's admins can change the gate."
    record = await gate_store(w).get_chat(news.id)
    assert record is not None and not record.enabled
    log = await gate_store(w).read_log(news.id)
    assert not [e for e in log if e.action == "settings"]

    unknown = await reply(max_, "/gate -100123 on", "admin")
    assert unknown.text == "Only this chat's admins can change the gate."
    assert await gate_store(w).get_chat(-100123) is None


async def test_sharing_a_channel_through_the_button_registers_it(running: World) -> None:
    w = running
    api = w.botapi
    olga = api.user(first_name="Olga")
    news = api.create_channel("Acme News", owner=olga, join_by_request=True)

    await reply(olga, "/gate", "administer")
    await olga.share_chat("Add a channel", news)
    added = await olga.wait_for(lambda m: m.from_bot and "Added Acme News" in (m.text or ""))
    assert f"/gate {news.id} on" in (added.text or "")
    assert "Gate: off" in (added.text or "")
    assert "I still need" not in (added.text or "")
    # Made an admin through the picker, the bot said so privately, naming the command.
    await olga.wait_for(lambda m: m.from_bot and "I'm an admin of Acme News" in (m.text or ""))
    assert news.status(api.world.default_bot()) == "administrator"
    record = await gate_store(w).get_chat(news.id)
    assert record is not None and record.kind == "channel"
    assert {"can_invite_users", "can_restrict_members"} <= set(record.bot_rights or ())

    await olga.send_text(f"/gate {news.id} on")
    await olga.wait_for(lambda m: m.from_bot and (m.text or "").startswith("The gate is on."))
    joiner = api.user(first_name="Jo")
    await joiner.ask_to_join(news)
    await joiner.wait_for(lambda m: m.from_bot and "Acme News" in (m.text or ""))
