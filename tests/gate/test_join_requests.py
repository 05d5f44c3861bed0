"""The join-request gate, decision by decision, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.conversation.commands import Commands
from bot.conversation.events import Linked
from bot.gate.actions import (
    AnswerQuery,
    Approve,
    Decline,
    Result,
    Say,
)
from bot.gate.deeplink import DeepLinks, chat_of
from bot.gate.service import Gate
from tests.gate.conftest import (
    ADA,
    BOB,
    BOT,
    CHANNEL,
    CY,
    GROUP,
    OTHER_GROUP,
    T0,
    VAULT,
    World,
    button_url,
    email,
    payload_of,
    phone,
    says,
)


async def test_a_linked_requester_who_meets_the_policy_is_approved_at_once(world: World) -> None:
    await world.chat(CHANNEL, kind="channel", policy="email-domain:example.com")
    await world.link(ADA, email("ada@example.com"))
    actions = await world.gate.on_join_request(CHANNEL, ADA, user_chat_id=ADA.id)
    assert actions == [Approve(CHANNEL, ADA.id)]
    assert await world.log(CHANNEL) == [(ADA.id, "approved", "email-domain:example.com")]
    assert [c.title for c in await world.gate.admitted_chats(ADA.id)] == ["Acme Club"]
    assert await world.store.get_pending(CHANNEL, ADA.id) is None


async def test_a_guard_bot_answers_the_query(world: World) -> None:
    await world.chat()
    await world.link(ADA, email("ada@example.com"))
    actions = await world.gate.on_join_request(GROUP, ADA, ADA.id, query_id="q-1")
    assert actions == [AnswerQuery("q-1", "approve")]


async def test_an_unlinked_requester_gets_a_button_and_is_approved_once_linked(
    world: World,
) -> None:
    await world.chat(CHANNEL, kind="channel", timeout=300)
    actions = await world.gate.on_join_request(CHANNEL, BOB, user_chat_id=5202)
    (ask,) = actions
    assert isinstance(ask, Say)
    assert ask.chat_id == 5202  # Telegram's handle for the requester's private chat
    assert "Acme Club" in ask.text and "Acme" in ask.text and "5 minutes" in ask.text
    entry = await world.gate.check(payload_of(button_url(ask)), BOB.id)
    assert chat_of(entry) == CHANNEL
    wait = await world.store.get_pending(CHANNEL, BOB.id)
    assert wait is not None and wait.kind == "request"
    assert wait.deadline_at == T0 + timedelta(seconds=300)

    world.clock.advance(60)
    await world.link(BOB, email("bob@example.com"))
    actions = await world.gate.on_event(Linked(BOB.id, email("bob@example.com"), "u", entry))
    assert actions[0] == Approve(CHANNEL, BOB.id)
    assert [s.text for s in says(actions)] == ["You're in Acme Club. Welcome!"]
    assert await world.log(CHANNEL) == [(BOB.id, "asked", "any"), (BOB.id, "approved", "any")]
    assert await world.store.get_pending(CHANNEL, BOB.id) is None
    # Nothing left for the deadline to do.
    assert await world.gate.reconcile(T0 + timedelta(hours=1)) == []


async def test_a_guard_bot_queues_an_unlinked_requester_and_asks_in_private(world: World) -> None:
    await world.chat()
    actions = await world.gate.on_join_request(GROUP, BOB, 5202, query_id="q-2")
    assert actions[0] == AnswerQuery("q-2", "queue")
    assert isinstance(actions[1], Say) and actions[1].chat_id == 5202
    await world.link(BOB, email("bob@example.com"))
    actions = await world.gate.on_event(Linked(BOB.id, email("bob@example.com"), "u"))
    assert actions[0] == Approve(GROUP, BOB.id)  # the query was answered; the request is queued


async def test_a_linked_requester_outside_the_policy_is_declined_with_the_reason(
    world: World,
) -> None:
    await world.chat(CHANNEL, kind="channel", policy="email-domain:example.com")
    await world.link(CY, email("cy.private@gmail.com"))
    actions = await world.gate.on_join_request(CHANNEL, CY, user_chat_id=5303)
    assert actions[0] == Decline(CHANNEL, CY.id)
    (say,) = says(actions)
    assert say.chat_id == 5303
    assert "this chat accepts addresses at example.com" in say.text
    assert "c•••@gmail.com" in say.text
    assert await world.log(CHANNEL) == [
        (CY.id, "policy_refused", "email-domain:example.com"),
        (CY.id, "declined", "email-domain:example.com"),
    ]
    assert await world.gate.admitted_chats(CY.id) == []


async def test_a_requester_who_verifies_outside_the_policy_is_declined_with_the_reason(
    world: World,
) -> None:
    await world.chat(policy="phone-country:GB")
    await world.gate.on_join_request(GROUP, CY, 5303)
    await world.link(CY, phone("+12025550142"))
    actions = await world.gate.on_event(Linked(CY.id, phone("+12025550142"), "u"))
    assert actions[0] == Decline(GROUP, CY.id)
    (say,) = says(actions)
    assert say.chat_id == CY.id
    assert "this chat accepts phone numbers from United Kingdom" in say.text
    assert "sign out with /logout," in say.text
    assert [action for _, action, _ in await world.log()] == ["asked", "policy_refused", "declined"]


async def test_a_refusal_names_logout_as_a_host_bot_renamed_it(world: World) -> None:
    gate = Gate(
        world.store,
        world.links,
        world.clock,
        deeplinks=DeepLinks(VAULT, BOT),
        app="Acme",
        commands=Commands({"logout": "signout"}),
    )
    await world.chat(CHANNEL, kind="channel", policy="email-domain:example.com")
    await world.link(CY, email("cy.private@gmail.com"))
    (say,) = says(await gate.on_join_request(CHANNEL, CY, user_chat_id=5303))
    assert "sign out with /signout, sign in" in say.text


async def test_the_log_never_holds_an_address_or_a_number(world: World) -> None:
    await world.chat(policy="email-domain:example.com")
    await world.link(ADA, email("ada@example.com"))
    await world.link(CY, phone("+447400123456"))
    await world.gate.on_join_request(GROUP, ADA, ADA.id)
    await world.gate.on_join_request(GROUP, CY, CY.id)
    text = repr(await world.entries())
    assert "policy_refused" in text and "approved" in text
    for secret in ("ada@", "7400123456", "+44"):
        assert secret not in text


async def test_a_requester_who_never_verifies_is_declined_at_the_timeout_once(
    world: World,
) -> None:
    await world.chat(timeout=120)
    await world.gate.on_join_request(GROUP, BOB, 5202)
    assert await world.gate.reconcile(T0 + timedelta(seconds=119)) == []
    assert await world.gate.reconcile(T0 + timedelta(seconds=120)) == [Decline(GROUP, BOB.id)]
    assert await world.gate.reconcile(T0 + timedelta(seconds=121)) == []
    assert await world.new_gate().reconcile(T0 + timedelta(seconds=500)) == []
    assert await world.log() == [(BOB.id, "asked", "any"), (BOB.id, "declined", "timeout")]


async def test_two_gates_racing_for_the_deadlines_decline_each_request_once(world: World) -> None:
    await world.chat(timeout=60)
    people = [ADA, BOB, CY]
    for person in people:
        await world.gate.on_join_request(GROUP, person, person.id)
    gates = [world.new_gate() for _ in range(4)]
    due = T0 + timedelta(seconds=60)
    results = await asyncio.gather(*(gate.reconcile(due, limit=1) for gate in gates))
    declines = [action for actions in results for action in actions]
    assert sorted(declines, key=repr) == sorted([Decline(GROUP, p.id) for p in people], key=repr)
    declined = [user for user, action, _ in await world.log() if action == "declined"]
    assert sorted(declined, key=str) == sorted((p.id for p in people), key=str)


async def test_verifying_and_the_deadline_racing_decide_once(world: World) -> None:
    await world.chat(timeout=60)
    await world.gate.on_join_request(GROUP, BOB, 5202)
    await world.link(BOB, email("bob@example.com"))
    world.clock.advance(60)
    linked, expired = await asyncio.gather(
        world.new_gate().on_event(Linked(BOB.id, email("bob@example.com"), "u")),
        world.new_gate().reconcile(),
    )
    decisions = [a for a in linked + expired if isinstance(a, (Approve, Decline))]
    assert len(decisions) == 1
    outcomes = [a for _, a, _ in await world.log() if a in ("approved", "declined")]
    assert len(outcomes) == 1


async def test_a_lost_linked_event_is_made_up_for_by_reconcile(world: World) -> None:
    await world.chat()
    await world.gate.on_join_request(GROUP, BOB, 5202)
    await world.link(BOB, email("bob@example.com"))  # the event never reached the gate
    restarted = world.new_gate()
    actions = await restarted.reconcile()
    assert actions[0] == Approve(GROUP, BOB.id)
    assert await restarted.reconcile() == []


async def test_a_restart_forgets_no_requester(world: World) -> None:
    await world.chat(timeout=300)
    await world.gate.on_join_request(GROUP, BOB, 5202)
    await world.gate.on_join_request(GROUP, CY, 5303)
    await world.db.dispose()  # the first process is gone
    restarted = world.new_gate()
    await world.link(BOB, email("bob@example.com"))
    actions = await restarted.on_event(Linked(BOB.id, email("bob@example.com"), "u"))
    assert actions[0] == Approve(GROUP, BOB.id)
    assert await restarted.reconcile(T0 + timedelta(seconds=300)) == [Decline(GROUP, CY.id)]


async def test_someone_verified_once_is_let_into_other_chats_at_once(world: World) -> None:
    await world.chat(GROUP, policy="email-domain:example.com")
    await world.chat(OTHER_GROUP, title="Acme Makers")
    await world.gate.on_join_request(GROUP, ADA, ADA.id)
    await world.link(ADA, email("ada@example.com"))
    await world.gate.on_event(Linked(ADA.id, email("ada@example.com"), "u"))
    world.clock.advance(3600)
    assert await world.gate.on_join_request(OTHER_GROUP, ADA, ADA.id) == [
        Approve(OTHER_GROUP, ADA.id)
    ]
    chats = await world.gate.admitted_chats(ADA.id)
    assert [(c.title, c.since) for c in chats] == [
        ("Acme Club", T0),
        ("Acme Makers", T0 + timedelta(seconds=3600)),
    ]


async def test_a_chat_with_the_gate_off_leaves_requests_to_its_admins(world: World) -> None:
    await world.chat(enabled=False)
    await world.link(ADA, email("ada@example.com"))
    assert await world.gate.on_join_request(GROUP, ADA, ADA.id) == []
    assert await world.gate.on_join_request(GROUP, BOB, BOB.id, query_id="q") == [
        AnswerQuery("q", "queue")
    ]
    assert await world.gate.on_join_request(-42, BOB, BOB.id) == []  # a chat never set up
    assert await world.log() == []


async def test_a_settings_change_counts_at_the_next_decision(world: World) -> None:
    await world.chat(policy="any")
    await world.link(CY, email("cy@gmail.com"))
    await world.store.update_chat(GROUP, policy="email-domain:example.com")  # as the CLI does
    actions = await world.gate.on_join_request(GROUP, CY, CY.id)
    assert actions[0] == Decline(GROUP, CY.id)


async def test_following_a_chat_link_after_the_timeout_says_to_ask_again(world: World) -> None:
    await world.chat(timeout=60)
    (ask,) = await world.gate.on_join_request(GROUP, BOB, 5202)
    assert isinstance(ask, Say)
    entry = await world.gate.check(payload_of(button_url(ask)), BOB.id)
    await world.gate.reconcile(T0 + timedelta(seconds=60))
    await world.link(BOB, email("bob@example.com"))
    actions = await world.gate.on_event(Linked(BOB.id, email("bob@example.com"), "u", entry))
    assert [(s.chat_id, s.text) for s in says(actions)] == [
        (BOB.id, "You're signed in. Ask to join Acme Club again and I'll let you in at once.")
    ]


async def test_telegram_answers_are_read_as_they_mean(world: World) -> None:
    await world.chat()
    await world.link(ADA, email("ada@example.com"))
    approve = (await world.gate.on_join_request(GROUP, ADA, ADA.id))[0]
    assert approve == Approve(GROUP, ADA.id)
    error = "Bad Request: USER_ALREADY_PARTICIPANT"
    assert await world.gate.on_result(Result(approve, False, error)) == []
    assert [c.chat_id for c in await world.gate.admitted_chats(ADA.id)] == [GROUP]

    # The request was withdrawn or handled by an admin meanwhile: nobody was let in.
    gone = "Bad Request: HIDE_REQUESTER_MISSING"
    assert await world.gate.on_result(Result(approve, False, gone)) == []
    assert await world.gate.admitted_chats(ADA.id) == []
    assert (ADA.id, "request_gone", "") in await world.log()

    # The private message failed: logged, and the request waits for its timeout.
    (ask,) = await world.gate.on_join_request(GROUP, BOB, 5202)
    forbidden = "Forbidden: bot can't initiate conversation with a user"
    assert await world.gate.on_result(Result(ask, False, forbidden)) == []
    assert (BOB.id, "dm_failed", "") in await world.log()
    assert await world.store.get_pending(GROUP, BOB.id) is not None


async def test_a_request_an_admin_approved_in_telegram_is_not_declined_later(
    world: World,
) -> None:
    await world.chat(timeout=60)
    await world.gate.on_join_request(GROUP, BOB, 5202)
    assert await world.gate.on_member_joined(GROUP, BOB, via_join_request=True) == []
    assert await world.gate.reconcile(T0 + timedelta(seconds=60)) == []
    assert await world.log() == [(BOB.id, "asked", "any"), (BOB.id, "approved", "admin")]
