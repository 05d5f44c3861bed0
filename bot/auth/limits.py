"""Limits of the embedded backend, and the sliding windows that count sends and failures.

Counts live in `local_events` rows keyed by blind indexes, so every replica sharing the
database sees the same numbers and a restart forgets nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import Select, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import LocalEvent

# Event kinds. A send writes one row per cap it counts against.
SEND_TO_IDENTIFIER = "send_id"
SEND_BY_USER = "send_user"
SEND_TOTAL = "send_all"
FAILURE = "failure"  # a wrong code, keyed by the identifier it was sent to
TOTAL_KEY = "*"


@dataclass(frozen=True, slots=True)
class LocalLimits:
    """Every number the embedded backend enforces."""

    code_ttl: timedelta = timedelta(minutes=10)
    tries_per_code: int = 5
    # Failures per identifier, across codes, before it is locked until the oldest one ages out.
    lockout_failures: int = 10
    lockout_window: timedelta = timedelta(hours=1)
    # The wait before the next send to an identifier doubles with each send in the window.
    resend_cooldown: timedelta = timedelta(seconds=30)
    resend_cooldown_max: timedelta = timedelta(minutes=5)
    # Every send costs money or lands in someone's inbox: capped per address, per Telegram
    # user and overall, so a script cannot pump SMS through the bot.
    sends_per_identifier: int = 5
    sends_per_user: int = 10
    sends_total: int = 1000
    send_window: timedelta = timedelta(hours=1)
    # Expired challenges and aged-out events are deleted at most this often.
    prune_every: timedelta = timedelta(minutes=1)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            zero: object = timedelta(0) if isinstance(value, timedelta) else 0
            if value < zero or (value == zero and f.name not in _MAY_BE_ZERO):
                raise ValueError(f"LocalLimits.{f.name} must be positive")
        if self.resend_cooldown_max < self.resend_cooldown:
            raise ValueError("LocalLimits.resend_cooldown_max must be at least resend_cooldown")

    @property
    def ttl_minutes(self) -> int:
        return max(1, round(self.code_ttl.total_seconds() / 60))

    def cooldown_after(self, sends: int) -> timedelta:
        """How long to wait after the `sends`-th send to an identifier in the window (≥ 1)."""
        if self.resend_cooldown == timedelta(0):
            return timedelta(0)
        # Bounded before the power so a large count cannot overflow the timedelta.
        doublings = min(max(sends - 1, 0), 32)
        return min(self.resend_cooldown * (1 << doublings), self.resend_cooldown_max)


_MAY_BE_ZERO = frozenset({"resend_cooldown", "resend_cooldown_max", "prune_every"})


class Windows:
    """Sliding-window counts, read and written inside the caller's transaction at `now`."""

    def __init__(self, session: AsyncSession, now: datetime) -> None:
        self._session = session
        self.now = now

    async def record(self, entries: Sequence[tuple[str, str]]) -> list[int]:
        """Write one event per (kind, key) at `now`; returns their ids so they can be undone."""
        rows = [LocalEvent(kind=kind, key=key, at=self.now) for kind, key in entries]
        self._session.add_all(rows)
        await self._session.flush()
        return [row.id for row in rows]

    async def room_at(
        self, kind: str, key: str, *, window: timedelta, cap: int, pending: int = 0
    ) -> datetime | None:
        """When one more event fits under `cap` in the window; None when it fits now.

        `pending` events were recorded at `now` by this transaction for the very thing being
        checked, so they are not counted against it.
        """
        count = await self._count(kind, key, window) - pending
        if count < cap:
            return None
        # The window has room once count - cap + 1 of its oldest events have left it.
        leaves = await self._session.scalar(
            self._in_window(kind, key, window).order_by(LocalEvent.at).offset(count - cap).limit(1)
        )
        return (leaves or self.now) + window

    async def last(
        self, kind: str, key: str, *, window: timedelta, pending: int = 0
    ) -> tuple[int, datetime | None]:
        """How many events the window holds and when the newest was, leaving out `pending`."""
        count = await self._count(kind, key, window) - pending
        if count <= 0:
            return 0, None
        newest = await self._session.scalar(
            self._in_window(kind, key, window)
            .order_by(LocalEvent.at.desc())
            .offset(pending)
            .limit(1)
        )
        return count, newest

    async def forget(self, ids: Sequence[int]) -> None:
        if ids:
            await self._session.execute(delete(LocalEvent).where(LocalEvent.id.in_(ids)))

    async def clear(self, kind: str, key: str) -> None:
        await self._session.execute(
            delete(LocalEvent).where(LocalEvent.kind == kind, LocalEvent.key == key)
        )

    async def prune(self, older_than: timedelta) -> None:
        await self._session.execute(
            delete(LocalEvent).where(LocalEvent.at <= self.now - older_than)
        )

    async def _count(self, kind: str, key: str, window: timedelta) -> int:
        count = await self._session.scalar(
            select(func.count())
            .select_from(LocalEvent)
            .where(
                LocalEvent.kind == kind,
                LocalEvent.key == key,
                LocalEvent.at > self.now - window,
            )
        )
        return count or 0

    def _in_window(self, kind: str, key: str, window: timedelta) -> Select[datetime]:
        return select(LocalEvent.at).where(
            LocalEvent.kind == kind,
            LocalEvent.key == key,
            LocalEvent.at > self.now - window,
        )
