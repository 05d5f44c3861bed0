"""Groups and channels in the Bot API stand-in, driven by the real aiogram `Bot` over HTTP:
members and rights, join requests, guard-bot queries, invite links, group messages, and the
updates that follow each change, parsed by aiogram's own models."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.types import (
    ChatJoinRequest,
    ChatMemberAdministrator,
    ChatMemberBanned,
    ChatMemberLeft,
    ChatMemberMember,
    ChatMemberOwner,
    ChatMemberRestricted,
    ChatMemberUpdated,
    ChatPermissions,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from pydantic import BaseModel

from bot.sandbox.botapi import BotApiServer, Refused, SimChat, SimUser
from bot.sandbox.botapi.objects import FIELDS, REQ

START = 1_800_000_000.0
MUTED = ChatPermissions(can_send_messages=False)
FREE = ChatPermissions(
    can_send_messages=True,
    can_send_audios=True,
    can_send_documents=True,
    can_send_photos=True,
    can_send_videos=True,
    can_send_video_notes=True,
    can_send_voice_notes=True,
    can_send_polls=True,
    can_send_other_messages=True,
    can_add_web_page_previews=True,
    can_change_info=True,
    can_invite_users=True,
    can_pin_messages=True,
    can_manage_topics=True,
)
GATE_RIGHTS = {"can_invite_users", "can_restrict_members", "can_delete_messages"}
EVERY_KIND = ["message", "chat_member", "my_chat_member", "chat_join_request", "channel_post"]


class Clock:
    """The stand-in's clock, moved by the test: windows of 10 s and 5 min without waiting."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def api(clock: Clock) -> AsyncIterator[BotApiServer]:
    server = BotApiServer(clock=clock)
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


@pytest.fixture
def olga(api: BotApiServer) -> SimUser:
    return api.user("Olga", username="olga")


@pytest.fixture
async def club(api: BotApiServer, bot: Bot, olga: SimUser) -> SimChat:
    """A supergroup where the bot is an administrator with the rights a gate needs, and has
    asked for every kind of update (the server filters updates as they happen)."""
    await updates(bot)
    club = api.create_group("Book club", owner=olga)
    club.add_bot(rights=GATE_RIGHTS)
    await updates(bot)
    return club


async def updates(bot: Bot, kinds: list[str] | None = None) -> list[Update]:
    """Everything queued for the bot, confirmed, as aiogram parses it."""
    got = await bot.get_updates(timeout=0, allowed_updates=kinds or EVERY_KIND)
    if got:
        await bot.get_updates(offset=got[-1].update_id + 1, timeout=0)
    return got


def of_kind(got: list[Update], kind: str) -> list[Any]:
    return [getattr(u, kind) for u in got if getattr(u, kind) is not None]


# --- the objects ------------------------------------------------------------------------------


AIOGRAM_TYPES = [
    "User", "Chat", "ChatFullInfo", "AcceptedGiftTypes", "Message", "ChatPermissions",
    "ChatMemberOwner", "ChatMemberAdministrator", "ChatMemberMember", "ChatMemberRestricted",
    "ChatMemberLeft", "ChatMemberBanned", "ChatInviteLink", "ChatJoinRequest",
    "ChatMemberUpdated",
]  # fmt: skip


def required_by_aiogram(name: str) -> Iterator[str]:
    import aiogram.types

    model: type[BaseModel] = getattr(aiogram.types, name)
    for field_name, info in model.model_fields.items():
        if info.is_required():
            yield info.alias or field_name


@pytest.mark.parametrize("name", AIOGRAM_TYPES)
def test_every_field_aiogram_requires_is_always_sent(name: str) -> None:
    table = FIELDS[name]
    always = {field for field, required in table.items() if required == REQ}
    assert set(required_by_aiogram(name)) <= always


# --- the bot's own standing -------------------------------------------------------------------


