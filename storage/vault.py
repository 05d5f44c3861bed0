"""Encryption at rest and keyed blind indexes, both derived from PASSGRAM_SECRET.

Personal data is encrypted (Fernet: AES-CBC with an HMAC, so tampering is detected) and looked
up through HMACs under a separate key, never through a plain hash: an email or a phone number
is easy to brute-force from an unkeyed hash. Each use gets its own key, derived with HKDF, so
no output of one use (a blind index, a code MAC, the check value kept in the database) says
anything about another's key.

While the secret is being changed (`storage.keyring.rotate`) a vault holds the new secret and
the old one: it writes only under the new one and reads what either wrote.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# What the check value is a MAC of: the same constant under every secret.
_CHECK_MESSAGE = b"passgram secret check v1"


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)


class _Keys:
    """The keys one secret gives, one per use."""

    def __init__(self, secret: str) -> None:
        raw = secret.encode()
        self.fernet = Fernet(base64.urlsafe_b64encode(_derive(raw, b"passgram/encrypt")))
        self.index_key = _derive(raw, b"passgram/index")
        self.mac_key = _derive(raw, b"passgram/mac")
        self.check = hmac.new(
            _derive(raw, b"passgram/check"), _CHECK_MESSAGE, hashlib.sha256
        ).hexdigest()

    def index(self, namespace: str, value: str) -> str:
        msg = f"{namespace}\x00{value}".encode()
        return hmac.new(self.index_key, msg, hashlib.sha256).hexdigest()


class Vault:
    def __init__(self, secret: str, *, old: Sequence[str] = ()) -> None:
        """`secret` writes and reads; each of `old` (secrets being rotated away from) only
        reads."""
        self._keys = [_Keys(s) for s in (secret, *old)]
        self._current = self._keys[0]
        self._fernet = MultiFernet([keys.fernet for keys in self._keys])

    def encrypt(self, value: Any) -> bytes:
        return self._fernet.encrypt(json.dumps(value, separators=(",", ":")).encode())

    def decrypt(self, token: bytes) -> Any:
        """The value, whichever of the vault's secrets encrypted it; InvalidToken if none."""
        return json.loads(self._fernet.decrypt(token))

    def reencrypt(self, token: bytes) -> bytes | None:
        """`token` encrypted under the current secret, or None when it already is."""
        try:
            self._current.fernet.decrypt(token)
        except InvalidToken:
            return self._fernet.rotate(token)
        return None

    def index(self, namespace: str, value: str) -> str:
        """A stable, keyed, non-reversible lookup key for `value`."""
        return self._current.index(namespace, value)

    def indexes(self, namespace: str, value: str) -> tuple[str, ...]:
        """`value`'s blind index under each secret, the current one first: what a lookup must
        match while rows written under an old secret are being re-indexed."""
        return tuple(keys.index(namespace, value) for keys in self._keys)

    def mac(self, purpose: str, value: str) -> str:
        """An HMAC for secrets that are only ever compared (one-time codes)."""
        msg = f"{purpose}\x00{value}".encode()
        return hmac.new(self._current.mac_key, msg, hashlib.sha256).hexdigest()

    @property
    def check(self) -> str:
        """A value kept in the database that tells whether a secret is the one it was written
        with; it reveals nothing else about the secret."""
        return self._current.check

    @property
    def old_checks(self) -> tuple[str, ...]:
        return tuple(keys.check for keys in self._keys[1:])

    def written_with(self, token: bytes) -> str | None:
        """The check value of the vault's secret that encrypted `token`, or None if none did."""
        for keys in self._keys:
            try:
                keys.fernet.decrypt(token)
            except InvalidToken:
                continue
            return keys.check
        return None

    @staticmethod
    def same(a: str, b: str) -> bool:
        return hmac.compare_digest(a.encode(), b.encode())
