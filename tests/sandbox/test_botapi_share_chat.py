"""A person picking a chat with a bot's request_chat button, in the Bot API stand-in: the picker
offers only chats that fit the button, the bot is made an admin with the rights it asked for,
and the bot gets chat_shared — read by the real aiogram `Bot` over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import ChatMemberAdministrator, Update

from bot.sandbox.botapi import BotApiServer, Refused, SimUser
from bot.telegram.gate import add_chat_keyboard

KINDS = ["message", "my_chat_member"]


@pytest.fixture
async def api() -> AsyncIterator[BotApiServer]:
    server = BotApiServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def bot(api: BotApiServer) -> AsyncIterator[Bot]:
    real = Bot(
        api.create_bot(username="gate_bot", first_name="Gate"),
        session=AiohttpSession(api=TelegramAPIServer.from_base(api.url)),
    )
    yield real
    await real.session.close()


async def updates(bot: Bot) -> list[Update]:
    got = await bot.get_updates(timeout=0, allowed_updates=KINDS)
    if got:
        await bot.get_updates(offset=got[-1].update_id + 1, timeout=0)
    return got


async def offer_buttons(bot: Bot, user: SimUser) -> None:
    await user.send_text("/gate")
    await bot.send_message(user.id, "Pick a chat", reply_markup=add_chat_keyboard())
    await updates(bot)


async def test_picking_a_channel_makes_the_bot_its_admin_and_shares_it(
    api: BotApiServer, bot: Bot
) -> None:
    olga = api.user("Olga")
    news = api.create_channel("Acme News", owner=olga)
    await offer_buttons(bot, olga)

    with pytest.raises(ValueError, match="does not offer"):
        await olga.share_chat("Add a group", news)  # the group picker lists no channels
    await olga.share_chat("Add a channel", news)

    got = await updates(bot)
    (promoted,) = [u.my_chat_member for u in got if u.my_chat_member]
    me = promoted.new_chat_member
    assert isinstance(me, ChatMemberAdministrator)
    assert (me.can_invite_users, me.can_restrict_members) == (True, True)
    assert promoted.from_user.id == olga.id
    (message,) = [u.message for u in got if u.message]
    assert message.chat_shared is not None
    assert (message.chat_shared.request_id, message.chat_shared.chat_id) == (1, news.id)
    assert message.chat_shared.title == "Acme News"
    assert olga.keyboard is None  # a one-time keyboard hides once used
    assert news.status(api.world.default_bot()) == "administrator"


async def test_the_picker_offers_only_chats_one_administers_with_the_rights(
    api: BotApiServer, bot: Bot
) -> None:
    olga, max_ = api.user("Olga"), api.user("Max")
    club = api.create_group("Book club", owner=olga)
    club.add_member(max_)
    await offer_buttons(bot, max_)
    with pytest.raises(ValueError, match="does not offer"):
        await max_.share_chat("Add a group", club)

    club.promote(max_, rights={"can_invite_users", "can_restrict_members", "can_delete_messages"})
    with pytest.raises(Refused, match="CHAT_ADMIN_REQUIRED"):
        await max_.share_chat("Add a group", club)  # may not make the bot an admin
    club.add_bot(rights={"can_invite_users", "can_restrict_members", "can_delete_messages"})
    await updates(bot)
    await max_.share_chat("Add a group", club)  # the bot has the rights already
    got = await updates(bot)
    assert [u.event_type for u in got] == ["message"]
    assert got[0].message is not None and got[0].message.chat_shared is not None
    assert got[0].message.chat_shared.chat_id == club.id
