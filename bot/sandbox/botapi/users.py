"""Simulated Telegram users: what a test does with its thumbs, and what it reads on screen."""

from __future__ import annotations

import asyncio
import copy
import re
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import groups
from .groups import JoinRequest, Refused
from .objects import build, command_entities
from .state import BotState, CallbackState, ChatMessage, ChatState, Person, World

if TYPE_CHECKING:
    from .chats import SimChat

# The waits below take a `timeout` argument on purpose: `await alice.next_message(timeout=5)`
# reads better in a test than an `asyncio.timeout` block around every step.


_DEEP_LINK = re.compile(r"https://t\.me/([A-Za-z0-9_]{3,32})\?start=([A-Za-z0-9_-]{0,64})")


def _group_of(where: SimChat | str) -> groups.Group | None:
    return None if isinstance(where, str) else where.group


def _url_of(where: SimChat | str) -> str | None:
    return where if isinstance(where, str) else None


def _asked(request: dict[str, Any], whose: str, kind: str) -> frozenset[str]:
    """The admin rights a request_chat button asks of the user or of the bot."""
    asked = request.get(f"{whose}_administrator_rights") or {}
    return frozenset(k for k, v in asked.items() if v) & frozenset(groups.rights_for(kind))


class NoAnswer(AssertionError, TimeoutError):
    """The bot did not do what a test waited for; the message says what it did instead."""


