"""Phone numbers and email addresses: parsing, normalising, masking.

Everything a person types as "who I am" goes through `parse_identifier`, which either returns a
normalised `Identifier` (E.164 for phones, the lower-cased normalised address for emails) or
raises `IdentifierError` with a `Reason` the conversation turns into a specific reply.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import NumberParseException, PhoneNumberType, ValidationResult

IdentifierKind = Literal["email", "phone"]


class Reason(StrEnum):
    """Why an identifier was refused; the conversation has one text per reason."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    TOO_SHORT = "too_short"
    NEEDS_COUNTRY = "needs_country"
    UNKNOWN_COUNTRY = "unknown_country"
    INVALID_NUMBER = "invalid_number"
    NOT_MOBILE = "not_mobile"
    BAD_EMAIL = "bad_email"


class IdentifierError(ValueError):
    def __init__(self, reason: Reason) -> None:
        super().__init__(reason.value)
        self.reason = reason


BULLETS = "•••"

# The longest address SMTP can carry is 254 characters, and no phone number, however decorated,
# comes close to 64. Anything longer is refused before a parser spends time on it (a Telegram
# message can be 4096 characters).
MAX_INPUT_LENGTH = 320
MAX_PHONE_INPUT_LENGTH = 64

# Number types that can receive a text message with a code.
#   MOBILE, FIXED_LINE_OR_MOBILE: the ordinary case (all of North America is the latter).
#   VOIP: accepted. Many VoIP ranges take SMS, the classification comes from static range tables
#     that lag behind porting, and refusing them would lock real people out; the defence against
#     SMS pumping is the send caps and the operator's country allowlist, not this check.
# Refused (NOT_MOBILE): FIXED_LINE, TOLL_FREE, PREMIUM_RATE, SHARED_COST, UAN and VOICEMAIL
# can't take a text; PAGER networks are one-way and all but gone; PERSONAL_NUMBER ranges (UK 070)
# are call-forwarding services billed like premium rate, a classic toll-fraud target.
# Telegram's SIM-less +888 "anonymous numbers" never get an SMS either, and are refused whichever
# way: +888 is a UAN range in the numbering plan, and theirs are shorter than its numbers.
SMS_CAPABLE_TYPES = frozenset(
    {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE, PhoneNumberType.VOIP}
)

# What people put between digits: spaces of every width, dashes of every length, dots, slashes
# (German style "0171/1234567") and brackets around area codes or a "(0)" trunk prefix.
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212\u30fc.\u00b7/()\[\]]+")
_PHONE_CHARS = re.compile(r"\+?[0-9]+")
_AT_SIGNS = ("@", "\uff20", "\ufe6b")  # ASCII, fullwidth and small commercial at


