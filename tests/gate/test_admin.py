"""Admins: `/gate …` commands in the chat, obeyed for admins only, and what the bot says about
its own rights. SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from bot.gate.actions import (
    Approve,
    Decline,
    Free,
    MakeInviteLink,
    Notice,
    Remove,
    Result,
    Say,
)
from bot.gate.service import WAVE
from tests.gate.conftest import ADA, ADMIN, BOB, CHANNEL, CY, GROUP, World, email

MEMBER = 4242


def text(actions: list) -> str:  # type: ignore[type-arg]
    (say,) = [a for a in actions if isinstance(a, Say)]
    return say.text


@pytest.mark.parametrize(
    "args",
    [
        "off",
        "on",
        "mode members",
        "policy email-domain:evil.example",
        "timeout 30",
        "live off",
        f"approve {BOB.id}",
        f"remove {ADA.id}",
        "link",
        "status",
    ],
)
async def test_commands_from_non_admins_are_refused(world: World, args: str) -> None:
    await world.chat()
    before = await world.store.get_chat(GROUP)
    actions = await world.gate.on_admin_command(GROUP, MEMBER, False, args)
    assert actions == [Say(GROUP, "Only this chat's admins can change the gate.")]
    assert await world.store.get_chat(GROUP) == before
    assert await world.log() == []


async def test_an_admin_turns_the_gate_off_and_on(world: World) -> None:
    await world.chat()
    assert text(await world.gate.on_admin_command(GROUP, ADMIN, True, "off")).startswith(
        "The gate is off."
    )
    settings = await world.gate.settings(GROUP)
    assert settings is not None and not settings.enabled
    assert text(await world.gate.on_admin_command(GROUP, ADMIN, True, "on")).startswith(
        "The gate is on."
    )
    settings = await world.gate.settings(GROUP)
    assert settings is not None and settings.enabled
    entries = await world.entries()
    assert [(e.action, e.actor_id, e.detail) for e in entries] == [
        ("settings", ADMIN, {"enabled": False}),
        ("settings", ADMIN, {"enabled": True}),
    ]


async def test_an_admin_sets_mode_policy_timeout_and_live_link(world: World) -> None:
    await world.chat()
    gate = world.gate
    assert text(await gate.on_admin_command(GROUP, ADMIN, True, "mode members")).startswith(
        "Mode: members"
    )
    reply = text(await gate.on_admin_command(GROUP, ADMIN, True, "policy email-domain:Example.com"))
    assert reply == (
        "Policy: email-domain:example.com. This chat now accepts addresses at example.com."
    )
    assert text(await gate.on_admin_command(GROUP, ADMIN, True, "timeout 3600")) == (
        "Timeout: 1 hour."
    )
    await gate.on_admin_command(GROUP, ADMIN, True, "live off")
    s = await gate.settings(GROUP)
    assert s is not None
    assert (s.mode, str(s.policy), s.timeout, s.require_live_link) == (
        "members",
        "email-domain:example.com",
        3600,
        False,
    )
    status = text(await gate.on_admin_command(GROUP, ADMIN, True, "status"))
    assert "Gate: on" in status and "addresses at example.com" in status
    assert "Timeout: 1 hour" in status and "Sign-out removes members: no" in status


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ("mode everyone", "The mode is join_requests or members."),
        ("policy everyone", "I can't read that policy (unknown policy 'everyone'"),
        ("policy phone-country:ZZ", "unknown country 'ZZ'"),
        ("timeout 5", "The timeout is a number of seconds, from 30 to 86400."),
        ("timeout soon", "The timeout is a number of seconds"),
        ("live maybe", "Use /gate live on or /gate live off."),
        ("approve bob", "Give the numeric Telegram user id"),
        ("dance", "I don't know that."),
    ],
)
async def test_bad_arguments_are_answered_and_change_nothing(
    world: World, args: str, says: str
) -> None:
    await world.chat()
    before = await world.store.get_chat(GROUP)
    assert says in text(await world.gate.on_admin_command(GROUP, ADMIN, True, args))
    assert await world.store.get_chat(GROUP) == before


async def test_help_is_for_everyone(world: World) -> None:
    await world.chat()
    reply = text(await world.gate.on_admin_command(GROUP, MEMBER, False, "help"))
    assert "/gate policy any|email-domain:DOMAIN[,DOMAIN]|phone-country:CC[,CC]" in reply
    assert "/gate approve USER_ID" in reply and "(30–86400)" in reply


async def test_a_channel_cannot_use_members_mode(world: World) -> None:
    await world.chat(CHANNEL, kind="channel")
    reply = text(
        await world.gate.on_admin_command(CHANNEL, ADMIN, True, "mode members", reply_to=ADMIN)
    )
    assert "Channels can't restrict members" in reply
    s = await world.gate.settings(CHANNEL)
    assert s is not None and s.mode == "join_requests"


async def test_commands_about_a_channel_are_answered_in_private(world: World) -> None:
    await world.chat(CHANNEL, kind="channel")
    actions = await world.gate.on_admin_command(CHANNEL, ADMIN, True, "off", reply_to=ADMIN)
    assert [a.chat_id for a in actions if isinstance(a, Say)] == [ADMIN]


async def test_manual_approve_and_remove(world: World) -> None:
    await world.chat()
    await world.gate.on_join_request(GROUP, BOB, 5202)
    actions = await world.gate.on_admin_command(GROUP, ADMIN, True, f"approve {BOB.id}")
    assert actions == [Approve(GROUP, BOB.id), Say(GROUP, f"Approved {BOB.id}.")]
    await world.gate.on_join_request(GROUP, CY, 5303)
    actions = await world.gate.on_admin_command(GROUP, ADMIN, True, f"remove {CY.id}")
    assert actions == [Decline(GROUP, CY.id), Say(GROUP, f"Removed {CY.id}.")]
    actions = await world.gate.on_admin_command(GROUP, ADMIN, True, f"remove {BOB.id}")
    assert actions == [Remove(GROUP, BOB.id), Say(GROUP, f"Removed {BOB.id}.")]
    entries = await world.entries()
    manual = [(e.user_id, e.action, e.actor_id) for e in entries if e.action.startswith("manual")]
    assert manual == [
        (BOB.id, "manual_approve", ADMIN),
        (CY.id, "manual_remove", ADMIN),
        (BOB.id, "manual_remove", ADMIN),
    ]
    assert await world.gate.reconcile() == []
    assert await world.gate.admitted_chats(BOB.id) == []


async def test_manual_approve_frees_a_restricted_newcomer(world: World) -> None:
    await world.chat(mode="members")
    await world.gate.on_member_joined(GROUP, BOB)
    actions = await world.gate.on_admin_command(GROUP, ADMIN, True, f"approve {BOB.id}")
    assert actions[:2] == [Free(GROUP, BOB.id), Notice(GROUP, WAVE, None)]


async def test_an_admin_gets_an_invite_link_that_asks_to_join(world: World) -> None:
    await world.chat()
    (make,) = await world.gate.on_admin_command(GROUP, ADMIN, True, "link")
    assert isinstance(make, MakeInviteLink) and make.chat_id == GROUP
    link = "https://t.me/+AbCdEf"
    assert await world.gate.on_result(Result(make, True, link=link)) == [
        Say(GROUP, f"An invite link that asks to join (I decide each request): {link}")
    ]
    failed = await world.gate.on_result(Result(make, False, "Bad Request: not enough rights"))
    assert "not enough rights" in text(failed)


async def test_the_bot_names_the_rights_it_lacks(world: World) -> None:
    actions = await world.gate.on_bot_status(GROUP, "Acme Club", "supergroup", ["can_invite_users"])
    reply = text(actions)
    assert actions[0].chat_id == GROUP  # type: ignore[union-attr]
    assert "Ban Users (can_restrict_members)" in reply
    assert "Delete Messages (can_delete_messages)" in reply
    assert "Invite Users" not in reply
    refused = text(await world.gate.on_admin_command(GROUP, ADMIN, True, "on"))
    assert refused.startswith("I can't gate Acme Club yet") and "Ban Users" in refused
    s = await world.gate.settings(GROUP)
    assert s is not None and not s.enabled

    rights = ["can_invite_users", "can_restrict_members", "can_delete_messages"]
    reply = text(await world.gate.on_bot_status(GROUP, "Acme Club", "supergroup", rights))
    assert reply.startswith("I'm an admin of Acme Club with the rights I need.")
    assert text(await world.gate.on_admin_command(GROUP, ADMIN, True, "on")).startswith(
        "The gate is on."
    )


async def test_about_a_channel_the_bot_tells_the_admin_in_private(world: World) -> None:
    actions = await world.gate.on_bot_status(CHANNEL, "News", "channel", None, actor_id=ADMIN)
    (say,) = actions
    assert isinstance(say, Say) and say.chat_id == ADMIN
    assert "Invite Users via Link (can_invite_users)" in say.text
    assert await world.gate.on_bot_status(CHANNEL, "News", "channel", None) == []


async def test_a_bot_removed_from_a_chat_stops_waiting_there(world: World) -> None:
    await world.chat(mode="members")
    await world.gate.on_member_joined(GROUP, BOB)
    assert (
        await world.gate.on_bot_status(GROUP, "Acme Club", "supergroup", None, present=False) == []
    )
    assert await world.gate.reconcile(world.clock.now.replace(year=2027)) == []


async def test_a_chat_first_seen_through_a_command_is_set_up(world: World) -> None:
    actions = await world.gate.on_admin_command(
        GROUP, ADMIN, True, "status", title="Acme Club", kind="supergroup"
    )
    assert "Gate: off" in text(actions)
    unknown = await world.gate.on_admin_command(-77, ADMIN, True, "on")
    assert "I don't know this chat yet" in text(unknown)


async def test_approve_by_hand_lets_someone_in_without_an_account(world: World) -> None:
    await world.chat(policy="email-domain:example.com")
    await world.gate.on_admin_command(GROUP, ADMIN, True, f"approve {CY.id}")
    await world.link(CY, email("cy@gmail.com"))
    assert await world.gate.on_join_request(GROUP, CY, CY.id) == [Approve(GROUP, CY.id)]
