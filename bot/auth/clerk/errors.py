"""Clerk's error answers, and what each means for the conversation.

Clerk answers failures with `{"errors": [{code, message, long_message, meta}], "clerk_trace_id"}`.
The `code` decides the typed error; anything unknown, and every 5xx, is "backend unavailable"
with a log line an operator can take to Clerk support (the trace id). Clerk's messages are not
logged: some of them quote the email address or phone number they are about.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from bot.auth.base import (
    AuthError,
    BackendUnavailable,
    CodeExpired,
    InvalidIdentifier,
    RateLimited,
    Refused,
    TooManyAttempts,
    WrongCode,
)
from bot.identifiers import Identifier, Reason

log = logging.getLogger("bot.auth.clerk")

# InvalidIdentifier reasons that come from Clerk rather than from parsing what the user typed.
NOT_FOUND = "not_found"  # no account has this identifier (where signing up is not an option)
TAKEN = "taken"  # another account holds it (or holds it unverified, so it can't prove it)
NOT_ALLOWED = "not_allowed"  # the instance blocks it (allowlist, blocked country, subaddress)

# Refused reasons: lasting answers, which asking again will not change.
MFA_REQUIRED = "mfa_required"  # the account signs in with a second factor too
REQUIREMENTS = "requirements"  # sign-up wants what a chat cannot give (password, consent, …)
BLOCKED = "blocked"  # the account is banned, deactivated, or locked until someone unlocks it
SIGN_UP_CLOSED = "sign_up_closed"  # new accounts by invitation (or waitlist) only

# How long to suggest waiting when Clerk fails without saying; short, as most outages are.
DEFAULT_RETRY_AFTER = 5.0
# Clerk's own words for a resend that comes too soon: "wait at least 30 seconds".
RESEND_WAIT = 30.0

# The code was wrong and the verification still open; the second comes near a lockout.
WRONG_CODE = frozenset({"form_code_incorrect", "account_lockout_warning"})
_RATE_LIMITED = frozenset(
    {"too_many_requests", "verification_code_too_many_requests", "signup_rate_limit_exceeded"}
)
_NOT_ALLOWED = frozenset({"not_allowed_access", "unsupported_country_code"})
# Lasting refusals: the reason, and what the operator could change (None: nothing to change).
_REFUSED: dict[str, tuple[str, str | None]] = {
    "user_banned": (BLOCKED, "lift the ban in the Clerk Dashboard (Users) if it is a mistake"),
    "user_deactivated": (BLOCKED, None),
    "legal_not_accepted": (
        REQUIREMENTS,
        "Passgram cannot collect consent to legal documents; turn off the legal consent "
        "requirement in the Clerk Dashboard (Legal)",
    ),
    "sign_up_mode_restricted": (
        SIGN_UP_CLOSED,
        "sign-ups are restricted; invite the person, or set the sign-up mode to public in "
        "the Clerk Dashboard (Restrictions)",
    ),
    "sign_up_restricted_waitlist": (
        SIGN_UP_CLOSED,
        "sign-ups go through the waitlist; invite the person from the Clerk Dashboard (Waitlist)",
    ),
}
UNLOCK_HINT = "an administrator can unlock the account in the Clerk Dashboard (Users)"
MFA_HINT = (
    "if such accounts should sign in here, do not require multi-factor in the Clerk Dashboard "
    "(Multi-factor), and the person can turn their second factor off in their account"
)


@dataclass(frozen=True, slots=True)
class ClerkErrorItem:
    code: str
    message: str
    long_message: str
    meta: Mapping[str, Any]


class ClerkAPIError(Exception):
    """A non-2xx answer from Clerk, parsed; `operation` names the call for the log."""

    def __init__(
        self,
        operation: str,
        status: int,
        errors: tuple[ClerkErrorItem, ...] = (),
        *,
        trace_id: str | None = None,
        retry_after: float | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        codes = ",".join(e.code for e in errors) or "no error code"
        super().__init__(f"{operation}: HTTP {status}, {codes}")
        self.operation = operation
        self.status = status
        self.errors = errors
        self.trace_id = trace_id
        self.retry_after = retry_after
        self.meta: Mapping[str, Any] = meta or {}

    @property
    def code(self) -> str | None:
        return self.errors[0].code if self.errors else None

    @property
    def param(self) -> str | None:
        """The form field the first error is about (`meta.param_name`), when Clerk says."""
        if not self.errors:
            return None
        name = self.errors[0].meta.get("param_name")
        return name if isinstance(name, str) else None

    @classmethod
    def from_response(
        cls, operation: str, status: int, body: Any, headers: Mapping[str, str]
    ) -> ClerkAPIError:
        errors: list[ClerkErrorItem] = []
        trace_id = None
        meta: Mapping[str, Any] = {}
        if isinstance(body, Mapping):
            for item in body.get("errors") or ():
                if isinstance(item, Mapping) and isinstance(item.get("code"), str):
                    item_meta = item.get("meta")
                    errors.append(
                        ClerkErrorItem(
                            code=item["code"],
                            message=str(item.get("message", "")),
                            long_message=str(item.get("long_message", "")),
                            meta=item_meta if isinstance(item_meta, Mapping) else {},
                        )
                    )
            if isinstance(body.get("clerk_trace_id"), str):
                trace_id = body["clerk_trace_id"]
            if isinstance(body.get("meta"), Mapping):
                meta = body["meta"]
        return cls(
            operation,
            status,
            tuple(errors),
            trace_id=trace_id,
            retry_after=parse_retry_after(headers.get("retry-after")),
            meta=meta,
        )


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def describe(err: ClerkAPIError, identifier: Identifier | None) -> str:
    """The operator's line: which call, what Clerk said, the trace id, whose (masked)."""
    param = f" param={err.param}" if err.param else ""
    who = f" for {identifier.masked}" if identifier is not None else ""
    return (
        f"clerk {err.operation}: HTTP {err.status} {err.code or 'no error code'}{param} "
        f"clerk_trace_id={err.trace_id or '-'}{who}"
    )


