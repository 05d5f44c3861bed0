"""The auth backend and delivery channels, counted for `bot.metrics` without changing them.

Wrappers rather than counters inside each backend: every backend (local, Clerk, any later one)
and every channel is measured the same way, by the one piece of code that knows the metrics.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from bot import metrics
from bot.auth.base import (
    AuthBackend,
    Challenge,
    LinkRef,
    Requester,
    VerifiedIdentity,
)
from bot.auth.delivery import DeliveryChannel
from bot.identifiers import Identifier, IdentifierKind

T = TypeVar("T")


class MeteredBackend:
    """An `AuthBackend` whose calls are timed, and whose errors are counted by kind."""

    def __init__(self, inner: AuthBackend) -> None:
        self.inner = inner
        self.name = inner.name

    def supports(self, kind: IdentifierKind) -> bool:
        return self.inner.supports(kind)

    async def _timed(self, call: str, work: Callable[[], Awaitable[T]]) -> T:
        started = time.monotonic()
        try:
            return await work()
        except Exception as exc:
            # Refusals (WrongCode, RateLimited…) too: answers, not failures, but worth watching.
            metrics.BACKEND_ERRORS.labels(self.name, call, type(exc).__name__).inc()
            raise
        finally:
            metrics.BACKEND_SECONDS.labels(self.name, call).observe(time.monotonic() - started)

    async def start(self, identifier: Identifier, who: Requester) -> Challenge:
        return await self._timed("start", lambda: self.inner.start(identifier, who))

    async def resend(self, challenge: Challenge, who: Requester) -> Challenge:
        return await self._timed("resend", lambda: self.inner.resend(challenge, who))

    async def verify(self, challenge: Challenge, code: str, who: Requester) -> VerifiedIdentity:
        return await self._timed("verify", lambda: self.inner.verify(challenge, code, who))

    async def complete(
        self, challenge: Challenge, fields: Mapping[str, str], who: Requester
    ) -> VerifiedIdentity:
        return await self._timed("complete", lambda: self.inner.complete(challenge, fields, who))

    async def revoke(self, link: LinkRef) -> None:
        await self._timed("revoke", lambda: self.inner.revoke(link))

    async def erase(self, link: LinkRef) -> None:
        await self._timed("erase", lambda: self.inner.erase(link))


class MeteredChannel:
    """A `DeliveryChannel` whose deliveries are counted by channel name."""

    def __init__(self, inner: DeliveryChannel) -> None:
        self.inner = inner
        self.name = inner.name
        self.kinds = inner.kinds

    async def send_code(
        self, to: Identifier, code: str, *, app_name: str, ttl_minutes: int
    ) -> None:
        try:
            await self.inner.send_code(to, code, app_name=app_name, ttl_minutes=ttl_minutes)
        except Exception:
            metrics.CODES_FAILED.labels(self.name).inc()
            raise
        metrics.CODES_SENT.labels(self.name).inc()

    async def aclose(self) -> None:
        """The inner channel's connections (SMTP keeps some) close with it."""
        aclose = getattr(self.inner, "aclose", None)
        if aclose is not None:
            await aclose()
