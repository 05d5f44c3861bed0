"""Phone numbers and email addresses: parsing, normalising, masking.

Everything a person types as "who I am" goes through `parse_identifier`, which either returns a
normalised `Identifier` (E.164 for phones, the normalised address for emails) or raises
`IdentifierError` with a `Reason` the conversation turns into a specific reply.
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import phonenumbers
from babel import Locale, UnknownLocaleError
from confusable_homoglyphs import categories, confusables  # type: ignore[import-untyped]
from email_validator import EmailNotValidError, validate_email
from phonenumbers import NumberParseException, PhoneNumberType, ValidationResult

IdentifierKind = Literal["email", "phone"]


class Reason(StrEnum):
    """Why an identifier was refused; the conversation has one text per reason, its key
    `reason_<value>`."""

    EMPTY = "empty"
    NOT_IDENTIFIER = "not_identifier"  # no digit and no at sign: neither a number nor an address
    TOO_LONG = "too_long"
    TOO_SHORT = "too_short"
    NEEDS_COUNTRY = "needs_country"
    UNKNOWN_COUNTRY = "unknown_country"
    INVALID_NUMBER = "invalid_number"
    # Valid numbers that can't take a text, one reason per kind so the reply can name it.
    NOT_MOBILE = "not_mobile"  # a landline
    TOLL_FREE = "toll_free"
    PREMIUM_RATE = "premium_rate"
    SHARED_COST = "shared_cost"
    PERSONAL_NUMBER = "personal_number"
    PAGER = "pager"
    UAN = "uan"
    VOICEMAIL = "voicemail"
    # Mobiles where codes are not sent: outside SMS_COUNTRIES, or on an international network.
    SMS_COUNTRY = "sms_country"
    SMS_NETWORK = "sms_network"
    BAD_EMAIL = "bad_email"
    EMAIL_TOO_LONG = "email_too_long"
    MIXED_SCRIPT_DOMAIN = "mixed_script_domain"
    LOOKALIKE_DOMAIN = "lookalike_domain"


class IdentifierError(ValueError):
    """A refused identifier. `region` is the refused number's country (ISO code), for
    `Reason.SMS_COUNTRY`; nothing else of what was typed is kept."""

    def __init__(self, reason: Reason, *, region: str | None = None) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.region = region

    def text_values(self, lang: str) -> dict[str, str]:
        """What the reason's text needs filled in, in language `lang` (`{country}`)."""
        if self.region is None:
            return {}
        return {"country": country_name(self.region, lang)}


BULLETS = "•••"

# The longest address SMTP can carry is 254 characters (64 before the at sign), and no phone
# number, however decorated, comes close to 64. Anything longer is refused before a parser spends
# time on it (a Telegram message can be 4096 characters).
MAX_EMAIL_LENGTH = 254
MAX_LOCAL_PART_LENGTH = 64
MAX_PHONE_INPUT_LENGTH = 64

# Number types that can receive a text message with a code.
#   MOBILE, FIXED_LINE_OR_MOBILE: the ordinary case (all of North America is the latter).
#   VOIP: accepted. Many VoIP ranges take SMS, the classification comes from static range tables
#     that lag behind porting, and refusing them would lock real people out; the defence against
#     SMS pumping is the send caps and the country allowlist (`SmsRegions`), not this check.
SMS_CAPABLE_TYPES = frozenset(
    {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE, PhoneNumberType.VOIP}
)
# Everything else is refused, saying what the number is: landlines, freephone, premium-rate,
# shared-cost, UAN and voicemail-access numbers can't take a text; pager networks are one-way and
# all but gone; personal numbers (UK 070) are call-forwarding services billed like premium rate,
# a classic toll-fraud target. Telegram's SIM-less +888 "anonymous numbers" never get an SMS
# either, and are refused whichever way: +888 is a UAN range in the numbering plan, and theirs
# are shorter than its numbers.
_TYPE_REASONS = {
    PhoneNumberType.FIXED_LINE: Reason.NOT_MOBILE,
    PhoneNumberType.TOLL_FREE: Reason.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE: Reason.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST: Reason.SHARED_COST,
    PhoneNumberType.PERSONAL_NUMBER: Reason.PERSONAL_NUMBER,
    PhoneNumberType.PAGER: Reason.PAGER,
    PhoneNumberType.UAN: Reason.UAN,
    PhoneNumberType.VOICEMAIL: Reason.VOICEMAIL,
}

