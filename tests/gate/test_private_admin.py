"""Admins in the private chat, where channels are managed: the list of their chats, a chat
picked with the "add a chat" button, and what the bot says about a channel's rights. SQLite and
PostgreSQL."""

from __future__ import annotations

from bot.gate.actions import Say
from tests.gate.conftest import ADMIN, CHANNEL, GROUP, OTHER_GROUP, World

CHANNEL_RIGHTS = ("can_invite_users", "can_restrict_members")


async def test_the_list_holds_the_chats_the_person_administers_where_the_bot_is_admin(
    world: World,
) -> None:
    await world.chat(GROUP, title="Acme Club", enabled=True)
    await world.chat(CHANNEL, kind="channel", title="News", enabled=False, rights=CHANNEL_RIGHTS)
    await world.chat(OTHER_GROUP, title="Left behind", rights=())  # the bot is no admin there
    asked: list[int] = []

    async def administers(chat_id: int) -> bool:
        asked.append(chat_id)
        return chat_id != GROUP

    text = await world.gate.admin_overview(administers)
    assert f"• News (channel, {CHANNEL}): gate off" in text
    assert "Acme Club" not in text and "Left behind" not in text
    assert OTHER_GROUP not in asked  # no call to Telegram for a chat the bot can't manage

    async def nobody(chat_id: int) -> bool:
        return False

    assert "You don't administer any chat" in await world.gate.admin_overview(nobody)


async def test_a_picked_chat_is_registered_with_its_status(world: World) -> None:
    (say,) = await world.gate.on_chat_shared(
        CHANNEL, "News", "channel", CHANNEL_RIGHTS, actor_is_admin=True, reply_to=ADMIN
    )
    assert isinstance(say, Say) and say.chat_id == ADMIN
    assert say.text.startswith(f"Added News ({CHANNEL}).")
    assert "Gate: off" in say.text and "I still need" not in say.text
    record = await world.store.get_chat(CHANNEL)
    assert record is not None and record.kind == "channel"
    assert record.bot_rights == CHANNEL_RIGHTS

    (missing,) = await world.gate.on_chat_shared(
        GROUP, "Acme Club", "supergroup", ["can_invite_users"], actor_is_admin=True, reply_to=ADMIN
    )
    assert isinstance(missing, Say) and "I still need these admin rights: Ban Users" in missing.text


async def test_a_picked_chat_is_refused_for_others_and_when_unseen(world: World) -> None:
    (refused,) = await world.gate.on_chat_shared(
        CHANNEL, "News", "channel", CHANNEL_RIGHTS, actor_is_admin=False, reply_to=ADMIN
    )
    assert isinstance(refused, Say) and refused.text.startswith("Only this chat's admins")
    (unseen,) = await world.gate.on_chat_shared(
        CHANNEL, None, None, None, actor_is_admin=True, reply_to=ADMIN
    )
    assert isinstance(unseen, Say) and unseen.text.startswith("I can't see that chat.")
    assert await world.store.get_chat(CHANNEL) is None


async def test_about_a_channel_the_bot_names_the_command_for_the_private_chat(
    world: World,
) -> None:
    (ok,) = await world.gate.on_bot_status(
        CHANNEL, "News", "channel", CHANNEL_RIGHTS, actor_id=ADMIN
    )
    assert isinstance(ok, Say) and f"/gate {CHANNEL} on" in ok.text
    (missing,) = await world.gate.on_bot_status(CHANNEL, "News", "channel", [], actor_id=ADMIN)
    assert isinstance(missing, Say) and f"/gate {CHANNEL} on" in missing.text
    assert "Ban Users (can_restrict_members)" in missing.text
