"""Clerk publishable keys, and the Frontend API host each one carries.

A publishable key is `pk_test_` (development instance) or `pk_live_` (production) followed by
the base64 of `<frontend-api-host>$`. The key is public (it ships in every web page that uses
Clerk), so errors may say what is wrong with it, but they still don't echo it back whole.
"""

from __future__ import annotations

import base64
import binascii
import re

_PREFIXES = ("pk_test_", "pk_live_")
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+")


class InvalidPublishableKey(ValueError):
    """The value is not a Clerk publishable key; the message says why, in operator's words."""


def fapi_host(publishable_key: str) -> str:
    """The Frontend API host inside a publishable key, e.g. `clerk.example.com`."""
    key = publishable_key.strip()
    prefix = next((p for p in _PREFIXES if key.startswith(p)), None)
    if prefix is None:
        if key.startswith("sk_"):
            raise InvalidPublishableKey(
                "that is a secret key; the publishable key starts with pk_test_ or pk_live_"
            )
        raise InvalidPublishableKey("a Clerk publishable key starts with pk_test_ or pk_live_")
    encoded = key.removeprefix(prefix)
    if not encoded:
        raise InvalidPublishableKey(f"nothing follows {prefix}")
    try:
        # Clerk strips the base64 padding; put it back before decoding.
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        decoded = raw.decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidPublishableKey(f"the part after {prefix} is not base64") from None
    if not decoded.endswith("$") or decoded.count("$") != 1:
        raise InvalidPublishableKey("the decoded key does not end with the host and one '$'")
    host = decoded.removesuffix("$").lower()
    if not _HOST.fullmatch(host):
        raise InvalidPublishableKey("the decoded key does not hold a host name")
    return host


def fapi_url(publishable_key: str) -> str:
    """The Frontend API base URL for a publishable key (always https)."""
    return f"https://{fapi_host(publishable_key)}"


def publishable_key_for(host: str, *, live: bool = False) -> str:
    """The publishable key that carries `host` (for tests and the sandbox)."""
    encoded = base64.b64encode(f"{host}$".encode("ascii")).decode("ascii").rstrip("=")
    return ("pk_live_" if live else "pk_test_") + encoded
