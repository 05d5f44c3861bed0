"""Gated groups and channels, end to end: the real bot over HTTP against the stand-in, with
members, admins, join requests and invite links played by simulated people."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.sandbox.botapi import BotApiServer
from bot.sandbox.botapi.rates import RateLimits
from bot.sandbox.botapi.state import ChatMessage
from bot.sandbox.botapi.users import SimUser
from storage.gate import ChatRecord, GateStore
from tests.e2e.conftest import World, remember


def gate_store(w: World) -> GateStore:
    assert w.app is not None
    return w.app.gate.store


async def known(w: World, chat_id: int) -> ChatRecord:
    """The chat's row, once the bot has heard that it was made an admin there."""
    store = gate_store(w)
    async with asyncio.timeout(5):
        while (record := await store.get_chat(chat_id)) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    return record


async def verify(w: World, user: SimUser, email: str) -> None:
    """Past the bot's welcome: give an address and the code mailed to it."""
    remember(w, email)
    await user.next_message()
    await user.send_text(email)
    await user.next_message()
    await user.send_text(await w.email_code(email))


async def sign_in(w: World, user: SimUser, email: str) -> None:
    await user.send_text("/start")
    await verify(w, user, email)
    await user.wait_for(lambda m: m.from_bot and (m.text or "").startswith("✅"))


async def gate(w: World, chat_id: int, **settings: object) -> None:
    """Set a chat's gate as an operator would with `passgram gate set`, while the bot runs,
    once the bot has heard that it was made an admin there."""
    await known(w, chat_id)
    await gate_store(w).update_chat(chat_id, enabled=True, **settings)  # type: ignore[arg-type]


async def reconcile(w: World) -> None:
    """What the bot's 5-second job does, now (the test moved the clock past a deadline)."""
    assert w.runner is not None
    await w.runner.gate.reconcile()


async def dm(user: SimUser, text: str) -> ChatMessage:
    return await user.wait_for(lambda m: m.from_bot and text in (m.text or ""))


async def test_a_channel_with_join_requests(running: World) -> None:
    w = running
    api: BotApiServer = w.botapi
    owner = api.user(first_name="Olga")
    channel = api.create_channel("Acme News", owner=owner, join_by_request=True)
    channel.add_bot()
    await api.wait_for_call("getMe")
    await gate(w, channel.id, mode="join_requests", timeout=600)

    linked = api.user(first_name="Lin")
    await sign_in(w, linked, "lin@example.com")
    await linked.ask_to_join(channel)
    await api.wait_for_call("approveChatJoinRequest")
    assert channel.status(linked) == "member"

    newcomer = api.user(first_name="Nia")
    await newcomer.ask_to_join(channel)
    invite = await dm(newcomer, "Acme News")
    await newcomer.open_button(invite, "Sign in to join")
    await verify(w, newcomer, "nia@example.com")
    await dm(newcomer, "You're in Acme News")
    assert channel.status(newcomer) == "member"

    silent = api.user(first_name="Sid")
    await silent.ask_to_join(channel)
    await dm(silent, "Acme News")
    w.clock.advance(seconds=601)
    await reconcile(w)
    await reconcile(w)  # a second look acts on nothing
    assert channel.status(silent) == "left"
    declines = [c for c in api.calls_to("declineChatJoinRequest") if c.ok]
    assert len(declines) == 1
    log = await gate_store(w).read_log(channel.id)
    assert [e.action for e in log if e.user_id == silent.id] == ["asked", "declined"]


