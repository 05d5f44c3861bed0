"""Encryption at rest and keyed blind indexes, both derived from PASSGRAM_SECRET.

Personal data is encrypted (Fernet: AES-CBC with an HMAC, so tampering is detected) and looked
up through HMACs under a separate key, never through a plain hash: an email or a phone number
is easy to brute-force from an unkeyed hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)


class Vault:
    def __init__(self, secret: str) -> None:
        raw = secret.encode()
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(raw, b"passgram/encrypt")))
        self._index_key = _derive(raw, b"passgram/index")
        self._mac_key = _derive(raw, b"passgram/mac")

    def encrypt(self, value: Any) -> bytes:
        return self._fernet.encrypt(json.dumps(value, separators=(",", ":")).encode())

    def decrypt(self, token: bytes) -> Any:
        return json.loads(self._fernet.decrypt(token))

    def index(self, namespace: str, value: str) -> str:
        """A stable, keyed, non-reversible lookup key for `value`."""
        msg = f"{namespace}\x00{value}".encode()
        return hmac.new(self._index_key, msg, hashlib.sha256).hexdigest()

    def mac(self, purpose: str, value: str) -> str:
        """An HMAC for secrets that are only ever compared (one-time codes)."""
        msg = f"{purpose}\x00{value}".encode()
        return hmac.new(self._mac_key, msg, hashlib.sha256).hexdigest()

    @staticmethod
    def same(a: str, b: str) -> bool:
        return hmac.compare_digest(a.encode(), b.encode())
