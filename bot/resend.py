"""Outgoing Bot API calls ride out Telegram's bad moments instead of failing the user's reply.
The rules, whatever framework sends the call:

- A 429 is obeyed: wait its `retry_after`, however long, then send again. Each such answer
  names when Telegram will take the call, so a call is never dropped for waiting too long.
- A 5xx, a proxy's error page (502/504 from the front nginx, which is not JSON) or a lost
  connection is retried with capped exponential backoff and jitter.

Both are bounded, so no call retries forever:
- 5 retries after a server failure, waiting 1, 2, 4, 8, 16 s (each jittered down by up to half):
  at most 31 s. That rides out a Bot API restart or a proxy hiccup; an outage longer than that
  is not something a person waiting for a reply is helped through by waiting more, and the
  handler holds that person's place in line while it waits.
- 10 consecutive 429s. Telegram accepts the call once the wait it names is over, so a further
  429 means something else spends the same limit (another process with this token); after ten
  in a row the call is given up with the last 429 rather than queueing behind it for ever.

Retrying a call whose answer was lost may deliver it twice (a timeout or a 502 can come after
Telegram acted): a duplicate message is a smaller harm than a code prompt that never arrives.
getUpdates is not retried here on server failures: the runtime's polling loop (bot/runtime.py)
retries it for ever with a backoff of its own.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)

SERVER_RETRIES = 5
BACKOFF_FIRST = 1.0  # seconds before the first retry after a server failure; doubles each time
BACKOFF_CAP = 16.0
FLOOD_RETRIES = 10

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Flood:
    """A 429: send again after `seconds`."""

    seconds: float


class Transient:
    """The server or the way to it failed, as opposed to a refusal of this call."""

    def __init__(self, description: str) -> None:
        self.description = description  # for the log: the kind of failure, no payload


# How a framework reads one of its failures: a 429, a transient failure, or neither (raised).
Judge = Callable[[Exception], Flood | Transient | None]


class Resend:
    def __init__(
        self,
        *,
        server_retries: int = SERVER_RETRIES,
        backoff_first: float = BACKOFF_FIRST,
        backoff_cap: float = BACKOFF_CAP,
        flood_retries: int = FLOOD_RETRIES,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.server_retries = server_retries
        self.backoff_first = backoff_first
        self.backoff_cap = backoff_cap
        self.flood_retries = flood_retries
        self._sleep = sleep
        self._jitter = jitter

    def backoff(self, failures: int) -> float:
        """The wait after the `failures`-th server failure in a row: between half and all of
        the doubled delay, so callers that failed together do not come back together."""
        delay = min(self.backoff_cap, self.backoff_first * 2.0 ** (failures - 1))
        return delay / 2 + delay / 2 * self._jitter()

    async def call(self, name: str, send: Callable[[], Awaitable[T]], judge: Judge) -> T:
        """`send` the Bot API method `name` until it succeeds or the rules give up."""
        floods = failures = 0
        while True:
            try:
                return await send()
            except Exception as exc:
                verdict = judge(exc)
                if isinstance(verdict, Flood):
                    floods += 1
                    if floods > self.flood_retries:
                        log.error("Telegram kept asking to slow down: %s given up", name)
                        raise
                    wait = verdict.seconds
                    log.warning(
                        "Telegram asked to slow down: %s sent again in %s s (429 %d of at most %d)",
                        name,
                        _whole(wait),
                        floods,
                        self.flood_retries,
                    )
                elif isinstance(verdict, Transient) and name != "getUpdates":
                    failures += 1
                    if failures > self.server_retries:
                        log.error("Telegram failed %s %d times: given up", name, failures)
                        raise
                    wait = self.backoff(failures)
                    log.warning(
                        "Telegram failed %s (%s); retry %d of %d in %.1f s",
                        name,
                        verdict.description,
                        failures,
                        self.server_retries,
                        wait,
                    )
                else:
                    raise
            await self._sleep(wait)


def _whole(seconds: float) -> float | int:
    return int(seconds) if seconds == int(seconds) else seconds