async def test_made_an_administrator_the_bot_is_told_and_reads_its_rights(
    api: BotApiServer, bot: Bot, olga: SimUser
) -> None:
    club = api.create_group("Book club", owner=olga, username="bookclub")
    other = api.create_bot(username="other_bot", first_name="Other")
    club.add_bot(other)
    club.add_bot(rights={"can_invite_users"})

    (added,) = of_kind(await updates(bot), "my_chat_member")
    assert isinstance(added, ChatMemberUpdated)
    assert (added.chat.id, added.chat.type, added.from_user.id) == (club.id, "supergroup", olga.id)
    assert isinstance(added.old_chat_member, ChatMemberLeft)
    me = added.new_chat_member
    assert isinstance(me, ChatMemberAdministrator)
    assert (me.can_invite_users, me.can_restrict_members, me.can_manage_chat) == (True, False, True)
    assert me.can_send_welcome_messages is False and me.can_be_edited is False

    member = await bot.get_chat_member("@bookclub", bot.id)
    assert isinstance(member, ChatMemberAdministrator) and member.can_invite_users
    admins = await bot.get_chat_administrators(club.id)
    assert [(type(a), a.user.id) for a in admins] == [
        (ChatMemberOwner, olga.id),
        (ChatMemberAdministrator, bot.id),
    ]
    assert len(await bot.get_chat_administrators(club.id, return_bots=True)) == 3
    assert await bot.get_chat_member_count(club.id) == 3
    info = await bot.get_chat(club.id)
    assert (info.title, info.username, info.invite_link) == (
        "Book club",
        "bookclub",
        club.primary_link,
    )
    assert info.permissions is not None and info.permissions.can_send_messages is True

    club.set_bot_rights(rights={"can_restrict_members"})
    (changed,) = of_kind(await updates(bot), "my_chat_member")
    assert isinstance(changed.new_chat_member, ChatMemberAdministrator)
    assert changed.new_chat_member.can_invite_users is False
    assert (await bot.get_chat(club.id)).invite_link is None  # only for those who may invite

    club.remove_bot(ban=True)
    (removed,) = of_kind(await updates(bot), "my_chat_member")
    assert isinstance(removed.new_chat_member, ChatMemberBanned)
    with pytest.raises(TelegramForbiddenError, match="bot was kicked from the supergroup chat"):
        await bot.get_chat_administrators(club.id)
    club.remove_bot()
    with pytest.raises(TelegramForbiddenError, match="bot is not a member of the supergroup chat"):
        await bot.send_message(club.id, "hello?")

    elsewhere = api.create_group("Elsewhere", owner=olga)
    with pytest.raises(TelegramBadRequest, match="Bad Request: chat not found"):
        await bot.get_chat_member_count(elsewhere.id)


async def test_the_bot_in_a_channel_posts_only_with_the_right(
    api: BotApiServer, bot: Bot, olga: SimUser
) -> None:
    news = api.create_channel("News", owner=olga)
    news.add_bot(rights={"can_invite_users"})
    with pytest.raises(TelegramBadRequest, match="need administrator rights in the channel chat"):
        await bot.send_message(news.id, "hello")
    news.set_bot_rights(rights={"can_invite_users", "can_post_messages"})
    posted = await bot.send_message(news.id, "hello")
    assert posted.sender_chat is not None and posted.sender_chat.id == news.id
    assert posted.from_user is None
    assert (await news.next_message()).text == "hello"
    with pytest.raises(ValueError, match="only as administrators"):
        news.set_bot_rights(rights=())

    await olga.say(news, "From the owner")
    (post,) = of_kind(await updates(bot), "channel_post")
    assert (post.text, post.sender_chat.id, post.from_user) == ("From the owner", news.id, None)

    assert await bot.leave_chat(news.id) is True
    (left,) = of_kind(await updates(bot), "my_chat_member")
    assert (left.from_user.id, left.new_chat_member.status) == (bot.id, "left")
    with pytest.raises(TelegramForbiddenError, match="bot is not a member of the channel chat"):
        await bot.send_message(news.id, "still here?")


# --- join requests ----------------------------------------------------------------------------