# Clerk's and Stytch's default: SMS to the United States and Canada only. Every other country is
# a decision the operator makes knowing what texts there cost.
DEFAULT_SMS_COUNTRIES = "US,CA"
# phonenumbers' region for calling codes that belong to no country (+800, +870, +881, +882…).
_NON_GEOGRAPHIC = "001"

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


@dataclass(frozen=True, slots=True)
class SmsRegions:
    """Where codes may be texted: the SMS_COUNTRIES setting, parsed.

    Countries by ISO code, or all of them (`*`). Numbers of international networks (satellite
    phones such as +881 and +870, carriers on +882 and +883) cost the most to text and are where
    SMS pumping pays best, so they are never in `*`: each is allowed only by its calling code.
    """

    regions: frozenset[str] = frozenset()
    every_region: bool = False
    networks: frozenset[int] = frozenset()

    @classmethod
    def parse(cls, text: str) -> SmsRegions:
        """`"US,CA"`, `"*"`, `"*,+882"`…; ValueError with one line saying what is wrong."""
        regions: set[str] = set()
        networks: set[int] = set()
        every_region = False
        for raw in text.split(","):
            entry = raw.strip().upper()
            if not entry:
                continue
            if entry == "*":
                every_region = True
            elif entry.startswith("+") and entry[1:].isdigit():
                code = int(entry[1:])
                if code not in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
                    region = phonenumbers.region_code_for_country_code(code)
                    if region == _UNKNOWN_REGION:
                        raise ValueError(f"{entry} is no calling code in use")
                    raise ValueError(
                        f"{entry} is a country calling code: list countries by ISO code, "
                        f"such as {region}"
                    )
                networks.add(code)
            elif entry in phonenumbers.SUPPORTED_REGIONS:
                regions.add(entry)
            else:
                raise ValueError(
                    f"unknown country {entry!r}: use ISO codes such as US,CA, * for every "
                    "country, or an international network's calling code such as +882"
                )
        if not (regions or networks or every_region):
            raise ValueError("empty: use ISO codes such as US,CA, or * for every country")
        return cls(frozenset(regions), every_region, frozenset(networks))

    def __str__(self) -> str:
        every = ["*"] if self.every_region else []
        return ",".join(
            every + sorted(self.regions) + [f"+{code}" for code in sorted(self.networks)]
        )

    def check(self, number: phonenumbers.PhoneNumber) -> None:
        """Raises the reason a code may not be texted to `number`."""
        region = phonenumbers.region_code_for_number(number)
        if region == _NON_GEOGRAPHIC:
            if number.country_code not in self.networks:
                raise IdentifierError(Reason.SMS_NETWORK)
        elif not (self.every_region or region in self.regions):
            raise IdentifierError(Reason.SMS_COUNTRY, region=region)


EVERY_COUNTRY = SmsRegions(every_region=True)


def parse_identifier(
    text: str, default_region: str | None = None, *, sms_regions: SmsRegions | None = None
) -> Identifier:
    """An email address when the text has an at sign, a phone number when it has a digit.

    `sms_regions` is where codes may be texted (the SMS_COUNTRIES setting); None means every
    country, but still no international network.
    """
    if not text.strip():
        raise IdentifierError(Reason.EMPTY)
    if any(at in text for at in _AT_SIGNS):
        return parse_email(text)
    if not _ANY_DIGIT.search(text):
        # "hello", "who are you?": not a wrong number, and saying so would confuse.
        raise IdentifierError(Reason.NOT_IDENTIFIER)
    return parse_phone(text, default_region, sms_regions=sms_regions)


