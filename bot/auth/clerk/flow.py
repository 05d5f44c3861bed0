"""What the two ways of talking to Clerk (fapi, bapi) have in common."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bot.auth.base import Challenge, LinkRef, Requester
from bot.identifiers import Identifier, IdentifierKind

BACKEND_NAME = "clerk"
# The sign-up fields Passgram can ask for in the chat (Clerk's names for them).
FIELDS = ("first_name", "last_name", "username")
STRATEGY: dict[IdentifierKind, str] = {"email": "email_code", "phone": "phone_code"}
CHANNEL: dict[IdentifierKind, str] = {"email": "email", "phone": "sms"}
# Clerk's codes live 10 minutes; used only when an answer does not say.
CODE_TTL = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Verified:
    """A proven identifier, before the link is written: what the backend turns into an identity."""

    user_id: str
    created: bool
    session_id: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    # Private-metadata changes that must be written with the link: if that write fails, so
    # does the verification (the person tries again; Clerk knows the code was right).
    metadata: dict[str, Any] = field(default_factory=dict)


class Flow(Protocol):
    async def start(self, identifier: Identifier, who: Requester) -> Challenge: ...

    async def resend(self, challenge: Challenge, who: Requester) -> Challenge: ...

    async def verify(self, challenge: Challenge, code: str, who: Requester) -> Verified: ...

    async def complete(
        self, challenge: Challenge, fields: Mapping[str, str], who: Requester
    ) -> Verified: ...

    async def revoke(self, link: LinkRef) -> None: ...


def digits(code: str) -> str:
    """The code's digits, whatever script they were typed in; spaces and dashes dropped."""
    return "".join(str(unicodedata.decimal(ch)) for ch in code if ch.isdecimal())


def expiry(expire_at_ms: Any, now: datetime) -> datetime:
    """When a Clerk verification expires (`expire_at` is in milliseconds)."""
    if isinstance(expire_at_ms, int | float) and not isinstance(expire_at_ms, bool):
        return datetime.fromtimestamp(expire_at_ms / 1000, UTC)
    return now + CODE_TTL


def new_challenge(
    identifier: Identifier,
    *,
    expires_at: datetime,
    resend_at: datetime,
    state: dict[str, Any],
) -> Challenge:
    return Challenge(
        backend=BACKEND_NAME,
        identifier=identifier,
        channel=CHANNEL[identifier.kind],
        expires_at=expires_at,
        resend_at=resend_at,
        state=state,
    )
