"""Runs the conversation for one update: one user at a time, state loaded and stored around it."""

from __future__ import annotations

import asyncio
import weakref

from bot.auth.base import WaitNotifier
from bot.conversation.events import Incoming, Outcome
from bot.conversation.flow import Conversation
from storage.repos import Store


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
        async with self._lock(incoming.person.id):
            record, link = await self.store.load(incoming.person.id)
            outcome, changes = await self.conversation.handle(incoming, record, link, notify_wait)
            if changes is not None:
                await self.store.apply(changes)
            return outcome
