"""Outgoing Bot API calls kept under Telegram's limits: callers wait their turn, none is dropped.

Telegram's Bot FAQ: about 30 messages a second overall, about one a second into one private chat,
at most 20 a minute into one group or channel. Past those it answers 429 with `retry_after`, and
a bot that keeps pushing is held back longer. So every call that Telegram counts takes a slot
first, in lanes:

- the overall lane, shared by every counted call;
- one lane per chat for messages: private chats (positive ids) at the private rate, groups and
  channels (negative ids, or an `@username`, which only public groups and channels have) at the
  group rate.

Which calls count (`cost_of`):
- Messages — anything that puts a message into a chat or changes one (send*, copy*, forward*,
  edit*, stopPoll…) — count against their chat and overall. Telegram's limits are about these,
  and edits count in groups too.
- Chat administration — approving or declining join requests, restricting, banning and unbanning
  members, invite links, deleting or pinning messages — counts overall only. It posts no message
  of the bot's, so a chat's message allowance is not spent on it (20 a minute would make a raid
  of 1,000 join requests take 50 minutes); but Telegram floods bots that do such things in bulk,
  and one 429 there would hold the bot's messages back as well, so a burst of them is paced with
  the rest.
- Everything else never waits: reading (getMe, getChat, getChatMember…), receiving updates
  (getUpdates, setWebhook), settings, chat actions, and answers to queries that Telegram wants
  within seconds — answerCallbackQuery (the button's spinner) and answerChatJoinRequestQuery (10 s
  or the request is lost). Telegram does not count them as messages.

A slot is held until the call's answer arrives, and a window starts when the answer came: the
server saw the call somewhere between our send and its answer, so measured from the answer, no
window on Telegram's side can hold more than the limit, however the network delays a call. (It
costs one round trip per window: about 30 messages in 1.05 s instead of 1 s.)

Fair: each lane is first come, first served; a message takes its chat's slot, then queues for the
overall one, so a busy group waits its turn behind everyone else rather than crowding them out.
Waiting is sleeping until the lane opens or a call in flight ends; nothing polls.

A 429 that comes anyway (another process using the token, limits lower than configured) pauses
the call's chat — or, for a call naming no chat, every counted call — for `retry_after` seconds
(`penalise`); a chat's pause holds its administration calls too.

`Limiter` is the seam for several replicas sharing one token: `bot.coordination.limiter` keeps
the same lanes in Redis; `LocalLimiter` is the one for a single process. Its memory follows what
is active: a chat's lane is forgotten once its window has passed with nothing waiting.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from bot import metrics

if TYPE_CHECKING:
    from bot.config import Settings

ChatId = int | str  # as the Bot API takes it: a numeric id, or "@username" of a public chat
SECOND, MINUTE = 1.0, 60.0
MAX_COUNT = 100_000
MAX_PER = 3600.0  # seconds; Telegram's own windows are a second and a minute
_RATE = re.compile(r"^\s*(\d+)\s*(?:/\s*(\d+(?:\.\d*)?|\.\d+)\s*s?)?\s*$", re.IGNORECASE)


class Cost(Enum):
    FREE = "free"  # never waits
    BOT = "bot"  # the overall lane (and a pause of its chat)
    CHAT = "chat"  # its chat's lane and the overall lane


MESSAGES = frozenset({
    "sendMessage", "sendRichMessage", "sendMessageDraft", "sendRichMessageDraft", "sendPhoto",
    "sendLivePhoto", "sendAudio", "sendDocument", "sendVideo", "sendAnimation", "sendVoice",
    "sendVideoNote", "sendPaidMedia", "sendMediaGroup", "sendLocation", "sendVenue",
    "sendContact", "sendPoll", "sendChecklist", "sendDice", "sendSticker", "sendInvoice",
    "sendGame", "sendGift", "copyMessage", "copyMessages", "forwardMessage", "forwardMessages",
    "editMessageText", "editMessageCaption", "editMessageMedia", "editMessageReplyMarkup",
    "editMessageLiveLocation", "editMessageChecklist", "stopMessageLiveLocation", "stopPoll",
    "editEphemeralMessageText", "editEphemeralMessageCaption", "editEphemeralMessageMedia",
    "editEphemeralMessageReplyMarkup",
})  # fmt: skip
ADMINISTRATION = frozenset({
    "approveChatJoinRequest", "declineChatJoinRequest", "banChatMember", "unbanChatMember",
    "restrictChatMember", "promoteChatMember", "banChatSenderChat", "unbanChatSenderChat",
    "setChatPermissions", "createChatInviteLink", "editChatInviteLink", "revokeChatInviteLink",
    "exportChatInviteLink", "createChatSubscriptionInviteLink", "editChatSubscriptionInviteLink",
    "deleteMessage", "deleteMessages", "pinChatMessage", "unpinChatMessage",
    "unpinAllChatMessages",
})  # fmt: skip


def cost_of(method: str) -> Cost:
    """What a Bot API method (its API name, e.g. "sendMessage") spends."""
    if method in MESSAGES:
        return Cost.CHAT
    if method in ADMINISTRATION:
        return Cost.BOT
    return Cost.FREE


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `count` calls in any `per` seconds."""

    count: int
    per: float

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_COUNT:
            raise ValueError(f"expected 1 to {MAX_COUNT} calls per window")
        if not 0 < self.per <= MAX_PER:
            raise ValueError(f"expected a window of more than 0 and at most {MAX_PER:g} seconds")

    @classmethod
    def parse(cls, text: str, per: float) -> Rate:
        """`N` (N per `per` seconds) or `N/S` (N per S seconds; `N/Ss` too)."""
        match = _RATE.match(text)
        if match is None:
            raise ValueError(f"expected N or N/SECONDS, e.g. 20 or 20/60, not {text!r}")
        seconds = float(match.group(2)) if match.group(2) is not None else per
        return cls(int(match.group(1)), seconds)

    def __str__(self) -> str:
        return f"{self.count}/{self.per:g}s"


