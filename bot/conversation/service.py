"""Runs the conversation for one update: one user at a time, state loaded and stored around it."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from bot import metrics
from bot.auth.base import CodeExpired, WaitNotifier
from bot.conversation.events import Incoming, Linked, Outcome
from bot.conversation.flow import Conversation
from bot.coordination.locks import LocalLocks, Locks, person
from storage.repos import Changes, Duplicate, LinkRecord, Stale, Store


class ConversationService:
    def __init__(
        self, conversation: Conversation, store: Store, locks: Locks | None = None
    ) -> None:
        self.conversation = conversation
        self.store = store
        # Updates of one user are handled one after another (frameworks run them concurrently,
        # and replicas behind a load balancer too, hence locks shared through Redis there).
        self.locks: Locks = locks or LocalLocks()

    def serial(self, user_id: int) -> AbstractAsyncContextManager[None]:
        """Hold one person's lock: a runner wraps each whole update in it (gate handling too);
        `handle` takes it as well, for hosts that mount the conversation without a runner."""
        return self.locks.hold(person(user_id))

    async def handle(self, incoming: Incoming, notify_wait: WaitNotifier | None = None) -> Outcome:
        """Decide one update and store what it changed, all in one transaction.

        A redelivered update (Telegram resends what it did not see confirmed, a webhook retries)
        is recognised by its id, whatever order updates arrive in, and changes nothing.
        """
        async with self.serial(incoming.person.id):
            loaded = await self.store.load(incoming.person.id, incoming.update_id)
            step = loaded.conversation.step if loaded.conversation else "new"
            if loaded.handled:
                metrics.STEPS.labels(step, "duplicate").inc()
                return Outcome(duplicate=True)
            try:
                outcome, changes = await self.conversation.handle(
                    incoming, loaded.conversation, loaded.link, notify_wait
                )
            except Exception:
                metrics.STEPS.labels(step, "failed").inc()
                raise
            try:
                await self.store.apply(changes)
            except Duplicate:
                # Another replica handled the same delivery first; its answer is the one sent.
                metrics.STEPS.labels(step, "duplicate").inc()
                return Outcome(duplicate=True)
            except Stale:
                # The code was used, or the account erased, between its check and the link:
                # nothing was stored, and the person needs a new code.
                metrics.STEPS.labels(step, "stale").inc()
                return self.conversation.refusal(
                    incoming, loaded.conversation, loaded.link, CodeExpired()
                )
            metrics.STEPS.labels(step, "done").inc()
            _count_sign_in(outcome, changes)
            return outcome


def _count_sign_in(outcome: Outcome, changes: Changes) -> None:
    """A new link stored is a sign-in or a sign-up (one who came back linked stores none)."""
    if isinstance(changes.link, LinkRecord) and any(
        isinstance(event, Linked) for event in outcome.happened
    ):
        (metrics.SIGN_UPS if changes.link.signed_up else metrics.SIGN_INS).inc()
