"""The auth backend contract: start → (resend) → verify → (complete) and revoke/erase.

Challenges are plain data so the conversation can store them and a restart loses nothing.
Errors are typed so the conversation can answer each one in words, whatever the backend.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from bot.identifiers import Identifier, IdentifierKind
from storage.repos import Work

# Called by a backend that has to queue a request (e.g. to stay under Clerk's per-IP limits),
# with the number of seconds the user will wait, so the chat can tell them.
WaitNotifier = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asks, as far as a backend needs to know: send caps, per-user clients, metadata."""

    telegram_user_id: int
    username: str | None = None
    notify_wait: WaitNotifier | None = None


@dataclass(slots=True)
class Challenge:
    """A code in flight, between "code sent" and "code typed"."""

    backend: str
    identifier: Identifier
    channel: str  # where the code went: "email", "sms" or "log"
    expires_at: datetime
    resend_at: datetime
    # Backend-specific, JSON-serialisable (ids, a Clerk client token). Stored encrypted.
    state: dict[str, Any] = field(default_factory=dict)
    # Database work done with the chat's next step, in the transaction that stores it (e.g.
    # dropping the person's older codes for the address); not part of the stored challenge.
    commit: Work | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "kind": self.identifier.kind,
            "value": self.identifier.value,
            "channel": self.channel,
            "expires_at": self.expires_at.timestamp(),
            "resend_at": self.resend_at.timestamp(),
            "state": self.state,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Challenge:
        return cls(
            backend=data["backend"],
            identifier=Identifier(data["kind"], data["value"]),
            channel=data["channel"],
            expires_at=datetime.fromtimestamp(data["expires_at"], UTC),
            resend_at=datetime.fromtimestamp(data["resend_at"], UTC),
            state=dict(data.get("state") or {}),
        )


@dataclass(frozen=True, slots=True)
class VerifiedIdentity:
    auth_user_id: str
    identifier: Identifier
    created: bool  # True when this verification created the account (a sign-up)
    session_id: str | None = None
    # Kept with the link, encrypted at rest, handed back to revoke/erase (e.g. a client token).
    state: dict[str, Any] = field(default_factory=dict)
    sign_in_url: str | None = None  # a link that opens the app already signed in, when offered
    # What makes this identity final in our database (e.g. the code used up), done in the same
    # transaction as the link it creates, so a crash between the two cannot lose either.
    commit: Work | None = None


@dataclass(frozen=True, slots=True)
class LinkRef:
    """What revoke and erase need to know about a link."""

    telegram_user_id: int
    auth_user_id: str
    identifier: Identifier
    session_id: str | None = None
    state: Mapping[str, Any] = field(default_factory=dict)


class AuthError(Exception):
    """Base of every error a backend raises on purpose."""


class InvalidIdentifier(AuthError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnsupportedIdentifier(AuthError):
    """No delivery channel for this kind of identifier (a phone number with email only)."""

    def __init__(self, kind: IdentifierKind) -> None:
        super().__init__(kind)
        self.kind = kind


class WrongCode(AuthError):
    def __init__(self, tries_left: int) -> None:
        super().__init__(f"{tries_left} tries left")
        self.tries_left = tries_left


class CodeExpired(AuthError):
    pass


class TooManyAttempts(AuthError):
    def __init__(self, retry_at: datetime | None) -> None:
        super().__init__(retry_at.isoformat() if retry_at else "locked")
        self.retry_at = retry_at


class RateLimited(AuthError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after:.0f} s")
        self.retry_after = retry_after


class NeedsMoreFields(AuthError):
    """The backend wants more before it creates the account (Clerk's missing_requirements)."""

    def __init__(self, fields: tuple[str, ...], challenge: Challenge) -> None:
        super().__init__(", ".join(fields))
        self.fields = fields
        self.challenge = challenge


class Refused(AuthError):
    """A lasting refusal: asking again will not change it (multi-factor required, sign-up
    requirements the chat cannot meet, a blocked account). `reason` names which, for the text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BackendUnavailable(AuthError):
    def __init__(self, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(detail or "backend unavailable")
        self.retry_after = retry_after


class AuthBackend(Protocol):
    name: str

    def supports(self, kind: IdentifierKind) -> bool:
        """Whether codes can be delivered to this kind of identifier."""
        ...

    async def start(self, identifier: Identifier, who: Requester) -> Challenge:
        """Sign in, or sign up when the identifier is new, and send a code."""
        ...

    async def resend(self, challenge: Challenge, who: Requester) -> Challenge: ...

    async def verify(self, challenge: Challenge, code: str, who: Requester) -> VerifiedIdentity: ...

    async def complete(
        self, challenge: Challenge, fields: Mapping[str, str], who: Requester
    ) -> VerifiedIdentity:
        """Send the fields a NeedsMoreFields asked for; may raise NeedsMoreFields again."""
        ...

    async def revoke(self, link: LinkRef) -> None:
        """End the session and remove the Telegram link in the backend (sign-out)."""
        ...

    async def erase(self, link: LinkRef) -> None:
        """Revoke, and forget what the backend keeps about this person, where that is ours."""
        ...