def parse_phone(
    text: str, default_region: str | None = None, *, sms_regions: SmsRegions | None = None
) -> Identifier:
    """A number that can receive a text, in E.164, where codes may be texted.

    `default_region` (an ISO 3166 code such as "GB") is where numbers typed without a country
    code are from; without it, only international numbers (`+44…` or `0044…`) are understood.
    `sms_regions`: see `parse_identifier`.
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
    kind = phonenumbers.number_type(number)
    if kind not in SMS_CAPABLE_TYPES:
        raise IdentifierError(_TYPE_REASONS.get(kind, Reason.INVALID_NUMBER))
    (sms_regions or EVERY_COUNTRY).check(number)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Identifier("phone", e164)


def parse_email(text: str) -> Identifier:
    """A syntactically valid address, normalised (no DNS lookup).

    Case: the domain is folded as IDNA folds it. Before the at sign only ASCII letters are
    lower-cased. RFC 5321 lets a server treat `Jane@` and `jane@` as different mailboxes, but no
    mainstream provider does, one person must not end up with two accounts because of a capital
    letter, and addresses stored so far were folded that way (their blind indexes still match).
    Other letters stay as typed: Unicode's lower-casing is not a mailbox's (`İstanbul` would
    become `i̇stanbul`, with a combining dot: another address), and mail servers that take
    non-ASCII addresses compare them as they are.

    Domains: each label must be in one script, and not in letters that only look Latin
    (`exаmple` with a Cyrillic а, `аррӏе` all Cyrillic). What remains, such as `пример.рф`, is
    kept and shown in Unicode: it cannot pass for a Latin name, and its owner reads it, where
    `xn--e1afmkfd.xn--p1ai` would tell them nothing.
    """
    stripped = _fold_compatibility(text.strip())
    if not stripped:
        raise IdentifierError(Reason.EMPTY)
    if stripped[:7].lower() == "mailto:":  # pasted from a link
        stripped = stripped[7:]
    local, at, _ = stripped.rpartition("@")
    if len(stripped) > MAX_EMAIL_LENGTH or (at and len(local) > MAX_LOCAL_PART_LENGTH):
        raise IdentifierError(Reason.EMAIL_TOO_LONG)
    try:
        result = validate_email(stripped, check_deliverability=False)
    except EmailNotValidError:
        raise IdentifierError(Reason.BAD_EMAIL) from None
    for label in result.domain.split("."):
        _check_label(label)
    return Identifier("email", f"{result.local_part.translate(_ASCII_LOWER)}@{result.domain}")


_UNKNOWN_REGION = "ZZ"
_ANY_DIGIT = re.compile(r"\d")  # any script's decimal digits, as _compact_phone reads them
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)

# Scripts written together, as UTS #39's "highly restrictive" level allows: Japanese (Han and
# kana), Korean (Hangul with Hanja) and Chinese with Bopomofo, each also with Latin. None of
# their letters passes for an ASCII one. Any other mix, Latin with Cyrillic or Greek above all,
# is how look-alike domains are made.
_SCRIPTS_WRITTEN_TOGETHER = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
)
_NO_SCRIPT = frozenset({"COMMON", "INHERITED"})  # digits, hyphens, combining marks
_LOOK_ASCII = frozenset(string.ascii_lowercase + string.digits)

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


def _check_label(label: str) -> None:
    """Refuses a domain label that could pass for another one (UTS #39 mixed-script and
    whole-script confusable checks, with Unicode's confusables data)."""
    if label.isascii():
        return
    scripts = {categories.alias(char) for char in label} - _NO_SCRIPT
    if len(scripts) > 1 and not any(scripts <= group for group in _SCRIPTS_WRITTEN_TOGETHER):
        raise IdentifierError(Reason.MIXED_SCRIPT_DOMAIN)
    if all(char.isascii() or _looks_ascii(char) for char in label):
        raise IdentifierError(Reason.LOOKALIKE_DOMAIN)


def _looks_ascii(char: str) -> bool:
    # A combining mark IDNA left uncomposed sits on a letter that has no accented form, so it
    # reads as that letter (i and a dot above is the İ of `İBM`).
    if categories.alias(char) == "INHERITED":
        return True
    homoglyphs = confusables.confusables_data.get(char, ())
    return any(glyph["c"] in _LOOK_ASCII for glyph in homoglyphs)


@functools.lru_cache(maxsize=1024)
def country_name(region: str, lang: str = "en") -> str:
    """A country's name (ISO code `region`) in language `lang` (a Telegram language code such as
    "de" or "pt-br"), else in English, else the code itself.

    From CLDR through Babel, which loads one language's names when first asked: phonenumbers'
    own names come with its geocoder, whose import holds about 100 MB of place names per
    process for nothing else.
    """
    for code in (lang, "en"):
        try:
            name = Locale.parse(code, sep="-").territories.get(region)
        except (ValueError, UnknownLocaleError):
            continue
        if name:
            return str(name)
    return region


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