async def test_join_request_opens_the_private_chat_until_it_is_settled(
    api: BotApiServer, bot: Bot, clock: Clock, olga: SimUser
) -> None:
    news = api.create_channel("News", owner=olga)
    news.add_bot(rights={"can_invite_users", "can_post_messages"})
    link = await bot.create_chat_invite_link(news.id, name="gate", creates_join_request=True)
    alice, bob, carol = api.user("Alice"), api.user("Bob"), api.user("Carol")
    news.add_member(carol)
    await updates(bot)

    request = await alice.ask_to_join(link.invite_link, bio="reader")
    (asked,) = of_kind(await updates(bot), "chat_join_request")
    assert isinstance(asked, ChatJoinRequest)
    assert (asked.from_user.id, asked.user_chat_id, asked.bio) == (alice.id, alice.id, "reader")
    assert asked.invite_link is not None and asked.invite_link.invite_link == link.invite_link
    assert asked.invite_link.name == "gate" and asked.query_id is None
    assert await alice.ask_to_join(link.invite_link) is request  # a second tap adds nothing

    await bot.send_message(asked.user_chat_id, "Verify first, please.")
    assert (await alice.next_message()).text == "Verify first, please."
    with pytest.raises(TelegramForbiddenError, match="bot can't initiate conversation with a user"):
        await bot.send_message(carol.id, "You are in the channel, but never wrote to me")
    with pytest.raises(TelegramBadRequest, match="Bad Request: chat not found"):
        await bot.send_message(bob.id, "Never seen you")

    edited = await bot.edit_chat_invite_link(
        news.id, link.invite_link, name="gate", creates_join_request=True
    )
    assert edited.pending_join_request_count == 1

    assert await bot.approve_chat_join_request(news.id, alice.id) is True
    (joined,) = of_kind(await updates(bot), "chat_member")
    assert isinstance(joined.new_chat_member, ChatMemberMember)
    assert joined.invite_link is not None and joined.invite_link.invite_link == link.invite_link
    assert joined.via_join_request is None  # the request came through a link
    assert (news.status(alice), request.state, request.processed_by) == (
        "member",
        "approved",
        bot.id,
    )
    with pytest.raises(TelegramForbiddenError, match="bot can't initiate conversation"):
        await bot.send_message(alice.id, "settled: the window is shut")

    with pytest.raises(TelegramBadRequest, match="Bad Request: USER_ALREADY_PARTICIPANT"):
        await bot.approve_chat_join_request(news.id, alice.id)
    with pytest.raises(TelegramBadRequest, match="Bad Request: HIDE_REQUESTER_MISSING"):
        await bot.decline_chat_join_request(news.id, alice.id)
    with pytest.raises(TelegramBadRequest, match="Bad Request: USER_ID_INVALID"):
        await bot.decline_chat_join_request(news.id, bob.id)

    await bob.ask_to_join(link.invite_link)
    clock.advance(299)
    await bot.send_message(bob.id, "Still within five minutes")
    clock.advance(1)
    with pytest.raises(TelegramForbiddenError, match="bot can't initiate conversation"):
        await bot.send_message(bob.id, "Five minutes are up")
    assert await bot.decline_chat_join_request(news.id, bob.id) is True
    assert news.status(bob) == "left" and news.join_request(bob) is not None
    with pytest.raises(TelegramBadRequest, match="HIDE_REQUESTER_MISSING"):
        await bot.approve_chat_join_request(news.id, bob.id)


async def test_a_direct_request_is_approved_with_via_join_request(
    api: BotApiServer, bot: Bot, olga: SimUser
) -> None:
    club = api.create_group("Book club", owner=olga, username="bookclub", join_by_request=True)
    club.add_bot(rights=GATE_RIGHTS)
    alice = api.user("Alice")
    await updates(bot)
    with pytest.raises(ValueError, match="ask_to_join"):
        await alice.join(club)
    await alice.ask_to_join(club)
    (asked,) = of_kind(await updates(bot), "chat_join_request")
    assert asked.invite_link is None
    await bot.approve_chat_join_request("@bookclub", alice.id)
    got = await updates(bot)
    (joined,) = of_kind(got, "chat_member")
    assert (joined.via_join_request, joined.invite_link, joined.from_user.id) == (
        True,
        None,
        bot.id,
    )
    (service,) = of_kind(got, "message")
    assert service.new_chat_members is not None and service.new_chat_members[0].id == alice.id
    assert service.from_user is not None and service.from_user.id == alice.id


