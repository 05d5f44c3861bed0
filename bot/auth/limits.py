"""Limits of the embedded backend, as plain values; `storage.local_auth` counts against them.

The limits a person meets are counted per address *and* Telegram account, so that nobody who
merely knows an address can lock its owner out or spend the owner's codes (OWASP ASVS 5.0
6.1.1/6.3.1: anti-automation must not enable malicious lockout). Per-address totals across all
accounts stay as a much higher backstop against many accounts acting together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Settings


@dataclass(frozen=True, slots=True)
class LocalLimits:
    """Every number the embedded backend enforces."""

    code_ttl: timedelta = timedelta(minutes=10)
    tries_per_code: int = 5
    # Wrong codes one Telegram account may type for one address, across its codes, before
    # that account is locked out of that address until the oldest failure leaves the window.
    lockout_failures: int = 10
    # Everyone's wrong codes for one address before it is locked for everyone: the backstop.
    # NIST SP 800-63B §3.2.2 allows at most 100 consecutive failures; ten accounts at their own
    # limit are needed to get there, and it equals the sends backstop times the tries per code.
    lockout_failures_per_identifier: int = 100
    lockout_window: timedelta = timedelta(hours=1)
    # The wait before one account's next send to an address doubles with each send in the window.
    resend_cooldown: timedelta = timedelta(seconds=30)
    resend_cooldown_max: timedelta = timedelta(minutes=5)
    # Every send costs money or lands in someone's inbox: capped per address and account, per
    # address for everyone (four accounts at their own cap fill it), per Telegram account, and
    # overall, so a script cannot pump SMS through the bot.
    sends_per_identifier_per_user: int = 5
    sends_per_identifier: int = 20
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
                raise InvalidLimits(f.name, "positive")
        if self.resend_cooldown_max < self.resend_cooldown:
            raise InvalidLimits("resend_cooldown_max", "at least", "resend_cooldown")
        # One account alone must never reach a limit that holds for everyone.
        for backstop, personal in _BACKSTOPS:
            if getattr(self, backstop) <= getattr(self, personal):
                raise InvalidLimits(backstop, "more than", personal)

    @property
    def ttl_minutes(self) -> int:
        return max(1, round(self.code_ttl.total_seconds() / 60))

    def cooldown_after(self, sends: int) -> timedelta:
        """How long to wait after an account's `sends`-th send to an address in the window."""
        if self.resend_cooldown == timedelta(0):
            return timedelta(0)
        # Bounded before the power so a large count cannot overflow the timedelta.
        doublings = min(max(sends - 1, 0), 32)
        return min(self.resend_cooldown * (1 << doublings), self.resend_cooldown_max)


class InvalidLimits(ValueError):
    """A limit out of range, or out of line with another one; names them as fields or settings."""

    def __init__(self, name: str, rule: str, other: str | None = None) -> None:
        self.name, self.rule, self.other = name, rule, other
        super().__init__(self.describe(lambda field: f"LocalLimits.{field}"))

    def describe(self, name_of: Callable[[str], str]) -> str:
        against = f" {name_of(self.other)}" if self.other else ""
        return f"{name_of(self.name)} must be {self.rule}{against}"


_MAY_BE_ZERO = frozenset({"resend_cooldown", "resend_cooldown_max", "prune_every"})
_BACKSTOPS = (
    ("lockout_failures_per_identifier", "lockout_failures"),
    ("sends_per_identifier", "sends_per_identifier_per_user"),
    ("sends_total", "sends_per_user"),
)
# Internal pacing, not a policy an operator chooses.
_NOT_SETTINGS = frozenset({"prune_every"})


def setting_name(field: str) -> str:
    """The LOCAL_* setting of a LocalLimits field: durations are given in whole seconds."""
    default = getattr(LocalLimits(), field)
    suffix = "_SECONDS" if isinstance(default, timedelta) else ""
    return f"LOCAL_{field.upper()}{suffix}"


def setting_fields() -> list[str]:
    """The LocalLimits fields an operator sets through LOCAL_* settings."""
    return [f.name for f in fields(LocalLimits) if f.name not in _NOT_SETTINGS]


def local_limits(settings: Settings) -> LocalLimits:
    """The limits the LOCAL_* settings ask for.

    Raises InvalidLimits, whose `describe(setting_name)` names the settings at fault.
    """
    given: dict[str, int | timedelta] = {}
    for field in setting_fields():
        value: int = getattr(settings, setting_name(field).lower())
        default = getattr(LocalLimits(), field)
        given[field] = timedelta(seconds=value) if isinstance(default, timedelta) else value
    return LocalLimits(**given)  # type: ignore[arg-type]