async def test_a_group_in_member_mode(running: World) -> None:
    w = running
    api = w.botapi
    owner = api.user(first_name="Olga")
    group = api.create_group("Book club", owner=owner)
    group.add_bot()
    await api.wait_for_call("getMe")
    await gate(w, group.id, mode="members", timeout=300)

    reader = api.user(first_name="Rita")
    await reader.join(group)
    await api.wait_for_call("restrictChatMember")
    assert group.status(reader) == "restricted"
    notice = await group.wait_for(lambda m: m.from_bot and "Rita" in (m.text or ""))
    await reader.open_button(notice, "Sign in to write")
    await verify(w, reader, "rita@example.com")
    await dm(reader, "You can write in Book club")
    assert group.status(reader) == "member"
    await reader.say(group, "Hello, everyone")

    lurker = api.user(first_name="Leo")
    await lurker.join(group)
    await api.wait_for_call(
        "restrictChatMember", count=3
    )  # Rita's restriction and freeing came first
    assert group.status(lurker) == "restricted"
    w.clock.advance(seconds=301)
    await reconcile(w)
    assert group.status(lurker) == "left"  # removed, and free to come back: not banned
    await lurker.join(group)


async def test_an_email_domain_policy_admits_one_and_tells_the_other_why(running: World) -> None:
    w = running
    api = w.botapi
    owner = api.user(first_name="Olga")
    channel = api.create_channel("Staff", owner=owner, join_by_request=True)
    channel.add_bot()
    await api.wait_for_call("getMe")
    await gate(w, channel.id, mode="join_requests", policy="email-domain:acme-staff.com")

    staff = api.user(first_name="Sam")
    await sign_in(w, staff, "sam@acme-staff.com")
    await staff.ask_to_join(channel)
    await api.wait_for_call("approveChatJoinRequest")
    assert channel.status(staff) == "member"

    guest = api.user(first_name="Gus")
    await sign_in(w, guest, "gus@example.com")
    await guest.ask_to_join(channel)
    refusal = await dm(guest, "acme-staff.com")
    assert "addresses at acme-staff.com" in (refusal.text or "")
    assert channel.status(guest) == "left"


async def test_only_admins_switch_the_gate(running: World) -> None:
    w = running
    api = w.botapi
    owner = api.user(first_name="Olga")
    group = api.create_group("Chess", owner=owner)
    member = api.user(first_name="Max")
    group.add_member(member)
    group.add_bot()
    await api.wait_for_call("getMe")
    await gate(w, group.id, mode="members")

    await member.say(group, "/gate off")
    await group.wait_for(lambda m: m.from_bot and "Only this chat's admins" in (m.text or ""))
    assert (await gate_store(w).get_chat(group.id)).enabled  # type: ignore[union-attr]
    await owner.say(group, "/gate off")
    await group.wait_for(lambda m: m.from_bot and "gate is off" in (m.text or "").lower())
    assert not (await gate_store(w).get_chat(group.id)).enabled  # type: ignore[union-attr]


async def test_signing_out_leaves_a_chat_that_requires_a_live_link(running: World) -> None:
    w = running
    api = w.botapi
    owner = api.user(first_name="Olga")
    channel = api.create_channel("Members only", owner=owner, join_by_request=True)
    channel.add_bot()
    await api.wait_for_call("getMe")
    await gate(w, channel.id, mode="join_requests")
    ann = api.user(first_name="Ann")
    await sign_in(w, ann, "ann.live@example.com")
    await ann.ask_to_join(channel)
    await api.wait_for_call("approveChatJoinRequest")
    await ann.send_text("/me")
    me = await ann.wait_for(lambda m: m.from_bot and "Members only" in (m.text or ""))
    assert "Chats you got into through me" in (me.text or "")
    await ann.send_text("/logout")
    await api.wait_for_call("banChatMember")
    await api.wait_for_call("unbanChatMember")
    assert channel.status(ann) == "left"
    log = await gate_store(w).read_log(channel.id)
    assert [e.action for e in log if e.user_id == ann.id][-1] == "removed"