async def test_join_requests_need_the_invite_right(
    api: BotApiServer, bot: Bot, olga: SimUser
) -> None:
    news = api.create_channel("News", owner=olga, join_by_request=True)
    news.add_bot(rights={"can_post_messages"})
    alice = api.user("Alice")
    await alice.ask_to_join(news)
    assert of_kind(await updates(bot), "chat_join_request") == []
    with pytest.raises(TelegramBadRequest, match="not enough rights to manage chat join requests"):
        await bot.approve_chat_join_request(news.id, alice.id)
    with pytest.raises(TelegramBadRequest, match="not enough rights to manage chat invite link"):
        await bot.create_chat_invite_link(news.id, creates_join_request=True)
    with pytest.raises(TelegramBadRequest, match="Bad Request: chat not found"):
        await bot.send_message(alice.id, "no request reached me, so I never met Alice")


async def test_the_guard_bot_answers_within_ten_seconds(
    api: BotApiServer, bot: Bot, clock: Clock, olga: SimUser, club: SimChat
) -> None:
    club.set_join_by_request()
    club.make_guard()
    assert (await bot.get_me()).supports_join_request_queries is True
    assert (await bot.get_chat(club.id)).guard_bot is not None
    alice, bob, carol = api.user("Alice"), api.user("Bob"), api.user("Carol")
    await updates(bot)

    request = await alice.ask_to_join(club)
    (asked,) = of_kind(await updates(bot), "chat_join_request")
    assert asked.query_id is not None and request.query is not None
    clock.advance(2.5)
    assert await bot.answer_chat_join_request_query(asked.query_id, "approve") is True
    assert club.status(alice) == "member"
    assert (request.query.answer, request.query.delay) == ("approve", 2.5)
    with pytest.raises(TelegramBadRequest, match="query is too old and response timeout expired"):
        await bot.answer_chat_join_request_query(asked.query_id, "decline")

    late = await bob.ask_to_join(club)
    (asked,) = of_kind(await updates(bot), "chat_join_request")
    clock.advance(10.5)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_chat_join_request_query(asked.query_id, "approve")
    assert (late.state, club.status(bob)) == ("pending", "left")
    await bot.decline_chat_join_request(club.id, bob.id)  # still there for administrators

    queued = await carol.ask_to_join(club)
    (asked,) = of_kind(await updates(bot), "chat_join_request")
    with pytest.raises(TelegramBadRequest, match="invalid result specified"):
        await bot.answer_chat_join_request_query(asked.query_id, "maybe")
    await bot.answer_chat_join_request_query(asked.query_id, "queue")
    assert queued.state == "pending" and queued.query is not None
    assert queued.query.answer == "queue"
    await bot.send_message(carol.id, "Verify to get in")
    await bot.approve_chat_join_request(club.id, carol.id)
    assert club.status(carol) == "member"

    news = api.create_channel("News", owner=olga)
    news.add_bot(rights={"can_invite_users", "can_post_messages"})
    with pytest.raises(ValueError, match="supergroups only"):
        news.make_guard()


