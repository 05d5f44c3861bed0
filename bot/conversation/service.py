"""Runs the conversation for one update: one user at a time, state loaded and stored around it."""

from __future__ import annotations

import asyncio
import weakref

from bot.auth.base import CodeExpired, WaitNotifier
from bot.conversation.events import Incoming, Outcome
from bot.conversation.flow import Conversation
from storage.repos import Duplicate, Stale, Store


class ConversationService:
    def __init__(self, conversation: Conversation, store: Store) -> None:
        self.conversation = conversation
        self.store = store
        # Updates of one user are handled one after another (frameworks run them concurrently);
        # idle users' locks vanish with the last reference, so memory stays flat.
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, user_id: int) -> asyncio.Lock:
        lock = self._locks.get(user_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[user_id] = lock
        return lock

    async def handle(self, incoming: Incoming, notify_wait: WaitNotifier | None = None) -> Outcome:
        """Decide one update and store what it changed, all in one transaction.

        A redelivered update (Telegram resends what it did not see confirmed, a webhook retries)
        is recognised by its id, whatever order updates arrive in, and changes nothing.
        """
        async with self._lock(incoming.person.id):
            loaded = await self.store.load(incoming.person.id, incoming.update_id)
            if loaded.handled:
                return Outcome(duplicate=True)
            outcome, changes = await self.conversation.handle(
                incoming, loaded.conversation, loaded.link, notify_wait
            )
            try:
                await self.store.apply(changes)
            except Duplicate:
                # Another replica handled the same delivery first; its answer is the one sent.
                return Outcome(duplicate=True)
            except Stale:
                # The code was used, or the account erased, between its check and the link:
                # nothing was stored, and the person needs a new code.
                return self.conversation.refusal(
                    incoming, loaded.conversation, loaded.link, CodeExpired()
                )
            return outcome