class SimUser:
    """One account talking to one bot in a private chat. `with_bot` gives the same account
    talking to another bot."""

    def __init__(self, world: World, person: Person, bot_id: int | None = None) -> None:
        self.world = world
        self.person = person
        self._bot_id = bot_id
        self._seen = 0  # id of the last bot message handed out by next_message

    def __repr__(self) -> str:
        return f"<SimUser {self.person.first_name} id={self.id}>"

    @property
    def id(self) -> int:
        return self.person.id

    @property
    def first_name(self) -> str:
        return self.person.first_name

    @property
    def phone_number(self) -> str | None:
        return self.person.phone_number

    @property
    def bot(self) -> BotState:
        return self.world.bots[self._bot_id] if self._bot_id else self.world.default_bot()

    @property
    def chat(self) -> ChatState:
        """The private chat with the bot; the bot can write to it once the user has."""
        return self.world.private_chat(self.bot, self.person)

    @property
    def keyboard(self) -> list[list[dict[str, Any]]] | None:
        """The reply keyboard under the input field, or None when there is none."""
        return self.chat.keyboard

    @property
    def history(self) -> list[ChatMessage]:
        return list(self.chat.messages.values())

    def with_bot(self, token: str) -> SimUser:
        bot_id = int(token.split(":", 1)[0])
        if bot_id not in self.world.bots:
            raise LookupError(f"no bot with token {token!r}")
        return SimUser(self.world, self.person, bot_id)

    # --- sending ---------------------------------------------------------------------------

    def _send(self, **fields: Any) -> ChatMessage:
        bot, chat = self.bot, self.chat
        chat.opened = True
        message = self.world.post(bot, chat, self.person, **fields)
        bot.enqueue("message", copy.deepcopy(message.payload), chat.id, self.id)
        return message

    async def send_text(self, text: str) -> ChatMessage:
        return self._send(text=text, entities=command_entities(text))

    async def start(self, payload: str | None = None) -> ChatMessage:
        """What the Start button or a t.me/<bot>?start=<payload> link sends."""
        return await self.send_text(f"/start {payload}" if payload else "/start")

    async def follow(self, url: str) -> ChatMessage:
        """Open a t.me/<bot>?start=<payload> link, as tapping a URL button with it does: the
        app opens that bot's private chat and sends /start with the payload."""
        match = _DEEP_LINK.fullmatch(url)
        if match is None:
            raise ValueError(f"{url!r} is not a link that starts a bot")
        name = match.group(1).lower()
        bot = next((b for b in self.world.bots.values() if b.username.lower() == name), None)
        if bot is None:
            raise LookupError(f"no bot @{match.group(1)}")
        return await SimUser(self.world, self.person, bot.id).start(match.group(2))

    async def open_button(self, message: ChatMessage, text: str) -> ChatMessage:
        """Tap the URL button with this text on a message (in a group, a channel or a private
        chat) that starts a bot."""
        url = next(
            (
                b.get("url")
                for row in message.buttons
                for b in row
                if b.get("text") == text and b.get("url")
            ),
            None,
        )
        if url is None:
            shown = [b.get("text") for row in message.buttons for b in row]
            raise LookupError(f"{message!r} has no URL button {text!r}; it shows {shown}")
        return await self.follow(str(url))

    async def send_contact(
        self,
        phone_number: str | None = None,
        user_id: int | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> ChatMessage:
        """A shared contact; `phone_number` defaults to the user's own. Pass `user_id=self.id`
        for one's own contact, another id or None for someone else's."""
        phone = phone_number or self.person.phone_number
        if phone is None:
            raise ValueError(f"{self!r} has no phone_number; pass one")
        contact = build(
            "Contact",
            phone_number=phone,
            user_id=user_id,
            first_name=first_name or self.person.first_name,
            last_name=last_name or (None if first_name else self.person.last_name),
        )
        return self._send(contact=contact)

    async def send_sticker(self, emoji: str = "👍") -> ChatMessage:
        file_id = secrets.token_urlsafe(24)
        sticker = build(
            "Sticker",
            file_id=file_id,
            file_unique_id=file_id[:16],
            type="regular",
            width=512,
            height=512,
            is_animated=False,
            is_video=False,
            emoji=emoji,
        )
        return self._send(sticker=sticker)

    async def send_photo(self, caption: str | None = None) -> ChatMessage:
        file_id = secrets.token_urlsafe(24)
        photo = [
            build(
                "PhotoSize",
                file_id=f"{file_id}{size}",
                file_unique_id=f"{file_id[:12]}{size}",
                width=size,
                height=size,
            )
            for size in (90, 320, 800)
        ]
        return self._send(photo=photo, caption=caption)

    async def tap(self, text: str) -> ChatMessage:
        """Press a reply-keyboard button: sends its text, or the user's contact for a
        request_contact button."""
        rows = self.keyboard or []
        button = next((b for row in rows for b in row if b.get("text") == text), None)
        if button is None:
            shown = [b.get("text") for row in rows for b in row]
            raise LookupError(f"{self!r}: no keyboard button {text!r}; keyboard shows {shown}")
        if self.chat.keyboard_one_time:
            self.world.set_keyboard(self.bot, self.chat, None)
        if button.get("request_contact"):
            return await self.send_contact(user_id=self.id)
        return await self.send_text(text)

    async def share_chat(self, text: str, where: SimChat) -> ChatMessage:
        """Press a request_chat keyboard button and pick `where`. The picker offers only chats
        that fit the button (a channel or not, this user an admin with the rights it names);
        the bot is made an admin with the rights it asked for when it lacks them (its
        my_chat_member follows), then gets the chat_shared message."""
        rows = self.keyboard or []
        button = next((b for row in rows for b in row if b.get("text") == text), None)
        request = button.get("request_chat") if button else None
        if not isinstance(request, dict):
            raise LookupError(f"{self!r}: no request_chat button {text!r}")
        group, world, bot = where.group, self.world, self.bot
        now = world.now()
        if bool(request.get("chat_is_channel")) != (group.kind == "channel"):
            raise ValueError(f"the picker of {text!r} does not offer {where!r}")
        me = group.member(self.id, now)
        if not me.is_admin or not all(me.can(r) for r in _asked(request, "user", group.kind)):
            raise ValueError(f"the picker of {text!r} does not offer {where!r} to {self!r}")
        wanted = _asked(request, "bot", group.kind)
        held = group.member(bot.id, now)
        if wanted and not all(held.can(r) for r in wanted):
            if not me.can("can_promote_members"):
                raise Refused("CHAT_ADMIN_REQUIRED")
            rights = groups.checked_rights(group.kind, held.rights | wanted)
            promoted = groups.Member(bot.id, "administrator", rights=rights, promoted_by=self.id)
            groups.change(world, group, promoted, self.id)
        if self.chat.keyboard_one_time:
            world.set_keyboard(bot, self.chat, None)
        shared = build(
            "ChatShared",
            request_id=request.get("request_id", 0),
            chat_id=group.id,
            title=group.chat.title if request.get("request_title") else None,
            username=group.chat.username if request.get("request_username") else None,
        )
        return self._send(chat_shared=shared)

    async def resend_last_update(self) -> None:
        """Deliver this user's last update once more under the same update_id."""
        bot = self.bot
        update = bot.last_update_of.get(self.id)
        if update is None:
            raise LookupError(f"{self!r} has sent nothing to {bot.username}")
        bot.requeue(update)

    def block(self, blocked: bool = True) -> None:
        """Block (or unblock) the bot: sending to this chat then fails with 403."""
        self.chat.blocked = blocked

    # --- groups and channels ---------------------------------------------------------------

    async def ask_to_join(self, where: SimChat | str, *, bio: str | None = None) -> JoinRequest:
        """Request to join a chat (through its public name or primary link) or through an
        invite link; the administrators, the bot among them, decide. Asking again while a
        request waits returns the waiting one."""
        group, link, asks = groups.entrance(self.world, _group_of(where), _url_of(where))
        if not asks:
            raise ValueError(f"{where!r} lets people in directly: join() it")
        return groups.ask(self.world, group, self.person, link, bio)

    async def join(self, where: SimChat | str) -> None:
        """Join a chat (through its public name or primary link) or through an invite link
        that needs no approval. Raises Refused as the app would (banned, already in, link
        expired)."""
        group, link, asks = groups.entrance(self.world, _group_of(where), _url_of(where))
        if asks:
            raise ValueError(f"{where!r} needs an administrator's approval: ask_to_join() it")
        groups.join(self.world, group, self.person, link)

    async def say(
        self,
        where: SimChat,
        text: str,
        *,
        anonymous: bool = False,
        reply_to: ChatMessage | None = None,
    ) -> ChatMessage:
        """Write in a group (or post in a channel one administers). `anonymous`: an
        administrator posting as the group. Raises Refused (CHAT_WRITE_FORBIDDEN) when the
        server would not take the message: not in the chat, or restricted."""
        group = where.group
        world = self.world
        if not group.may_write(self.id, world.now()):
            raise Refused("CHAT_WRITE_FORBIDDEN")
        if anonymous and not group.member(self.id, world.now()).is_admin:
            raise ValueError(f"{self!r} is not an administrator of {group.chat.title!r}")
        replied = None
        if reply_to is not None:
            replied = {k: v for k, v in reply_to.payload.items() if k != "reply_to_message"}
        return groups.post(
            world,
            group,
            self.id,
            anonymous=anonymous,
            text=text,
            entities=command_entities(text),
            reply_to_message=replied,
        )

    async def leave(self, where: SimChat) -> None:
        groups.leave(self.world, where.group, self.person)

    # --- buttons and answers ---------------------------------------------------------------

    async def press(
        self,
        button: str,
        timeout: float = 5.0,  # noqa: ASYNC109
        *,
        message_id: int | None = None,
    ) -> str | None:
        """Press the inline button with this text (or callback data) on the newest bot message
        showing it, or on message `message_id` when given (a client presses the button it
        shows, not the newest like it); returns the bot's answerCallbackQuery text once it
        answers."""
        bot, chat = self.bot, self.chat
        found = next(
            (
                (message, b)
                for message in reversed(self.history)
                if message.from_bot and not message.deleted
                if message_id is None or message.message_id == message_id
                for row in message.buttons
                for b in row
                if button in (b.get("text"), b.get("callback_data"))
            ),
            None,
        )
        if found is None:
            shown = [
                b.get("text") for m in self.history if not m.deleted for r in m.buttons for b in r
            ]
            raise LookupError(f"{self!r}: no inline button {button!r}; chat shows {shown}")
        message, pressed = found
        if "callback_data" not in pressed:
            raise ValueError(f"{self!r}: button {button!r} opens something, it has no callback")
        if not bot.receives("callback_query"):
            raise NoAnswer(f"{bot.username} does not take callback_query updates (allowed_updates)")
        query = CallbackState(str(secrets.randbits(63)), self.id, chat.id, self.world.clock())
        bot.callbacks[query.id] = query
        body = build(
            "CallbackQuery",
            id=query.id,
            from_=self.person.as_user(),
            message=copy.deepcopy(message.payload),
            chat_instance=chat.instance,
            data=pressed["callback_data"],
        )
        # The server queues callback queries per user, apart from the user's messages.
        bot.enqueue("callback_query", body, self.id + (3 << 33), self.id)
        try:
            await asyncio.wait_for(query.answered.wait(), timeout)
        except TimeoutError:
            raise NoAnswer(
                f"{self!r} pressed {button!r} but the bot did not answer the callback query "
                f"within {timeout} s. {self._report()}"
            ) from None
        answer = query.answer or {}
        return answer.get("text")

    async def next_message(self, timeout: float = 5.0) -> ChatMessage:  # noqa: ASYNC109
        """The next new message the bot sent to this chat (edits are not new messages)."""
        message = await self.wait_for(
            lambda m: m.from_bot and m.message_id > self._seen, timeout, "new bot message"
        )
        self._seen = message.message_id
        return message

    async def wait_for(
        self,
        match: Callable[[ChatMessage], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
        what: str = "a message",
    ) -> ChatMessage:
        """The first message in the chat matching `match`, waiting for it if need be."""
        chat = self.chat

        def find() -> ChatMessage | None:
            return next((m for m in chat.messages.values() if match(m)), None)

        if not await chat.signal.wait_until(lambda: find() is not None, timeout):
            raise NoAnswer(f"{self!r} got no {what} within {timeout} s. {self._report()}")
        found = find()
        assert found is not None
        return found

    def _report(self) -> str:
        sent = [m for m in self.history if m.from_bot]
        failed = [
            f"{c.method} -> {c.error.description}"
            for c in self.world.calls
            if c.error is not None and c.bot_id == self.bot.id and c.method != "getUpdates"
        ]
        return (
            f"Bot messages in this chat: {sent or 'none'}. "
            f"Failed bot calls (last 10): {failed[-10:] or 'none'}."
        )