async def test_a_polling_bot_gets_join_requests_through_its_dispatcher(
    api: BotApiServer, bot: Bot, olga: SimUser
) -> None:
    """aiogram asks for exactly the updates it has handlers for, chat_member included."""
    router = Router()
    decided: list[str] = []

    @router.chat_join_request()
    async def on_request(request: ChatJoinRequest) -> None:
        if request.from_user.first_name == "Alice":
            await request.approve()
        else:
            await request.answer_pm("Please verify first.")

    @router.chat_member()
    async def on_member(update: ChatMemberUpdated) -> None:
        decided.append(f"{update.new_chat_member.user.first_name} {update.new_chat_member.status}")

    @router.my_chat_member(F.new_chat_member.status == "administrator")
    async def on_promoted(update: ChatMemberUpdated) -> None:
        await bot.send_message(update.chat.id, "Thanks, I can gate this chat now.")

    club = api.create_group("Book club", owner=olga, join_by_request=True)
    alice, bob = api.user("Alice"), api.user("Bob")
    dp = Dispatcher()
    dp.include_router(router)
    task = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=1))
    try:
        await api.wait_for_call("getUpdates")
        club.add_bot(rights=GATE_RIGHTS)
        assert (await club.next_message()).text == "Thanks, I can gate this chat now."
        await alice.ask_to_join(club)
        await bob.ask_to_join(club)
        assert (await bob.next_message()).text == "Please verify first."
        await api.wait_until_delivered()
        await api.wait_for_call("approveChatJoinRequest")
    finally:
        await dp.stop_polling()
        await task
    assert club.status(alice) == "member" and club.status(bob) == "left"
    assert decided == ["Alice member"]
    allowed = api.calls_to("getUpdates")[-1].params["allowed_updates"]
    assert "chat_member" in allowed and "chat_join_request" in allowed


# --- members ----------------------------------------------------------------------------------


async def test_restrict_lift_ban_and_kick(
    api: BotApiServer, bot: Bot, clock: Clock, olga: SimUser, club: SimChat
) -> None:
    alice = api.user("Alice")
    await alice.join(club)
    got = await updates(bot)
    (joined,) = of_kind(got, "chat_member")
    assert joined.from_user.id == alice.id and joined.invite_link is not None
    assert joined.invite_link.invite_link.endswith("...")  # the owner's link, half hidden
    assert joined.invite_link.creator.id == olga.id and joined.invite_link.is_primary

    assert await bot.restrict_chat_member(club.id, alice.id, MUTED) is True
    (muted,) = of_kind(await updates(bot), "chat_member")
    assert isinstance(muted.old_chat_member, ChatMemberMember)
    restricted = muted.new_chat_member
    assert isinstance(restricted, ChatMemberRestricted)
    assert (restricted.is_member, restricted.can_send_messages) == (True, False)
    assert restricted.until_date is not None and restricted.until_date.timestamp() == 0
    assert not club.can_write(alice)
    with pytest.raises(Refused, match="CHAT_WRITE_FORBIDDEN"):
        await alice.say(club, "let me in")

    await bot.restrict_chat_member(club.id, alice.id, FREE)
    assert club.status(alice) == "member" and club.can_write(alice)
    await alice.say(club, "thanks")

    await bot.restrict_chat_member(club.id, alice.id, MUTED, until_date=int(START) + 3600)
    member = await bot.get_chat_member(club.id, alice.id)
    assert isinstance(member, ChatMemberRestricted)
    assert member.until_date is not None and member.until_date.timestamp() == START + 3600
    clock.advance(3600)
    assert club.status(alice) == "member"
    await bot.restrict_chat_member(club.id, alice.id, MUTED, until_date=int(clock()) + 10)
    assert club.member(alice)["until_date"] == 0  # under 30 s away: for ever

    # Leaving does not shake a restriction off.
    await alice.leave(club)
    assert club.member(alice)["is_member"] is False
    await alice.join(club)
    assert club.status(alice) == "restricted" and not club.can_write(alice)

    # A kick is a ban and an unban: not in the chat, not banned.
    await bot.ban_chat_member(club.id, alice.id)
    assert club.status(alice) == "kicked"
    with pytest.raises(Refused, match="USER_BANNED_IN_CHANNEL"):
        await alice.join(club)
    assert await bot.unban_chat_member(club.id, alice.id, only_if_banned=True) is True
    assert club.status(alice) == "left"
    await alice.join(club)
    assert club.can_write(alice)

    bob = api.user("Bob")
    await bob.join(club)
    assert await bot.unban_chat_member(club.id, bob.id, only_if_banned=True) is True
    assert club.status(bob) == "member"  # only_if_banned: nothing to do
    await bot.unban_chat_member(club.id, bob.id)
    assert club.status(bob) == "left"  # without it, even a member is removed
    got = await updates(bot)
    assert [
        (m.old_chat_member.status, m.new_chat_member.status)
        for m in of_kind(got, "chat_member")
        if m.new_chat_member.user.id == bob.id
    ] == [
        ("left", "member"),
        ("member", "left"),
    ]
    # The service messages of the bot's own removals are its own messages: it does not get them.
    left = [m.left_chat_member for m in of_kind(got, "message") if m.left_chat_member]
    assert [u.id for u in left] == [alice.id]
    removed = [
        m.payload["left_chat_member"]["id"]
        for m in club.messages
        if "left_chat_member" in m.payload
    ]
    assert removed == [alice.id, alice.id, bob.id]


