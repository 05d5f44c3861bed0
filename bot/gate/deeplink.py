"""Deep links into the private chat (`t.me/<bot>?start=PAYLOAD`) that name the gated chat someone
was sent from.

A payload is 52 characters of base64url (Telegram allows 64 of A–Z a–z 0–9 _ -): a version
letter, then the chat, the person it was made for (0: anyone, for a button in a group), when it
expires, a random nonce, and an HMAC of all that under a key of its own derived from
PASSGRAM_SECRET. Nobody can make one naming another chat or stretch its life; the nonce makes
it single-use once the gate records it as redeemed.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from storage.vault import Vault

PURPOSE = "passgram/deep-link/v1"
VERSION = "g"
MAX_LENGTH = 64
_ALPHABET = re.compile(r"[A-Za-z0-9_-]{1,64}")
# chat id (signed), user id (0: anyone), expiry (Unix seconds), nonce.
_BODY = struct.Struct(">qQI6s")
_MAC_BYTES = 12  # 96 bits: forging one takes 2^96 guesses, each a message to the bot
ENTRY_PREFIX = "gate:"


class Refusal(StrEnum):
    """Why a payload was refused."""

    MALFORMED = "malformed"
    TAMPERED = "tampered"
    EXPIRED = "expired"
    NOT_YOURS = "not_yours"
    USED = "used"


class BadLink(ValueError):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.value)
        self.refusal = refusal


@dataclass(frozen=True, slots=True)
class Token:
    chat_id: int
    user_id: int | None  # None: made for anyone
    expires_at: datetime
    nonce: str  # hex

    def redemption_key(self, vault: Vault, user_id: int) -> str:
        """What marks the token as used: once in all for a personal token, once per person for
        a group's button. Keyed, so the table of used links names nobody."""
        if self.user_id is not None:
            return self.nonce
        return vault.mac(PURPOSE, f"{self.nonce}:{user_id}")[:40]


class DeepLinks:
    def __init__(self, vault: Vault, bot_username: str) -> None:
        self._vault = vault
        self.bot_username = bot_username.lstrip("@")

    @property
    def vault(self) -> Vault:
        return self._vault

    def make(self, chat_id: int, expires_at: datetime, user_id: int | None = None) -> str:
        body = _BODY.pack(
            chat_id, user_id or 0, int(expires_at.timestamp()), secrets.token_bytes(6)
        )
        raw = body + self._mac(body)
        return VERSION + _encode(raw)

    def url(self, payload: str) -> str:
        return f"https://t.me/{self.bot_username}?start={payload}"

    def genuine(self, payload: str) -> bool:
        """Whether `payload` is a link this bot made (alive or not, for anyone)."""
        try:
            self._opened(payload)
        except BadLink:
            return False
        return True

    def read(self, payload: str, now: datetime, user_id: int) -> Token:
        """The token in `payload`, if it is genuine, alive and meant for `user_id`; BadLink
        otherwise. Whether it was used already is the store's to say."""
        chat_id, for_user, expires, nonce = _BODY.unpack(self._opened(payload))
        expires_at = datetime.fromtimestamp(expires, UTC)
        if now >= expires_at:
            raise BadLink(Refusal.EXPIRED)
        if for_user and for_user != user_id:
            raise BadLink(Refusal.NOT_YOURS)
        return Token(chat_id, for_user or None, expires_at, nonce.hex())

    def _opened(self, payload: str) -> bytes:
        """The body of a payload with a valid MAC; BadLink when it is malformed or forged."""
        if not _ALPHABET.fullmatch(payload) or not payload.startswith(VERSION):
            raise BadLink(Refusal.MALFORMED)
        text = payload[len(VERSION) :]
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise BadLink(Refusal.MALFORMED) from None
        # Only the canonical spelling: its last character has bits the decoder ignores, and a
        # payload is used up by what it decodes to, not by how it was spelt.
        if len(raw) != _BODY.size + _MAC_BYTES or _encode(raw) != text:
            raise BadLink(Refusal.MALFORMED)
        body, mac = raw[: _BODY.size], raw[_BODY.size :]
        if not hmac.compare_digest(mac, self._mac(body)):
            raise BadLink(Refusal.TAMPERED)
        return body

    def _mac(self, body: bytes) -> bytes:
        return bytes.fromhex(self._vault.mac(PURPOSE, body.hex()))[:_MAC_BYTES]


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def entry_for(chat_id: int) -> str:
    """The entry the conversation carries from a deep link to "linked"."""
    return f"{ENTRY_PREFIX}{chat_id}"


def chat_of(entry: str | None) -> int | None:
    """The chat an entry names, if it is a gate entry."""
    if not entry or not entry.startswith(ENTRY_PREFIX):
        return None
    try:
        return int(entry[len(ENTRY_PREFIX) :])
    except ValueError:
        return None