@dataclass(frozen=True, slots=True)
class Rates:
    total: Rate = Rate(30, SECOND)
    private: Rate = Rate(1, SECOND)
    group: Rate = Rate(20, MINUTE)


class Limiter(Protocol):
    def slot(self, chat_id: ChatId | None, cost: Cost) -> AbstractAsyncContextManager[None]:
        """Entered once the call may be sent; left when its answer (or failure) is back.
        `chat_id` is the chat the call targets, None when it names none."""
        ...

    async def penalise(self, chat_id: ChatId | None, seconds: float) -> None:
        """Telegram answered 429: send nothing counted into this chat (None: at all) for
        `seconds`."""
        ...


def is_private(chat_id: ChatId) -> bool:
    return isinstance(chat_id, int) and chat_id > 0


def chat_key(chat_id: ChatId) -> ChatId:
    """One key per chat, whether its id came as a number or as digits in a string."""
    if isinstance(chat_id, str) and re.fullmatch(r"-?\d+", chat_id):
        return int(chat_id)
    return chat_id.lower() if isinstance(chat_id, str) else chat_id


class _Lane:
    __slots__ = ("busy", "changed", "done", "key", "paused_until", "queue", "rate")

    def __init__(self, key: ChatId | None, rate: Rate) -> None:
        self.key = key
        self.rate = rate
        self.done: deque[float] = deque()  # when recent calls' answers came, ascending
        self.busy = 0  # calls holding a slot: sent, or about to be
        self.queue: deque[asyncio.Future[None]] = deque()  # callers waiting, first come first
        self.changed: asyncio.Future[None] | None = None  # the head's wait for a call to end
        self.paused_until = -math.inf

    def opens_at(self, now: float) -> float | None:
        """When the next slot is free (`now` if it is), or None until a call in flight ends."""
        while self.done and self.done[0] + self.rate.per <= now:
            self.done.popleft()
        if self.paused_until > now:
            return self.paused_until
        # Slots to free before one is: the (over+1)-th oldest answer has to leave the window.
        over = len(self.done) + self.busy - self.rate.count
        if over < 0:
            return now
        if over < len(self.done):
            return self.done[over] + self.rate.per
        return None

    def expiry(self) -> float:
        """When this lane no longer constrains anyone, if nothing else happens."""
        last = self.done[-1] + self.rate.per if self.done else -math.inf
        return max(last, self.paused_until)

    def idle(self, now: float) -> bool:
        return not self.busy and not self.queue and self.expiry() <= now