async def test_member_calls_answer_the_official_errors(
    api: BotApiServer, bot: Bot, olga: SimUser, club: SimChat
) -> None:
    alice, admin = api.user("Alice"), api.user("Ann")
    await alice.join(club)
    club.promote(admin)
    with pytest.raises(TelegramBadRequest, match="Bad Request: can't remove chat owner"):
        await bot.ban_chat_member(club.id, olga.id)
    with pytest.raises(TelegramBadRequest, match="Bad Request: user is an administrator of the"):
        await bot.restrict_chat_member(club.id, admin.id, MUTED)
    with pytest.raises(TelegramBadRequest, match="Bad Request: user not found"):
        await bot.restrict_chat_member(club.id, 424242, MUTED)
    with pytest.raises(TelegramBadRequest, match="Bad Request: invalid user_id specified"):
        await bot.ban_chat_member(club.id, 0)

    basic = api.create_group("Basic", owner=olga, kind="group")
    basic.add_bot(rights=GATE_RIGHTS)
    await alice.join(basic)
    with pytest.raises(TelegramBadRequest, match="Bad Request: method is available only for sup"):
        await bot.restrict_chat_member(basic.id, alice.id, MUTED)
    with pytest.raises(TelegramBadRequest, match="available for supergroup and channel chats only"):
        await bot.unban_chat_member(basic.id, alice.id, only_if_banned=True)
    await bot.ban_chat_member(basic.id, alice.id)
    assert basic.status(alice) == "left"  # a basic group only removes

    club.set_bot_rights(rights={"can_invite_users"})
    with pytest.raises(TelegramBadRequest, match="not enough rights to restrict/unrestrict chat"):
        await bot.restrict_chat_member(club.id, alice.id, MUTED)
    with pytest.raises(TelegramBadRequest, match="not enough rights to restrict/unrestrict chat"):
        await bot.ban_chat_member(club.id, alice.id)
    # only_if_banned on someone not banned is answered before the rights are looked at
    assert await bot.unban_chat_member(club.id, alice.id, only_if_banned=True) is True
    with pytest.raises(TelegramBadRequest, match="not enough rights to change chat permissions"):
        await bot.set_chat_permissions(club.id, MUTED)


async def test_chat_permissions_bind_every_member(
    api: BotApiServer, bot: Bot, club: SimChat
) -> None:
    alice = api.user("Alice")
    await alice.join(club)
    assert await bot.set_chat_permissions(club.id, MUTED) is True
    assert not club.can_write(alice)
    info = await bot.get_chat(club.id)
    assert info.permissions is not None and info.permissions.can_send_messages is False
    # other messages imply text unless permissions are independent
    await bot.set_chat_permissions(club.id, ChatPermissions(can_send_other_messages=True))
    assert club.can_write(alice)
    await bot.set_chat_permissions(
        club.id,
        ChatPermissions(can_send_other_messages=True),
        use_independent_chat_permissions=True,
    )
    assert not club.can_write(alice)


