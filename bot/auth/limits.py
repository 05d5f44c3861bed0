"""Limits of the embedded backend, as plain values; `storage.local_auth` counts against them."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import timedelta


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