class LocalLimiter:
    """The limiter of one process."""

    def __init__(
        self,
        rates: Rates | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rates = rates or Rates()
        self._clock = clock
        self._sleep = sleep
        self._all = _Lane(None, self.rates.total)
        self._chats: dict[ChatId, _Lane] = {}
        # (expiry, n, chat) for each lane that went quiet: popped once due, and the lane dropped
        # if it is still quiet, so memory follows the chats active within their window.
        self._quiet: list[tuple[float, int, ChatId]] = []
        self._order = itertools.count()

    @property
    def chats_held(self) -> int:
        """Chats this limiter keeps state for (waiting, in flight, or within their window)."""
        return len(self._chats)

    def slot(self, chat_id: ChatId | None, cost: Cost) -> AbstractAsyncContextManager[None]:
        return self._slot(None if chat_id is None else chat_key(chat_id), cost)

    @asynccontextmanager
    async def _slot(self, chat_id: ChatId | None, cost: Cost) -> AsyncIterator[None]:
        if cost is Cost.FREE:
            yield
            return
        self._forget_quiet()
        started = self._clock()
        held: list[_Lane] = []
        try:
            if chat_id is not None:
                if cost is Cost.CHAT:
                    lane = self._chat(chat_id)
                    await self._take(lane)
                    held.append(lane)
                else:
                    await self._unpaused(chat_id)
            await self._take(self._all)
            held.append(self._all)
        except BaseException:
            for lane in held:
                self._end(lane, answered=False)
            raise
        metrics.LIMITER_WAITS.labels(cost.value).observe(self._clock() - started)
        try:
            yield
        finally:
            for lane in held:
                self._end(lane, answered=True)

    async def penalise(self, chat_id: ChatId | None, seconds: float) -> None:
        metrics.TELEGRAM_429.labels(metrics.scope_of(chat_id)).inc()
        self._forget_quiet()
        lane = self._all if chat_id is None else self._chat(chat_key(chat_id))
        lane.paused_until = max(lane.paused_until, self._clock() + max(0.0, seconds))
        self._settled(lane)

    def _chat(self, chat_id: ChatId) -> _Lane:
        lane = self._chats.get(chat_id)
        if lane is None:
            rate = self.rates.private if is_private(chat_id) else self.rates.group
            lane = self._chats[chat_id] = _Lane(chat_id, rate)
        return lane

    async def _take(self, lane: _Lane) -> None:
        if not lane.queue and lane.opens_at(now := self._clock()) == now:
            lane.busy += 1
            return
        turn = asyncio.get_running_loop().create_future()
        lane.queue.append(turn)
        try:
            if lane.queue[0] is not turn:
                await turn
            while (at := lane.opens_at(now := self._clock())) != now:
                if at is None:
                    lane.changed = asyncio.get_running_loop().create_future()
                    await lane.changed
                else:
                    await self._sleep(at - now)
            lane.busy += 1
        finally:
            head = lane.queue[0] is turn
            lane.queue.remove(turn)
            if head and lane.queue and not lane.queue[0].done():
                lane.queue[0].set_result(None)  # the next caller's turn
            self._settled(lane)

    async def _unpaused(self, chat_id: ChatId) -> None:
        while (lane := self._chats.get(chat_id)) is not None:
            now = self._clock()
            if lane.paused_until <= now:
                return
            await self._sleep(lane.paused_until - now)

    def _end(self, lane: _Lane, *, answered: bool) -> None:
        lane.busy -= 1
        if answered:
            lane.done.append(self._clock())
        if lane.changed is not None and not lane.changed.done():
            lane.changed.set_result(None)
        lane.changed = None
        self._settled(lane)

    def _settled(self, lane: _Lane) -> None:
        if lane.key is not None and not lane.busy and not lane.queue:
            heapq.heappush(self._quiet, (lane.expiry(), next(self._order), lane.key))

    def _forget_quiet(self) -> None:
        now = self._clock()
        while self._quiet and self._quiet[0][0] <= now:
            _, _, key = heapq.heappop(self._quiet)
            lane = self._chats.get(key)
            if lane is not None and lane.idle(now):
                del self._chats[key]


def rates_from(settings: Settings) -> Rates:
    return Rates(
        total=Rate.parse(settings.telegram_rate_total, SECOND),
        private=Rate.parse(settings.telegram_rate_private, SECOND),
        group=Rate.parse(settings.telegram_rate_group, MINUTE),
    )


def limiter_for(settings: Settings) -> Limiter:
    """This process's own limiter, at the rates the settings ask for (replicas sharing a Redis
    use `bot.coordination.limiter.RedisLimiter` instead)."""
    return LocalLimiter(rates_from(settings))