async def test_chat_member_updates_only_when_asked_for_and_only_for_admins(
    api: BotApiServer, bot: Bot, olga: SimUser, club: SimChat
) -> None:
    alice, bob = api.user("Alice"), api.user("Bob")
    # A new allowed_updates applies to what happens after it, not to what is queued.
    await updates(bot, ["message", "my_chat_member"])
    await alice.join(club)
    assert of_kind(await updates(bot, ["chat_member"]), "chat_member") == []
    await bob.join(club)
    assert len(of_kind(await updates(bot, ["chat_member"]), "chat_member")) == 1
    await updates(bot)

    club.set_bot_rights(rights=())  # a plain member now
    (demoted,) = of_kind(await updates(bot), "my_chat_member")
    assert isinstance(demoted.new_chat_member, ChatMemberMember)
    await bob.leave(club)
    got = await updates(bot)
    assert of_kind(got, "chat_member") == []
    (service,) = of_kind(got, "message")
    assert service.left_chat_member is not None and service.left_chat_member.id == bob.id


# --- messages in groups -----------------------------------------------------------------------


async def test_group_messages_as_the_bots_see_them(
    api: BotApiServer, bot: Bot, olga: SimUser, club: SimChat
) -> None:
    helper = Bot(
        api.create_bot(username="helper_bot", first_name="Helper"),
        session=AiohttpSession(api=TelegramAPIServer.from_base(api.url)),
    )
    try:
        club.add_bot(helper.token, admin=False)
        alice = api.user("Alice")
        await alice.join(club)
        await updates(bot)
        await updates(helper)

        await alice.say(club, "hello everyone")
        await alice.say(club, "/gate status")
        await alice.say(club, "/help@helper_bot")
        club.promote(olga, anonymous=True, title="Host")
        await olga.say(club, "/gate off", anonymous=True)

        seen = of_kind(await updates(bot), "message")
        assert [m.text for m in seen] == [
            "hello everyone",
            "/gate status",
            "/help@helper_bot",
            "/gate off",
        ]
        anonymous = seen[-1]
        assert anonymous.sender_chat is not None and anonymous.sender_chat.id == club.id
        assert anonymous.from_user is not None
        assert anonymous.from_user.username == "GroupAnonymousBot"
        assert anonymous.author_signature == "Host"
        # In privacy mode only commands meant for the bot arrive.
        assert [m.text for m in of_kind(await updates(helper), "message")] == [
            "/gate status",
            "/help@helper_bot",
            "/gate off",
        ]

        sent = await bot.send_message(club.id, "Welcome, Alice")
        assert (await club.next_message()).text == "Welcome, Alice"
        await bot.edit_message_text(
            "Welcome, Alice and Bob", chat_id=club.id, message_id=sent.message_id
        )
        await club.wait_for(lambda m: m.edited, what="an edit")
        assert of_kind(await updates(helper), "message") == []  # bots never see bots
        theirs = await helper.send_message(club.id, "hi")
        with pytest.raises(TelegramBadRequest, match="message can't be edited"):
            await bot.edit_message_text("mine now", chat_id=club.id, message_id=theirs.message_id)
        with pytest.raises(TelegramBadRequest, match="message can't be deleted"):
            await helper.delete_message(club.id, seen[0].message_id)
        assert await bot.delete_message(club.id, seen[0].message_id) is True
        assert await bot.delete_message(club.id, sent.message_id) is True
        await club.wait_for(lambda m: m.deleted and m.from_bot, what="a deletion")
        assert [m.text for m in club.messages if m.deleted] == [
            "hello everyone",
            "Welcome, Alice and Bob",
        ]

        # Another bot's removal shows in the chat, and every other bot is told of it.
        await bot.ban_chat_member(club.id, alice.id)
        (removal,) = of_kind(await updates(helper), "message")
        assert removal.left_chat_member is not None and removal.left_chat_member.id == alice.id
        assert removal.from_user is not None and removal.from_user.id == bot.id

        await bot.restrict_chat_member(club.id, helper.id, MUTED)
        with pytest.raises(TelegramBadRequest, match="not enough rights to send text messages"):
            await helper.send_message(club.id, "muted")
    finally:
        await helper.session.close()


