"""The private chat, whatever the framework: one incoming event through the conversation, and
its `Outcome` carried out through Telegram calls."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.auth.base import WaitNotifier
from bot.calls import CallFailed, Calls
from bot.conversation import texts
from bot.conversation.events import Command, Event, Happened, Incoming, Person, Reply, Text
from bot.conversation.service import ConversationService

log = logging.getLogger(__name__)

Tell = Callable[[list[Happened]], Awaitable[None]]
MAX_TEXT = 4096  # Telegram's own limit; anything longer is not a message the bot could get


def text_event(text: str) -> Event:
    """A message's text as the conversation reads it: a command, or text."""
    if text.startswith("/"):
        head, _, args = text[:MAX_TEXT].partition(" ")
        name = head[1:].split("@", 1)[0].lower()
        if name:
            return Command(name, args.strip())
    return Text(text[:MAX_TEXT])


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an event came from, for the calls that answer it."""

    chat_id: int
    message_id: int | None = None  # the person's message, or the one whose button was pressed
    query_id: str | None = None  # a button press, which must be answered
    buttons_shown: bool = False  # the pressed message still shows its buttons


def press_origin(query: Any) -> Origin:
    """A button press's origin. Both frameworks name a query's parts as the Bot API does, and
    neither gives a message too old to reach (inaccessible) a keyboard, so one reading serves
    both."""
    msg = query.message
    if msg is None:
        return Origin(query.from_user.id, query_id=query.id)
    shown = getattr(msg, "reply_markup", None) is not None
    return Origin(msg.chat.id, msg.message_id, query.id, buttons_shown=shown)


def failure_origin(update: Any) -> Origin | None:
    """Where to apologise for an update whose handling failed (None: nowhere to)."""
    if update.callback_query is not None:
        return press_origin(update.callback_query)
    message = update.message
    if message is not None and message.chat.type == "private":
        return Origin(message.chat.id, message.message_id)
    return None


class PrivateChat:
    def __init__(
        self, service: ConversationService, calls: Calls, tell: Tell, *, hosted: bool = False
    ) -> None:
        self.service = service
        self.calls = calls
        self.tell = tell  # what the conversation stored, for the gate
        # Inside a host bot, the private chat is shared with the host's own handlers.
        self.hosted = hosted

    async def handle(self, incoming: Incoming, origin: Origin) -> bool:
        """Answer the event; False when it is not Passgram's to answer (hosted only)."""
        if self.hosted and not await self._ours(incoming):
            return False
        calls = self.calls
        outcome = await self.service.handle(incoming, self._notifier(origin, incoming.person))
        if origin.query_id is not None:
            await _quietly(calls.answer_press(origin.query_id, outcome.toast))
            if outcome.clear_pressed and origin.buttons_shown and origin.message_id is not None:
                await _quietly(calls.clear_buttons(origin.chat_id, origin.message_id))
        elif outcome.delete_incoming and origin.message_id is not None:
            await _quietly(calls.delete(origin.chat_id, origin.message_id))
        for reply in outcome.replies:
            await calls.send(origin.chat_id, reply)
        await self.tell(outcome.happened)
        return True

    async def _ours(self, incoming: Incoming) -> bool:
        """In a host bot: Passgram's commands, and anything else only while a sign-in (or an
        erasure) is under way; the rest is the host's."""
        event = incoming.event
        if isinstance(event, Command):
            return self.service.conversation.meant(event) is not None
        loaded = await self.service.store.load(incoming.person.id)
        return loaded.conversation is not None

    async def apologise(self, origin: Origin, language_code: str | None) -> None:
        """After a failure: every update gets an answer, a button press included (its spinner
        must stop)."""
        if origin.query_id is not None:
            await _quietly(self.calls.answer_press(origin.query_id, None))
        text = texts.t(texts.language_for(language_code), "internal_error")
        await _quietly(self.calls.send(origin.chat_id, Reply(text)))

    def _notifier(self, origin: Origin, who: Person) -> WaitNotifier:
        """Tells a person who has to wait (a backend pacing its calls) how long."""

        async def notify_wait(seconds: float) -> None:
            lang = texts.language_for(who.language_code)
            text = texts.t(lang, "pacing", wait=texts.duration(seconds))
            await self.calls.send(origin.chat_id, Reply(text))

        return notify_wait


async def _quietly(call: Awaitable[object]) -> None:
    """Best-effort calls (delete a code message, answer a button): a failure changes nothing."""
    try:
        await call
    except CallFailed as exc:
        log.info("best-effort call failed: %s", exc.message)
