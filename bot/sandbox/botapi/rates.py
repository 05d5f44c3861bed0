"""Telegram's message limits: how close a bot came to them, and (when asked) a 429 past them.

The Bot FAQ's numbers: about 30 messages a second across chats, one a second into one private
chat, 20 a minute into one group. A message here is every call that puts a new message into a
chat or edits one (edits count against a group's limit, as bot authors report); calls the server
refused do not count, as nothing was sent.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .wire import ApiError

if TYPE_CHECKING:
    from .state import CallRecord

MESSAGE_METHODS = frozenset({
    "sendmessage", "sendphoto", "senddocument", "sendsticker", "sendcontact", "sendaudio",
    "sendvideo", "sendvoice", "sendanimation", "sendvideonote", "sendlocation", "sendvenue",
    "sendpoll", "senddice", "sendmediagroup", "copymessage", "forwardmessage",
    "editmessagetext", "editmessagereplymarkup", "editmessagecaption", "editmessagemedia",
})  # fmt: skip
SECOND, MINUTE = 1.0, 60.0


@dataclass(frozen=True)
class RateLimits:
    """Messages allowed per window: overall and per private chat in any second, per group or
    channel in any minute."""

    total: int = 30
    private: int = 1
    group: int = 20


TELEGRAM_LIMITS = RateLimits()


@dataclass(frozen=True)
class RateWindows:
    """The most messages a bot sent in any window of each kind, and the chat where it did."""

    overall: int = 0
    private: int = 0
    group: int = 0
    busiest_private: int | None = None
    busiest_group: int | None = None

    def within(self, limits: RateLimits) -> bool:
        return (
            self.overall <= limits.total
            and self.private <= limits.private
            and self.group <= limits.group
        )


def counts(call: CallRecord) -> bool:
    return call.error is None and call.method.lower() in MESSAGE_METHODS


def busiest(times: list[float], window: float) -> int:
    """The most of these sorted instants inside any half-open interval `window` long."""
    best = 0
    for i, start in enumerate(times):
        best = max(best, bisect_left(times, start + window, i) - i)
    return best


def rate_windows(calls: Iterable[CallRecord], bot_id: int | None = None) -> RateWindows:
    """How close the sent messages came to Telegram's limits (one bot's, or all bots')."""
    overall: list[float] = []
    per_chat: dict[int, list[float]] = {}
    for call in calls:
        if (bot_id is None or call.bot_id == bot_id) and counts(call):
            overall.append(call.at)
            if call.chat_id is not None:
                per_chat.setdefault(call.chat_id, []).append(call.at)
    overall.sort()
    result = {"overall": busiest(overall, SECOND)}
    for chat_id, times in per_chat.items():
        times.sort()
        kind, window = ("private", SECOND) if chat_id > 0 else ("group", MINUTE)
        peak = busiest(times, window)
        if peak > result.get(kind, 0):
            result[kind] = peak
            result[f"busiest_{kind}"] = chat_id
    return RateWindows(**result)


@dataclass
class _Recent:
    window: float
    limit: int
    times: deque[float] = field(default_factory=deque)

    def wait(self, now: float) -> float:
        """Seconds until one more message fits, 0 when it fits now."""
        while self.times and self.times[0] <= now - self.window:
            self.times.popleft()
        if len(self.times) < self.limit:
            return 0.0
        return self.times[len(self.times) - self.limit] + self.window - now


class RateGuard:
    """Off until `limits` is set; then a message past a limit is answered 429 with the whole
    seconds left until it would fit, as Telegram answers."""

    def __init__(self) -> None:
        self.limits: RateLimits | None = None
        self._recent: dict[tuple[int, int | None], _Recent] = {}

    def enforce(self, limits: RateLimits | None) -> None:
        self.limits = limits
        self._recent.clear()

    def _windows(self, call: CallRecord) -> list[_Recent]:
        limits = self.limits
        assert limits is not None
        keys: list[tuple[tuple[int, int | None], float, int]] = [
            ((call.bot_id, None), SECOND, limits.total)
        ]
        if call.chat_id is not None:
            private = call.chat_id > 0
            keys.append(
                (
                    (call.bot_id, call.chat_id),
                    SECOND if private else MINUTE,
                    limits.private if private else limits.group,
                )
            )
        return [self._recent.setdefault(key, _Recent(window, limit)) for key, window, limit in keys]

    def check(self, call: CallRecord) -> None:
        if self.limits is None or call.method.lower() not in MESSAGE_METHODS:
            return
        wait = max(recent.wait(call.at) for recent in self._windows(call))
        if wait > 0:
            raise ApiError.make(429, retry_after=max(1, math.ceil(wait)))

    def sent(self, call: CallRecord) -> None:
        if self.limits is None or call.method.lower() not in MESSAGE_METHODS:
            return
        for recent in self._windows(call):
            recent.times.append(call.at)