async def test_service_messages_for_people_coming_and_going(
    api: BotApiServer, bot: Bot, olga: SimUser, club: SimChat
) -> None:
    alice, bob = api.user("Alice"), api.user("Bob")
    await updates(bot)
    club.add_member(alice)
    foreign = club.create_link(by=olga, name="friends")
    await bob.join(foreign)
    got = await updates(bot)
    services = of_kind(got, "message")
    assert [(m.from_user.id, m.new_chat_members[0].id) for m in services] == [
        (olga.id, alice.id),
        (bob.id, bob.id),
    ]
    members = of_kind(got, "chat_member")
    assert members[0].invite_link is None and members[0].from_user.id == olga.id
    assert members[1].invite_link is not None and members[1].invite_link.creator.id == olga.id
    assert members[1].invite_link.name == "friends"
    assert club.member_count == 4


# --- invite links -----------------------------------------------------------------------------


async def test_invite_links_made_edited_revoked_and_exported(
    api: BotApiServer, bot: Bot, clock: Clock, olga: SimUser, club: SimChat
) -> None:
    made = await bot.create_chat_invite_link(
        club.id, name="x" * 40, member_limit=1, expire_date=int(START) + 600
    )
    assert (made.name, made.member_limit, made.is_primary, made.creator.id) == (
        "x" * 32,
        1,
        False,
        bot.id,
    )
    assert made.expire_date is not None and made.expire_date.timestamp() == START + 600
    with pytest.raises(TelegramBadRequest, match="member limit can't be specified for links requ"):
        await bot.create_chat_invite_link(club.id, member_limit=5, creates_join_request=True)

    alice, bob = api.user("Alice"), api.user("Bob")
    await alice.join(made.invite_link)
    with pytest.raises(Refused, match="INVITE_HASH_EXPIRED"):
        await bob.join(made.invite_link)  # one member at a time through it
    await alice.leave(club)
    await bob.join(made.invite_link)

    edited = await bot.edit_chat_invite_link(
        club.id, made.invite_link, name="approval", creates_join_request=True
    )
    assert (edited.member_limit, edited.creates_join_request) == (None, True)
    revoked = await bot.revoke_chat_invite_link(club.id, made.invite_link)
    assert revoked.is_revoked is True
    with pytest.raises(Refused, match="INVITE_HASH_EXPIRED"):
        await alice.ask_to_join(made.invite_link)

    foreign = club.create_link(by=olga)
    with pytest.raises(TelegramBadRequest, match="Bad Request: CHAT_ADMIN_REQUIRED"):
        await bot.revoke_chat_invite_link(club.id, foreign)
    with pytest.raises(TelegramBadRequest, match="Bad Request: CHAT_ADMIN_REQUIRED"):
        await bot.edit_chat_invite_link(club.id, club.primary_link, name="mine")

    old_primary = club.primary_link
    fresh = await bot.export_chat_invite_link(club.id)
    assert fresh == club.primary_link != old_primary
    assert (await bot.get_chat(club.id)).invite_link == fresh
    with pytest.raises(Refused, match="INVITE_HASH_EXPIRED"):
        await api.user("Carol").join(old_primary)

    timed = await bot.create_chat_invite_link(club.id, expire_date=int(clock()) + 60)
    clock.advance(60)
    with pytest.raises(Refused, match="INVITE_HASH_EXPIRED"):
        await api.user("Dan").join(timed.invite_link)


async def test_a_url_button_in_the_group_starts_the_bot_with_its_payload(
    api: BotApiServer, bot: Bot, club: SimChat
) -> None:
    alice = api.user("Alice")
    await alice.join(club)
    button = InlineKeyboardButton(text="Verify", url="https://t.me/gate_bot?start=g-123_abc")
    await bot.send_message(
        club.id,
        "Welcome! Verify to write.",
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[[button]]),
    )
    notice = await club.next_message()
    await updates(bot)
    started = await alice.open_button(notice, "Verify")
    assert started.text == "/start g-123_abc" and started.chat_id == alice.id
    (message,) = of_kind(await updates(bot), "message")
    assert (message.chat.type, message.text) == ("private", "/start g-123_abc")
    with pytest.raises(LookupError, match="no URL button 'Join'"):
        await alice.open_button(notice, "Join")
    with pytest.raises(ValueError, match="not a link that starts a bot"):
        await alice.follow(club.primary_link)
