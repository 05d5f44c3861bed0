"""The conversation service over a real store: what one update stores, all or nothing."""

from __future__ import annotations

from sqlalchemy import false, literal, select

from bot.auth.base import Challenge, Requester, VerifiedIdentity
from bot.conversation.events import Incoming, Text
from bot.conversation.flow import Conversation
from bot.conversation.service import ConversationService
from storage.direct import Query
from storage.engine import Database
from storage.repos import Must, Stale, Store, Work
from storage.vault import Vault
from tests.conversation.test_flow import ANN, NOW, ScriptedBackend

# A statement that finds no row: what the work was to make final is gone.
_NOTHING = Query(select(literal(1)).where(false()))


class StaleOnCommit(ScriptedBackend):
    """The code checks out, but by the time the link is stored it has been used elsewhere."""

    async def verify(self, challenge: Challenge, code: str, who: Requester) -> VerifiedIdentity:
        commit = Work((Must(_NOTHING, Stale("used meanwhile")),), {})
        return VerifiedIdentity("user_1", challenge.identifier, created=True, commit=commit)


async def test_a_code_used_up_while_its_link_was_stored_links_nothing(
    database: Database,
) -> None:
    store = Store(database.sessions, Vault("a-test-secret-that-is-long-enough-0123"))
    conversation = Conversation(StaleOnCommit(), app_name="Acme", clock=lambda: NOW)
    service = ConversationService(conversation, store)
    await service.handle(Incoming(ANN, Text("jane@example.com"), 1))
    outcome = await service.handle(Incoming(ANN, Text("123456"), 2))
    assert [r.text for r in outcome.replies] == ["That code has expired."]
    assert outcome.happened == []
    loaded = await store.load(ANN.id, 2)
    assert loaded.link is None and not loaded.handled
    assert loaded.conversation is not None and loaded.conversation.step == "code"


async def test_a_redelivered_update_is_skipped_whatever_came_between(database: Database) -> None:
    store = Store(database.sessions, Vault("a-test-secret-that-is-long-enough-0123"))
    backend = ScriptedBackend()
    service = ConversationService(Conversation(backend, app_name="Acme", clock=lambda: NOW), store)
    await service.handle(Incoming(ANN, Text("jane@example.com"), 7))
    await service.handle(Incoming(ANN, Text("/help"), 9))
    again = await service.handle(Incoming(ANN, Text("jane@example.com"), 7))
    earlier = await service.handle(Incoming(ANN, Text("hello"), 8))  # late, not a duplicate
    assert again.duplicate and not again.replies
    assert not earlier.duplicate and earlier.replies
    assert backend.calls == ["start jane@example.com"]