@pytest.mark.parametrize("bot_mode", ["polling"])
async def test_a_guard_bot_answers_within_ten_seconds(running: World) -> None:
    w = running
    api = w.botapi
    owner = api.user(first_name="Olga")
    group = api.create_group("Guarded", owner=owner, join_by_request=True)
    group.add_bot()
    group.make_guard()
    await api.wait_for_call("getMe")
    await gate(w, group.id, mode="join_requests")
    known = api.user(first_name="Kay")
    await sign_in(w, known, "kay@example.com")
    started = time.monotonic()
    await known.ask_to_join(group)
    call = await api.wait_for_call("answerChatJoinRequestQuery")
    assert time.monotonic() - started < 10
    assert call.params["result"] == "approve"
    stranger = api.user(first_name="Stu")
    await stranger.ask_to_join(group)
    await dm(stranger, "Guarded")
    answers = [c.params["result"] for c in api.calls_to("answerChatJoinRequestQuery")]
    assert answers == ["approve", "queue"]


async def test_a_pending_requester_survives_a_restart(running: World) -> None:
    w = running
    api = w.botapi
    owner = api.user(first_name="Olga")
    channel = api.create_channel("Durable", owner=owner, join_by_request=True)
    channel.add_bot()
    await api.wait_for_call("getMe")
    await gate(w, channel.id, mode="join_requests", timeout=600)
    patient, quiet = api.user(first_name="Pat"), api.user(first_name="Quinn")
    await patient.ask_to_join(channel)
    invite = await dm(patient, "Durable")
    await quiet.ask_to_join(channel)
    await dm(quiet, "Durable")

    await w.stop_bot()
    await w.start_bot()
    await patient.open_button(invite, "Sign in to join")
    await verify(w, patient, "pat@example.com")
    await dm(patient, "You're in Durable")
    assert channel.status(patient) == "member"

    await w.stop_bot()
    w.clock.advance(seconds=601)
    await w.start_bot()  # deadlines that passed while it was down are acted on at start
    await api.wait_for_call("declineChatJoinRequest")
    assert channel.status(quiet) == "left"
    assert len([c for c in api.calls_to("declineChatJoinRequest") if c.ok]) == 1
    assert len([c for c in api.calls_to("approveChatJoinRequest") if c.ok]) == 1


@pytest.mark.parametrize("bot_mode", ["polling"])
async def test_a_burst_of_a_thousand_join_requests_is_decided_within_the_limits(
    world: World,
) -> None:
    w = world
    limits = RateLimits(total=200, private=1, group=20)
    w.overrides |= {"telegram_rate_total": "200/1", "telegram_rate_private": "1/1"}
    api = w.botapi
    api.limit_rates(limits)  # past these, the stand-in answers 429 as Telegram does
    await w.start_bot()
    owner = api.user(first_name="Olga")
    channel = api.create_channel("Launch", owner=owner, join_by_request=True)
    channel.add_bot()
    await gate(w, channel.id, mode="join_requests", timeout=600)

    crowd = [api.user(first_name=f"Fan{n}") for n in range(1000)]
    for fan in crowd:  # all within one tick: one burst of updates
        await fan.ask_to_join(channel)
    store = gate_store(w)
    async with asyncio.timeout(120):
        while await store.count_pending(channel.id) < 1000:  # noqa: ASYNC110 - the bot's pace
            await asyncio.sleep(0.2)
    await api.wait_for_call("sendMessage", count=1000, timeout=60)

    w.clock.advance(seconds=601)
    async with asyncio.timeout(120):
        while await store.count_pending(channel.id):
            await reconcile(w)
    # Every wait is settled in the database; the bot's own 5-second job may have settled some
    # and still be declining them at Telegram's pace.
    await api.wait_for_call("declineChatJoinRequest", count=1000, timeout=60)
    declined = [c for c in api.calls_to("declineChatJoinRequest") if c.ok]
    assert len(declined) == 1000
    assert {int(c.params["user_id"]) for c in declined} == {f.id for f in crowd}
    assert not [c for c in api.calls if c.error is not None and c.error.code == 429]
    assert api.rate_windows().within(limits)
