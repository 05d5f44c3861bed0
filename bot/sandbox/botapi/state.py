"""In-memory state of the simulated Telegram: accounts, bots, chats, messages and update queues."""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .objects import DEFAULT_UPDATES, build
from .rates import RateGuard
from .wire import ApiError, bad_request

if TYPE_CHECKING:
    from .groups import Group, InviteLink, JoinRequest

log = logging.getLogger(__name__)
GETME_FLAGS = {
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}

Clock = Callable[[], float]
Event = dict[str, Any]
Subscriber = Callable[[Event], Awaitable[None] | None]


class Signal:
    """Wakes every waiter on each change; waiters re-check their own condition."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_until(
        self,
        ready: Callable[[], bool],
        timeout: float | None,  # noqa: ASYNC109 - callers pass deadlines they computed
    ) -> bool:
        """True once `ready()` holds; False if `timeout` seconds pass first (None: no limit)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not ready():
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._event.wait(), remaining)
            except TimeoutError:
                return ready()
        return True


@dataclass(eq=False)
class Person:
    """A Telegram account played by a test."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    phone_number: str | None = None
    is_premium: bool = False

    def as_user(self) -> dict[str, Any]:
        return build(
            "User",
            id=self.id,
            is_bot=False,
            first_name=self.first_name,
            last_name=self.last_name,
            username=self.username,
            language_code=self.language_code,
            is_premium=self.is_premium,
        )


@dataclass(eq=False)
class ChatMessage:
    """A message as both sides see it; `payload` is the Bot API Message, kept current on edits."""

    message_id: int
    chat_id: int
    from_bot: bool
    payload: dict[str, Any]
    edited: bool = False
    deleted: bool = False
    author_id: int | None = None  # the bot or person who sent it; None for a channel's own post

    @property
    def text(self) -> str | None:
        value = self.payload.get("text", self.payload.get("caption"))
        return value if isinstance(value, str) else None

    @property
    def buttons(self) -> list[list[dict[str, Any]]]:
        """Rows of inline buttons; reply keyboards belong to the chat, not to a message."""
        markup = self.payload.get("reply_markup") or {}
        rows: list[list[dict[str, Any]]] = markup.get("inline_keyboard", [])
        return rows

    def __repr__(self) -> str:
        who = "bot" if self.from_bot else "user"
        flags = "".join(f" {f}" for f in ("edited", "deleted") if getattr(self, f))
        return f"<{who} #{self.message_id}{flags} {self.text!r}>"


@dataclass(eq=False)
class ChatState:
    """One chat as seen by one bot. Groups and channels reuse it with `title` and their type."""

    id: int
    type: str
    peer: Person | None = None
    title: str | None = None
    username: str | None = None
    messages: dict[int, ChatMessage] = field(default_factory=dict)
    last_message_id: int = 0
    keyboard: list[list[dict[str, Any]]] | None = None
    keyboard_one_time: bool = False
    opened: bool = False  # a bot may write to a private chat only once the user has
    blocked: bool = False
    instance: str = field(default_factory=lambda: str(secrets.randbits(63)))
    signal: Signal = field(default_factory=Signal)

    def as_chat(self) -> dict[str, Any]:
        peer = self.peer
        return build(
            "Chat",
            id=self.id,
            type=self.type,
            title=self.title,
            username=peer.username if peer else self.username,
            first_name=peer.first_name if peer else None,
            last_name=peer.last_name if peer else None,
        )


@dataclass(eq=False)
class PendingUpdate:
    update_id: int
    kind: str
    data: dict[str, Any]
    queue: int  # updates sharing a queue go out one at a time, in order
    duplicate: bool = False
    delivered: bool = False


@dataclass(eq=False)
class Webhook:
    url: str
    secret: str | None
    max_connections: int
    ip_address: str | None
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass(eq=False)
class CallbackState:
    id: str
    user_id: int
    chat_id: int
    created: float
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    answer: dict[str, Any] | None = None


@dataclass
class CallRecord:
    """One method call a bot made, over HTTP or inside a webhook answer."""

    bot_id: int
    method: str
    params: dict[str, Any]
    result: Any = None
    error: ApiError | None = None
    via: str = "http"
    at: float = 0.0  # the world's clock when the call arrived, for rate windows
    chat_id: int | None = None  # the chat the call targets, when it names one

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(eq=False)
class BotState:
    id: int
    token: str
    username: str
    first_name: str
    chats: dict[int, ChatState] = field(default_factory=dict)
    pending: list[PendingUpdate] = field(default_factory=list)
    last_update_id: int = 0
    allowed_updates: list[str] = field(default_factory=list)
    webhook: Webhook | None = None
    commands: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    callbacks: dict[str, CallbackState] = field(default_factory=dict)
    last_update_of: dict[int, PendingUpdate] = field(default_factory=dict)
    poll_generation: int = 0
    signal: Signal = field(default_factory=Signal)
    # People this bot has seen in a chat or a join request: a message to one who never opened
    # the private chat is refused with 403 rather than "chat not found".
    known: set[int] = field(default_factory=set)
    # The latest join request each person sent to a chat this bot manages; its user_chat_id
    # opens the private chat for a while.
    dm_grants: dict[int, JoinRequest] = field(default_factory=dict)
    supports_join_request_queries: bool = False

    def as_user(self, *, me: bool = False) -> dict[str, Any]:
        user = build("User", id=self.id, is_bot=True, first_name=self.first_name,
                     username=self.username)  # fmt: skip
        if not me:
            return user
        # getMe also states the bot's capabilities, false ones included.
        queries = {"supports_join_request_queries": self.supports_join_request_queries}
        return {**user, **GETME_FLAGS, **queries}

    def idle(self) -> bool:
        return not self.pending

    def receives(self, kind: str) -> bool:
        return kind in (set(self.allowed_updates) or DEFAULT_UPDATES)

    def enqueue(self, kind: str, body: dict[str, Any], queue: int, user_id: int) -> None:
        if not self.receives(kind):
            return  # the server drops what a bot did not ask for
        self.last_update_id += 1
        update = PendingUpdate(
            self.last_update_id, kind, {"update_id": self.last_update_id, kind: body}, queue
        )
        self.pending.append(update)
        self.last_update_of[user_id] = update
        self.signal.fire()

    def requeue(self, update: PendingUpdate) -> None:
        self.pending.append(
            PendingUpdate(update.update_id, update.kind, update.data, update.queue, duplicate=True)
        )
        self.signal.fire()


class World:
    """Everything shared by the HTTP side, the method handlers and the simulated users."""

    def __init__(self, clock: Clock | None = None, callback_ttl: float = 15.0) -> None:
        self.clock: Clock = clock or time.time
        self.callback_ttl = callback_ttl
        self.closed = False
        self.bots: dict[int, BotState] = {}
        self.people: dict[int, Person] = {}
        self.calls: list[CallRecord] = []
        self.calls_by_method: dict[str, list[CallRecord]] = {}
        self.call_signal = Signal()
        self.faults: dict[str, list[ApiError]] = {}
        self.rates = RateGuard()
        self.groups: dict[int, Group] = {}
        self.usernames: dict[str, int] = {}  # lower-cased @name of a public group or channel
        self.links: dict[str, InviteLink] = {}
        self.join_queries: dict[str, JoinRequest] = {}
        self._subscribers: list[Subscriber] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def now(self) -> int:
        return int(self.clock())

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def record(self, call: CallRecord) -> None:
        self.calls.append(call)
        self.calls_by_method.setdefault(call.method.lower(), []).append(call)
        self.call_signal.fire()

    def user_dict(self, user_id: int) -> dict[str, Any]:
        """The User object of a person or a bot."""
        person = self.people.get(user_id)
        if person is not None:
            return person.as_user()
        return self.bots[user_id].as_user()

    def emit(self, kind: str, bot: BotState | None, chat: ChatState, **data: Any) -> None:
        """Tell subscribers; `bot` is None for what happens in a group, where every member
        sees the same chat."""
        bot_id = bot.id if bot is not None else None
        event: Event = {"type": kind, "bot_id": bot_id, "chat_id": chat.id, **data}
        chat.signal.fire()
        for callback in list(self._subscribers):
            try:
                outcome = callback(event)
            except Exception:
                log.exception("event subscriber failed")
                continue
            if inspect.isawaitable(outcome):
                task = asyncio.ensure_future(outcome)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def default_bot(self) -> BotState:
        if not self.bots:
            raise LookupError("no bot yet: call create_bot() first")
        return next(iter(self.bots.values()))

    def chat(self, bot: BotState, chat_id: int | str | None) -> ChatState:
        """The chat as this bot may address it. A private chat is there once the user wrote to
        the bot, or while a join request's user_chat_id lets the bot write first."""
        if chat_id is None or chat_id == "":
            raise bad_request("chat_id is empty")
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            key: int | None = self.usernames.get(chat_id[1:].lower())
        else:
            try:
                key = int(chat_id)
            except ValueError:
                key = None
        if key is None:
            raise bad_request("chat not found")
        group = self.groups.get(key)
        if group is not None:
            if bot.id not in group.bot_ids and group.chat.username is None:
                raise bad_request("chat not found")
            return group.chat
        chat = bot.chats.get(key)
        if chat is not None and (chat.opened or chat.messages):
            return chat
        person = self.people.get(key)
        if person is not None and self.may_write_first(bot, key):
            return self.private_chat(bot, person)
        if person is not None and key in bot.known:
            raise ApiError.make(403, "bot can't initiate conversation with a user")
        raise bad_request("chat not found")

    def may_write_first(self, bot: BotState, user_id: int) -> bool:
        request = bot.dm_grants.get(user_id)
        return request is not None and request.opens_private_chat(self.clock())

    def private_chat(self, bot: BotState, person: Person) -> ChatState:
        chat = bot.chats.get(person.id)
        if chat is None:
            chat = bot.chats[person.id] = ChatState(id=person.id, type="private", peer=person)
        return chat

    def post(
        self, bot: BotState, chat: ChatState, sender: Person | None, **fields: Any
    ) -> ChatMessage:
        """Store a new message from `sender` (None: the bot) and tell subscribers."""
        chat.last_message_id += 1
        payload = build(
            "Message",
            message_id=chat.last_message_id,
            from_=sender.as_user() if sender else bot.as_user(),
            chat=chat.as_chat(),
            date=self.now(),
            **fields,
        )
        author = bot.id if sender is None else sender.id
        message = ChatMessage(
            chat.last_message_id, chat.id, sender is None, payload, author_id=author
        )
        chat.messages[message.message_id] = message
        self.emit(
            "message",
            bot,
            chat,
            message_id=message.message_id,
            from_bot=message.from_bot,
            message=payload,
        )
        return message

    def set_keyboard(self, bot: BotState, chat: ChatState, markup: dict[str, Any] | None) -> None:
        rows = None if markup is None else markup.get("keyboard")
        chat.keyboard = rows
        chat.keyboard_one_time = bool(markup and markup.get("one_time_keyboard"))
        self.emit("keyboard", bot, chat, keyboard=rows)