def to_auth_error(
    err: ClerkAPIError,
    *,
    identifier: Identifier | None,
    now: datetime,
    tries_left: int | None = None,
) -> AuthError:
    """The typed error the conversation answers, for a Clerk error; logs the operator's line."""
    code = err.code
    if err.status < 500 and code is not None:
        refused = _refused(err, code, identifier)
        if refused is not None:
            return refused
        known = _known(err, code, identifier, now, tries_left)
        if known is not None:
            log.info("%s", describe(err, identifier))
            return known
    if code == "native_api_disabled":
        log.error(
            "%s: CLERK_MODE=fapi needs the Native API: turn it on in the Clerk Dashboard "
            "(Native applications), or use CLERK_MODE=bapi",
            describe(err, identifier),
        )
    elif code in ("session_exists", "identifier_already_signed_in"):
        # Each Telegram user gets a fresh Clerk client per sign-in, so a retry starts clean.
        log.warning("%s: the client already had a session", describe(err, identifier))
    else:
        log.warning("%s: answered as backend unavailable", describe(err, identifier))
    return BackendUnavailable(
        f"clerk {err.operation} failed (clerk_trace_id={err.trace_id or '-'})",
        retry_after=err.retry_after if err.retry_after is not None else DEFAULT_RETRY_AFTER,
    )


def refuse_requirements(names: Sequence[str], where: str) -> Refused:
    """Sign-up wants what a chat cannot ask for: the operator's line says which, and where
    that is set; `where` is the call and whose (masked) it was."""
    log.error(
        "%s: Clerk requires %s at sign-up, which Passgram cannot ask for; make them optional "
        "in the Clerk Dashboard (User & authentication)",
        where,
        ", ".join(names) or "something it did not name",
    )
    return Refused(REQUIREMENTS)


def _refused(err: ClerkAPIError, code: str, identifier: Identifier | None) -> Refused | None:
    if code == "form_data_missing":
        names = err.errors[0].meta.get("param_names")
        named = [n for n in names if isinstance(n, str)] if isinstance(names, list) else []
        return refuse_requirements(named, describe(err, identifier))
    if code == "user_locked" and _lockout_seconds(err) is None:
        # No end given: locked until someone unlocks it.
        log.warning("%s: %s", describe(err, identifier), UNLOCK_HINT)
        return Refused(BLOCKED)
    if code not in _REFUSED:
        return None
    reason, hint = _REFUSED[code]
    if hint is None:
        log.warning("%s", describe(err, identifier))
    else:
        log.log(
            logging.ERROR if reason == REQUIREMENTS else logging.WARNING,
            "%s: %s",
            describe(err, identifier),
            hint,
        )
    return Refused(reason)


def _lockout_seconds(err: ClerkAPIError) -> float | None:
    seconds = err.errors[0].meta.get("lockout_expires_in_seconds")
    return float(seconds) if isinstance(seconds, int | float) else None


def _known(
    err: ClerkAPIError,
    code: str,
    identifier: Identifier | None,
    now: datetime,
    tries_left: int | None,
) -> AuthError | None:
    if code in WRONG_CODE:
        # Clerk still accepts tries while it says "incorrect", so at least one is left.
        return WrongCode(max(1, tries_left) if tries_left is not None else 1)
    if code == "verification_expired":
        return CodeExpired()
    if code == "verification_failed":
        # The code is spent, not the person: Clerk lets them ask for a new one straight away.
        return TooManyAttempts(retry_at=now)
    if code == "user_locked":
        seconds = _lockout_seconds(err)
        assert seconds is not None  # locked for good is a refusal, see _refused
        return TooManyAttempts(retry_at=now + timedelta(seconds=seconds))
    if code == "form_identifier_not_found":
        return InvalidIdentifier(NOT_FOUND)
    if code == "form_identifier_exists":
        return InvalidIdentifier(TAKEN)
    if code == "form_param_format_invalid":
        bad_phone = identifier is not None and identifier.kind == "phone"
        return InvalidIdentifier(Reason.INVALID_NUMBER if bad_phone else Reason.BAD_EMAIL)
    if code in _NOT_ALLOWED:
        return InvalidIdentifier(NOT_ALLOWED)
    if code in _RATE_LIMITED:
        fallback = RESEND_WAIT if code == "verification_code_too_many_requests" else 10.0
        return RateLimited(err.retry_after if err.retry_after is not None else fallback)
    return None
