"""The gate's plain data: a chat's policy and settings, and what /me lists."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeAlias

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from bot.identifiers import Identifier, country_name

Mode: TypeAlias = Literal["join_requests", "members"]
ChatKind: TypeAlias = Literal["group", "supergroup", "channel"]
PolicyKind: TypeAlias = Literal["any", "email-domain", "phone-country"]

MODES: tuple[Mode, ...] = ("join_requests", "members")
CHAT_KINDS: tuple[ChatKind, ...] = ("group", "supergroup", "channel")
MIN_TIMEOUT = 30
MAX_TIMEOUT = 86_400
DEFAULT_TIMEOUT = 600
# Enough for a university's or a company's domains; the stored form must fit its column.
MAX_POLICY_VALUES = 20
MAX_POLICY_LENGTH = 512

# The admin rights the gate needs, by Bot API name: approving join requests and making invite
# links; restricting, and removing (ban then unban); deleting messages in groups.
RIGHTS_GROUP = ("can_invite_users", "can_restrict_members", "can_delete_messages")
RIGHTS_CHANNEL = ("can_invite_users", "can_restrict_members")


class PolicyError(ValueError):
    """A policy that can't be read; the message says what is wrong, in one line."""


@dataclass(frozen=True, slots=True)
class Policy:
    """Who may get in, among people who signed in: anyone, addresses at some domains, or phone
    numbers of some countries."""

    kind: PolicyKind = "any"
    values: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Policy:
        """`any`, `email-domain:example.com,example.org` or `phone-country:GB,US`."""
        raw = text.strip()
        if len(raw) > MAX_POLICY_LENGTH:
            raise PolicyError("policy too long")
        name, _, rest = raw.partition(":")
        name = name.strip().lower()
        if name == "any":
            if rest.strip():
                raise PolicyError("'any' takes no values")
            return cls("any")
        if name not in ("email-domain", "phone-country"):
            raise PolicyError(
                f"unknown policy {name or raw!r}: use any, email-domain:DOMAIN[,DOMAIN…] "
                "or phone-country:CC[,CC…]"
            )
        entries = [entry.strip() for entry in rest.split(",") if entry.strip()]
        if not entries:
            raise PolicyError(f"{name} needs at least one value, e.g. {_EXAMPLES[name]}")
        if name == "email-domain":
            values = {_domain(entry) for entry in entries}
            kind: PolicyKind = "email-domain"
        else:
            values = {_country(entry) for entry in entries}
            kind = "phone-country"
        if len(values) > MAX_POLICY_VALUES:
            raise PolicyError(f"at most {MAX_POLICY_VALUES} values")
        policy = cls(kind, tuple(sorted(values)))
        if len(str(policy)) > MAX_POLICY_LENGTH:
            raise PolicyError("policy too long")
        return policy

    def allows(self, identifier: Identifier) -> bool:
        if self.kind == "any":
            return True
        if self.kind == "email-domain":
            if identifier.kind != "email":
                return False
            domain = identifier.value.rpartition("@")[2].lower()
            return domain in self.values
        if identifier.kind != "phone":
            return False
        try:
            number = phonenumbers.parse(identifier.value, None)
        except phonenumbers.NumberParseException:
            return False
        return phonenumbers.region_code_for_number(number) in self.values

    def describe(self) -> str:
        """What the policy accepts, in words: "addresses at example.com"."""
        if self.kind == "any":
            return "anyone who signs in"
        if self.kind == "email-domain":
            return f"addresses at {_either(list(self.values))}"
        names = [country_name(code) for code in self.values]
        return f"phone numbers from {_either(names)}"

    def __str__(self) -> str:
        if self.kind == "any":
            return "any"
        return f"{self.kind}:{','.join(self.values)}"


@dataclass(frozen=True, slots=True)
class ChatSettings:
    chat_id: int
    title: str
    kind: ChatKind
    enabled: bool = False
    mode: Mode = "join_requests"
    policy: Policy = Policy("any")
    timeout: int = DEFAULT_TIMEOUT  # seconds, MIN_TIMEOUT..MAX_TIMEOUT
    require_live_link: bool = True  # sign-out/erasure removes the member

    @property
    def can_restrict(self) -> bool:
        """Telegram restricts members of groups only; channels have no "may not write"."""
        return self.kind != "channel"


@dataclass(frozen=True, slots=True)
class AdmittedChat:
    """A gated chat someone was let into, for their /me."""

    chat_id: int
    title: str
    since: datetime


def parse_mode(text: str) -> Mode:
    value = text.strip().lower().replace("-", "_")
    if value == "join_requests":
        return "join_requests"
    if value == "members":
        return "members"
    raise ValueError("mode is join_requests or members")


def parse_kind(text: str) -> ChatKind:
    if text == "channel":
        return "channel"
    return "group" if text == "group" else "supergroup"


def parse_timeout(text: str | int) -> int:
    try:
        seconds = int(text)
    except ValueError:
        raise ValueError(f"timeout is seconds, from {MIN_TIMEOUT} to {MAX_TIMEOUT}") from None
    if not MIN_TIMEOUT <= seconds <= MAX_TIMEOUT:
        raise ValueError(f"timeout is seconds, from {MIN_TIMEOUT} to {MAX_TIMEOUT}")
    return seconds


def required_rights(kind: str) -> tuple[str, ...]:
    return RIGHTS_CHANNEL if kind == "channel" else RIGHTS_GROUP


def missing_rights(kind: str, rights: Collection[str] | None) -> tuple[str, ...]:
    """The rights the gate needs that the bot lacks (all of them when it is no admin)."""
    have = set(rights or ())
    return tuple(right for right in required_rights(kind) if right not in have)


_EXAMPLES = {"email-domain": "email-domain:example.com", "phone-country": "phone-country:GB"}


def _domain(entry: str) -> str:
    # The same normalisation addresses get when people type them, so a domain typed in capitals
    # or in Unicode matches the addresses stored.
    text = entry.removeprefix("@").strip()
    try:
        return validate_email(f"x@{text}", check_deliverability=False).domain.lower()
    except EmailNotValidError:
        raise PolicyError(f"{entry!r} is not an email domain") from None


def _country(entry: str) -> str:
    code = entry.upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise PolicyError(f"unknown country {entry!r}: use ISO codes such as GB or US")
    return code


def _either(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} or {items[-1]}"