@dataclass(frozen=True, slots=True)
class Identifier:
    """A normalised identifier: E.164 for phones, the normalised address for emails."""

    kind: IdentifierKind
    value: str

    @property
    def masked(self) -> str:
        """Enough to recognise one's own identifier, not enough to learn someone else's.

        Phones: `+44 ••• ••• 0142`. A fixed pattern rather than the number's own grouping, so
        the mask does not give away the length or the operator prefix.
        Emails: `j•••@example.com`. The domain stays: it tells which inbox to look in.
        """
        if self.kind == "email":
            local, _, domain = self.value.rpartition("@")
            return f"{local[:1]}{BULLETS}@{domain}"
        number = _parse_stored_phone(self.value)
        if number is None:
            return f"{BULLETS} {BULLETS} {self.value[-2:]}"
        digits = phonenumbers.national_significant_number(number)
        # Four digits are what people recognise, but on the short numbering plans of small
        # territories (five digits on St Helena, four on Tokelau) that would be half or all of it.
        shown = min(4, len(digits) // 2)
        return f"+{number.country_code} {BULLETS} {BULLETS} {digits[-shown:]}"

    @property
    def display(self) -> str:
        """The full human-readable form: `+44 7400 123456`, `jane.doe@example.com`."""
        if self.kind == "email":
            return self.value
        number = _parse_stored_phone(self.value)
        if number is None:
            return self.value
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def parse_identifier(text: str, default_region: str | None = None) -> Identifier:
    """An email address when the text has an at sign, otherwise a phone number."""
    if len(text) > MAX_INPUT_LENGTH:
        raise IdentifierError(Reason.TOO_LONG)
    if not text.strip():
        raise IdentifierError(Reason.EMPTY)
    if any(at in text for at in _AT_SIGNS):
        return parse_email(text)
    return parse_phone(text, default_region)


def parse_phone(text: str, default_region: str | None = None) -> Identifier:
    """A number that can receive a text, in E.164.

    `default_region` (an ISO 3166 code such as "GB") is where numbers typed without a country
    code are from; without it, only international numbers (`+44…` or `0044…`) are understood.
    """
    region = _check_region(default_region)
    stripped = text.strip()
    if not stripped:
        raise IdentifierError(Reason.EMPTY)
    if len(stripped) > MAX_PHONE_INPUT_LENGTH:
        raise IdentifierError(Reason.TOO_LONG)

    compact = _compact_phone(stripped)
    if not _PHONE_CHARS.fullmatch(compact):
        raise IdentifierError(Reason.INVALID_NUMBER)
    if compact.startswith("00"):
        # The international prefix of most of the world; people type it instead of "+".
        compact = "+" + compact[2:]
    if not compact.startswith("+") and region is None:
        raise IdentifierError(Reason.NEEDS_COUNTRY)

    try:
        number = phonenumbers.parse(compact, region)
    except NumberParseException as exc:
        reason = _PARSE_ERRORS.get(exc.error_type, Reason.INVALID_NUMBER)
        if exc.error_type == NumberParseException.NOT_A_NUMBER and compact.strip("+"):
            # Only digits got this far, so "not a number" means too few of them ("+4").
            reason = Reason.TOO_SHORT
        raise IdentifierError(reason) from None
    if phonenumbers.region_code_for_country_code(number.country_code or 0) == _UNKNOWN_REGION:
        raise IdentifierError(Reason.UNKNOWN_COUNTRY)

    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible != ValidationResult.IS_POSSIBLE:
        raise IdentifierError(_LENGTH_ERRORS.get(possible, Reason.INVALID_NUMBER))
    if not phonenumbers.is_valid_number(number):
        raise IdentifierError(Reason.INVALID_NUMBER)
    if phonenumbers.number_type(number) not in SMS_CAPABLE_TYPES:
        raise IdentifierError(Reason.NOT_MOBILE)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Identifier("phone", e164)


def parse_email(text: str) -> Identifier:
    """A syntactically valid address, normalised and lower-cased (no DNS lookup).

    The whole address is lower-cased, local part included. RFC 5321 lets a server treat
    `Jane@` and `jane@` as different mailboxes, but no mainstream provider does, and one person
    must not end up with two accounts because of a capital letter; lookups are case-insensitive
    anyway.
    """
    stripped = _fold_compatibility(text.strip())
    if not stripped:
        raise IdentifierError(Reason.EMPTY)
    if len(stripped) > MAX_INPUT_LENGTH:
        raise IdentifierError(Reason.TOO_LONG)
    if stripped[:7].lower() == "mailto:":  # pasted from a link
        stripped = stripped[7:]
    try:
        result = validate_email(stripped, check_deliverability=False)
    except EmailNotValidError:
        raise IdentifierError(Reason.BAD_EMAIL) from None
    return Identifier("email", result.normalized.lower())


_UNKNOWN_REGION = "ZZ"

_PARSE_ERRORS = {
    NumberParseException.INVALID_COUNTRY_CODE: Reason.UNKNOWN_COUNTRY,
    NumberParseException.TOO_SHORT_AFTER_IDD: Reason.TOO_SHORT,
    NumberParseException.TOO_SHORT_NSN: Reason.TOO_SHORT,
    NumberParseException.TOO_LONG: Reason.TOO_LONG,
}

_LENGTH_ERRORS = {
    ValidationResult.INVALID_COUNTRY_CODE: Reason.UNKNOWN_COUNTRY,
    ValidationResult.TOO_SHORT: Reason.TOO_SHORT,
    # Possible only within its own area: the area code is missing, so it is short.
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: Reason.TOO_SHORT,
    ValidationResult.TOO_LONG: Reason.TOO_LONG,
    # A length between two lengths the country uses: a typo, not "too short" or "too long".
    ValidationResult.INVALID_LENGTH: Reason.INVALID_NUMBER,
}


def _check_region(region: str | None) -> str | None:
    """A configuration mistake, not the user's: fail loudly rather than refuse every number."""
    if region is None or not region.strip():
        return None
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown region code {region!r}: use an ISO 3166 code such as 'US'")
    return code


def _fold_compatibility(text: str) -> str:
    # NFKC turns fullwidth forms (what a CJK input method types) into ASCII: "＋４４" → "+44",
    # "ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ" → "jane@example.com".
    return unicodedata.normalize("NFKC", text)


def _compact_phone(text: str) -> str:
    """ASCII digits and an optional leading "+", separators removed; anything else kept as is."""
    folded = _fold_compatibility(text)
    if folded[:4].lower() == "tel:":  # pasted from a link
        folded = folded[4:]
    # Arabic-Indic, Persian, Devanagari, Bengali… digits are decimal digits to Unicode; NFKC
    # leaves them alone, so map each to its ASCII value.
    digits = "".join(
        str(value) if (value := unicodedata.decimal(char, None)) is not None else char
        for char in folded
    )
    return _SEPARATORS.sub("", digits)


def _parse_stored_phone(value: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(value, None)
    except NumberParseException:
        return None
