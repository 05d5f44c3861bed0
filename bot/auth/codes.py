"""One-time codes of the embedded backend: made, read back from a chat message, kept as MACs."""

from __future__ import annotations

import secrets

from storage.vault import Vault

CODE_DIGITS = 6

# People group digits the way they see them written ("123 456", "123-456"); phones also turn
# a typed dash into an en or em dash.
_GROUPING = frozenset(" \t\u00a0\u2009\u202f-\u2010\u2011\u2012\u2013\u2014")


def new_code() -> str:
    """A uniformly random code; leading zeros are kept so every code has the same length."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def normalise(text: str) -> str | None:
    """The code in what the user typed, or None when it cannot be one.

    Only ASCII digits count: other scripts' digits are refused rather than guessed at, so the
    chat can ask for the code again instead of spending a try.
    """
    compact = "".join(ch for ch in text.strip() if ch not in _GROUPING)
    if len(compact) == CODE_DIGITS and compact.isascii() and compact.isdigit():
        return compact
    return None


def code_mac(vault: Vault, challenge_id: str, identifier_index: str, code: str) -> str:
    """What is stored instead of the code.

    Keyed by the challenge and the identifier, so a code only ever matches the request it was
    sent for, and a leaked table cannot be turned back into codes without the secret.
    """
    return vault.mac("local-code", f"{challenge_id}\x00{identifier_index}\x00{code}")
