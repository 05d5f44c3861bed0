"""The member gate (newcomers restricted until they verify, removed at the timeout), joins that
bypass join requests, and lasting access: sign-outs and erasures. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from bot.conversation.events import Erased, Linked, Person, Unlinked
from bot.gate.actions import Decline, Free, Notice, Remove, Restrict, Say
from bot.gate.deeplink import chat_of
from bot.gate.service import WAVE
from tests.gate.conftest import (
    ADA,
    BOB,
    CHANNEL,
    CY,
    GROUP,
    OTHER_GROUP,
    T0,
    World,
    email,
    payload_of,
    says,
)


def notices(actions: list) -> list[Notice]:  # type: ignore[type-arg]
    return [a for a in actions if isinstance(a, Notice)]


async def test_a_newcomer_is_restricted_then_freed_once_verified(world: World) -> None:
    await world.chat(mode="members", timeout=300)
    actions = await world.gate.on_member_joined(GROUP, BOB)
    assert actions[0] == Restrict(GROUP, BOB.id)
    (notice,) = notices(actions)
    assert notice.key == WAVE and notice.text is not None
    assert "Welcome, Bob!" in notice.text and "5 minutes" in notice.text
    (row,) = notice.buttons
    assert row[0].url is not None
    # The group's button is for any newcomer, each once.
    entry = await world.gate.check(payload_of(row[0].url), BOB.id)
    assert chat_of(entry) == GROUP

    await world.link(BOB, email("bob@example.com"))
    actions = await world.gate.on_event(Linked(BOB.id, email("bob@example.com"), "u", entry))
    assert actions[0] == Free(GROUP, BOB.id)
    assert [s.text for s in says(actions)] == ["You can write in Acme Club now. Welcome!"]
    assert notices(actions) == [Notice(GROUP, WAVE, None)]  # nobody left to wait for
    assert await world.log() == [
        (BOB.id, "restricted", "any"),
        (BOB.id, "approved", "any"),
        (BOB.id, "freed", "any"),
    ]
    assert await world.gate.reconcile(T0 + timedelta(days=1)) == []


async def test_one_notice_lists_a_wave_of_newcomers(world: World) -> None:
    await world.chat(mode="members")
    for i in range(12):
        actions = await world.gate.on_member_joined(GROUP, Person(1000 + i, f"N{i}"))
    (notice,) = notices(actions)
    assert notice.text is not None
    assert "N0, N1" in notice.text and "N9 and 2 more" in notice.text
    await world.link(Person(1000, "N0"), email("n0@example.com"))
    actions = await world.gate.on_event(Linked(1000, email("n0@example.com"), "u"))
    (notice,) = notices(actions)
    assert notice.text is not None
    assert "N0" not in notice.text and "N1, " in notice.text and "N10 and 1 more" in notice.text


async def test_a_newcomer_who_never_verifies_is_removed_at_the_timeout_once(
    world: World,
) -> None:
    await world.chat(mode="members", timeout=60)
    await world.gate.on_member_joined(GROUP, BOB)
    assert await world.gate.reconcile(T0 + timedelta(seconds=59)) == []
    actions = await world.gate.reconcile(T0 + timedelta(seconds=60))
    assert actions == [Remove(GROUP, BOB.id), Notice(GROUP, WAVE, None)]
    assert await world.new_gate().reconcile(T0 + timedelta(seconds=61)) == []
    assert await world.log() == [(BOB.id, "restricted", "any"), (BOB.id, "removed", "timeout")]
    # Telegram tells that they left (ban, then unban): nothing more to do.
    assert await world.gate.on_member_left(GROUP, BOB.id) == []


async def test_a_linked_newcomer_who_meets_the_policy_is_not_restricted(world: World) -> None:
    await world.chat(mode="members", policy="email-domain:example.com")
    await world.link(ADA, email("ada@example.com"))
    assert await world.gate.on_member_joined(GROUP, ADA) == []
    assert await world.log() == [(ADA.id, "approved", "email-domain:example.com")]


async def test_a_restriction_that_outlasted_leaving_is_lifted_on_return(world: World) -> None:
    await world.chat(mode="members")
    await world.gate.on_member_joined(GROUP, BOB)
    await world.gate.on_member_left(GROUP, BOB.id)  # left while restricted: still restricted
    await world.link(BOB, email("bob@example.com"))
    actions = await world.gate.on_member_joined(GROUP, BOB)
    assert actions == [Free(GROUP, BOB.id)]


async def test_a_linked_newcomer_outside_the_policy_is_removed_and_told_why(world: World) -> None:
    await world.chat(mode="members", policy="email-domain:example.com")
    await world.link(CY, email("cy@gmail.com"))
    actions = await world.gate.on_member_joined(GROUP, CY)
    assert actions[0] == Remove(GROUP, CY.id)
    (say,) = says(actions)
    assert say.chat_id == CY.id and "this chat accepts addresses at example.com" in say.text


async def test_a_join_that_bypasses_join_requests_gets_the_member_rule(world: World) -> None:
    await world.chat(mode="join_requests")
    actions = await world.gate.on_member_joined(GROUP, BOB, via_link_creator_id=777)
    assert actions[0] == Restrict(GROUP, BOB.id)
    (entry,) = await world.entries()
    assert entry.detail == {"link_creator_id": 777, "without_request": True}
    # A join through a request the gate (or an admin) decided is not a bypass.
    assert await world.gate.on_member_joined(GROUP, ADA, via_join_request=True) == []


async def test_a_channel_removes_an_unverified_bypass_at_once(world: World) -> None:
    await world.chat(CHANNEL, kind="channel")
    assert await world.gate.on_member_joined(CHANNEL, BOB) == [Remove(CHANNEL, BOB.id)]


async def test_signing_out_removes_from_chats_that_require_a_live_link(world: World) -> None:
    await world.chat(GROUP, live=True)
    await world.chat(OTHER_GROUP, live=False)
    await world.link(ADA, email("ada@example.com"))
    await world.gate.on_join_request(GROUP, ADA, ADA.id)
    await world.gate.on_join_request(OTHER_GROUP, ADA, ADA.id)
    await world.unlink(ADA)
    actions = await world.gate.on_event(Unlinked(ADA.id))
    assert actions == [Remove(GROUP, ADA.id)]
    assert (ADA.id, "removed", "signed_out") in await world.log(GROUP)
    assert [c.chat_id for c in await world.gate.admitted_chats(ADA.id)] == [OTHER_GROUP]
    assert await world.gate.on_event(Unlinked(ADA.id)) == []
    assert await world.gate.reconcile() == []


async def test_a_lost_sign_out_is_made_up_for_by_reconcile(world: World) -> None:
    await world.chat()
    await world.link(ADA, email("ada@example.com"))
    await world.gate.on_join_request(GROUP, ADA, ADA.id)
    await world.unlink(ADA)  # the event never reached the gate
    assert await world.new_gate().reconcile() == [Remove(GROUP, ADA.id)]
    assert await world.gate.reconcile() == []


async def test_someone_approved_by_hand_stays_without_a_link(world: World) -> None:
    await world.chat()
    await world.gate.on_admin_command(GROUP, 9001, True, f"approve {BOB.id}")
    assert await world.gate.on_join_request(GROUP, BOB, BOB.id) != []
    assert await world.gate.on_event(Unlinked(BOB.id)) == []
    assert await world.gate.reconcile() == []


async def test_erasure_removes_and_leaves_no_trace_of_the_person(world: World) -> None:
    await world.chat(GROUP)
    await world.chat(OTHER_GROUP, mode="members")
    await world.link(ADA, email("ada@example.com"))
    await world.gate.on_join_request(GROUP, ADA, ADA.id)
    await world.unlink(ADA)
    await world.gate.on_member_joined(OTHER_GROUP, ADA)  # restricted there, waiting
    await world.erase(ADA)
    actions = await world.gate.on_event(Erased(ADA.id))
    assert set(actions) == {
        Remove(GROUP, ADA.id),
        Remove(OTHER_GROUP, ADA.id),
        Notice(OTHER_GROUP, WAVE, None),
    }
    for chat_id in (GROUP, OTHER_GROUP):
        log = await world.log(chat_id)
        assert (None, "removed", "erased") in log
        assert all(user != ADA.id for user, _, _ in log)
    assert await world.gate.admitted_chats(ADA.id) == []
    assert await world.store.pending_of(ADA.id) == []
    assert await world.gate.on_event(Erased(ADA.id)) == []
    assert await world.gate.reconcile() == []


async def test_a_lost_erasure_event_is_made_up_for_by_reconcile(world: World) -> None:
    await world.chat()
    await world.gate.on_join_request(GROUP, BOB, 5202)
    await world.erase(BOB)  # the event never reached the gate
    assert await world.new_gate().reconcile() == [Decline(GROUP, BOB.id)]
    assert await world.log() == [(None, "declined", "erased")]


async def test_a_restricted_newcomer_who_leaves_is_not_removed_later(world: World) -> None:
    await world.chat(mode="members", timeout=60)
    await world.gate.on_member_joined(GROUP, BOB)
    actions = await world.gate.on_member_left(GROUP, BOB.id)
    assert actions == [Notice(GROUP, WAVE, None)]
    assert await world.gate.reconcile(T0 + timedelta(seconds=120)) == []


async def test_turning_the_gate_off_frees_the_restricted(world: World) -> None:
    await world.chat(mode="members")
    await world.gate.on_member_joined(GROUP, BOB)
    actions = await world.gate.on_admin_command(GROUP, 9001, True, "off")
    assert actions[:2] == [Free(GROUP, BOB.id), Notice(GROUP, WAVE, None)]
    assert isinstance(actions[-1], Say)
    assert await world.gate.reconcile(T0 + timedelta(days=1)) == []


async def test_a_gate_turned_off_from_the_cli_releases_waits_at_their_deadline(
    world: World,
) -> None:
    await world.chat(mode="members", timeout=60)
    await world.gate.on_member_joined(GROUP, BOB)
    await world.gate.on_join_request(GROUP, CY, 5303)
    await world.store.update_chat(GROUP, enabled=False)
    actions = await world.gate.reconcile(T0 + timedelta(seconds=60))
    assert Free(GROUP, BOB.id) in actions
    assert not any(isinstance(a, (Decline, Remove)) for a in actions)
