"""Clerk as Passgram's auth backend (AUTH_BACKEND=clerk).

Build it with `ClerkBackend.from_config(mode, publishable_key=…, secret_key=…, fapi_url=…,
bapi_url=…, sign_in_url=…)` from the CLERK_* settings, and `await backend.aclose()` on the way
out. `fapi.py` and `bapi.py` hold the two modes; `pace.py` the pacing under Clerk's limits.
"""

from bot.auth.clerk.backend import ClerkBackend
from bot.auth.clerk.errors import (
    BLOCKED,
    MFA_REQUIRED,
    NOT_ALLOWED,
    NOT_FOUND,
    REQUIREMENTS,
    SIGN_UP_CLOSED,
    TAKEN,
)
from bot.auth.clerk.keys import InvalidPublishableKey, fapi_host, fapi_url
from bot.auth.clerk.pace import InMemoryPacer, PaceLimit, Pacer, clerk_limits

__all__ = [
    "BLOCKED",
    "MFA_REQUIRED",
    "NOT_ALLOWED",
    "NOT_FOUND",
    "REQUIREMENTS",
    "SIGN_UP_CLOSED",
    "TAKEN",
    "ClerkBackend",
    "InMemoryPacer",
    "InvalidPublishableKey",
    "PaceLimit",
    "Pacer",
    "clerk_limits",
    "fapi_host",
    "fapi_url",
]
