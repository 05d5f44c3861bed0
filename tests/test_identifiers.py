"""Phone numbers and email addresses as people type them."""

from __future__ import annotations

import dataclasses
import unicodedata

import phonenumbers
import pytest
from email_validator import validate_email
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from bot.config import ConfigError, load_settings
from bot.conversation import texts
from bot.identifiers import (
    DEFAULT_SMS_COUNTRIES,
    Identifier,
    IdentifierError,
    Reason,
    SmsRegions,
    parse_email,
    parse_identifier,
    parse_phone,
)
from storage.vault import Vault

MOBILE_EXAMPLES = [
    (region, example)
    for region in sorted(phonenumbers.SUPPORTED_REGIONS)
    if (example := phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE))
]


def test_every_region_has_a_mobile_example_but_tristan_da_cunha() -> None:
    # Guards the table below against a metadata update that silently empties it.
    regions = {region for region, _ in MOBILE_EXAMPLES}
    assert phonenumbers.SUPPORTED_REGIONS - regions <= {"TA"}
    assert len(regions) > 200


@pytest.mark.parametrize(
    ("region", "example"), MOBILE_EXAMPLES, ids=[region for region, _ in MOBILE_EXAMPLES]
)
def test_every_regions_mobile_number_parses_international_and_national(
    region: str, example: phonenumbers.PhoneNumber
) -> None:
    e164 = phonenumbers.format_number(example, PhoneNumberFormat.E164)
    international = phonenumbers.format_number(example, PhoneNumberFormat.INTERNATIONAL)
    national = phonenumbers.format_number(example, PhoneNumberFormat.NATIONAL)

    assert parse_identifier(international) == Identifier("phone", e164)
    assert parse_identifier(national, default_region=region) == Identifier("phone", e164)
    assert parse_identifier(e164, default_region=region).value == e164
    # What is shown is what parses back to the same number.
    shown = Identifier("phone", e164).display
    assert parse_identifier(shown).value == e164


@pytest.mark.parametrize(
    ("typed", "region"),
    [
        ("+44 7400 123456", None),
        ("+447400123456", None),
        ("07400 123456", "GB"),
        ("07400 123456", "gb"),
        ("0044 7400 123456", None),  # "00" international prefix
        ("0044 7400 123456", "US"),
        ("011 44 7400 123456", "US"),  # the US international prefix, known from the region
        ("+44 (0) 7400 123456", None),  # British habit: the trunk zero in brackets
        ("+44-7400-123-456", None),
        ("+44.7400.123.456", None),
        ("(07400) 123 456", "GB"),
        ("  +44 7400 123456\n", None),
        ("+44\u00a07400\u2009123456", None),  # no-break and thin spaces
        ("+44 7400 123\u2013456", None),  # en dash
        ("tel:+44-7400-123456", None),
    ],
)
def test_phone_punctuation_and_prefixes(typed: str, region: str | None) -> None:
    assert parse_identifier(typed, default_region=region) == Identifier("phone", "+447400123456")


@pytest.mark.parametrize(
    "typed",
    [
        "+٤٤ ٧٤٠٠ ١٢٣٤٥٦",  # Arabic-Indic
        "+۴۴ ۷۴۰۰ ۱۲۳۴۵۶",  # Extended Arabic-Indic (Persian, Urdu)
        "＋４４　７４００　１２３４５６",  # fullwidth, as a Japanese input method types it
        "+४४ ७४०० १२३४५६",  # Devanagari
        "+৪৪ ৭৪০০ ১২৩৪৫৬",  # Bengali
    ],
)
def test_non_ascii_digits_are_read_as_digits(typed: str) -> None:
    assert parse_identifier(typed) == Identifier("phone", "+447400123456")


def test_national_number_in_arabic_indic_digits_with_a_region() -> None:
    assert parse_phone("٠٧٤٠٠ ١٢٣٤٥٦", "GB").value == "+447400123456"


@pytest.mark.parametrize(
    ("typed", "region", "reason"),
    [
        ("", None, Reason.EMPTY),
        ("   \n\t", None, Reason.EMPTY),
        # A national number and no idea which nation: the reply asks for the + form.
        ("07400 123456", None, Reason.NEEDS_COUNTRY),
        ("447400123456", None, Reason.NEEDS_COUNTRY),
        ("+999 1234 5678", None, Reason.UNKNOWN_COUNTRY),
        ("+0 1234 5678", None, Reason.UNKNOWN_COUNTRY),
        ("00999 1234 5678", None, Reason.UNKNOWN_COUNTRY),
        ("+44 74", None, Reason.TOO_SHORT),
        ("+4", None, Reason.TOO_SHORT),
        ("0", "GB", Reason.TOO_SHORT),
        ("555 0123", "US", Reason.TOO_SHORT),  # a local number without its area code
        ("+44 7400 123456 789", None, Reason.TOO_LONG),
        ("+1 201 555 0123 4567 8901", None, Reason.TOO_LONG),
        ("+44 7400 12345", None, Reason.INVALID_NUMBER),  # a length between two valid ones
        ("+1 123 456 7890", None, Reason.INVALID_NUMBER),  # no area code 123
        ("+44 7700 900142", None, Reason.INVALID_NUMBER),  # Ofcom's drama range: never assigned
        ("+1 555 555 0100", None, Reason.INVALID_NUMBER),  # no area code 555
        ("+44 7400 ABC", None, Reason.INVALID_NUMBER),
        ("1-800-FLOWERS", "US", Reason.INVALID_NUMBER),
        ("+44 7400 123456 ext 12", None, Reason.INVALID_NUMBER),
        ("++44 7400 123456", None, Reason.INVALID_NUMBER),
    ],
)
def test_refused_phone_numbers(typed: str, region: str | None, reason: Reason) -> None:
    with pytest.raises(IdentifierError) as refused:
        parse_identifier(typed, default_region=region)
    assert refused.value.reason is reason


def test_telegram_anonymous_numbers_are_refused() -> None:
    # Fragment's SIM-less numbers receive no SMS; whatever the reason, they must not pass.
    with pytest.raises(IdentifierError):
        parse_identifier("+888 0123 4567")


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("+44 56 1234 5678", "+445612345678"),  # VoIP: accepted, many take SMS
        ("+1 201 555 0123", "+12015550123"),  # North America: fixed line or mobile, can't tell
        ("+1 201 555 0100", "+12015550100"),  # Clerk's test numbers are real-looking
    ],
)
def test_accepted_number_types(typed: str, expected: str) -> None:
    assert parse_identifier(typed).value == expected


def test_an_unknown_default_region_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="region"):
        parse_identifier("07400 123456", default_region="XX")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1" * 10_000, Reason.TOO_LONG),
        ("+" + "4" * 70, Reason.TOO_LONG),
        ("+44 7400 123456 " * 250, Reason.TOO_LONG),
        # Text with an at sign is an email address, however long: it is too long for one.
        ("a@" + "b" * 10_000, Reason.EMAIL_TOO_LONG),
        ("jane@example.com " * 250, Reason.EMAIL_TOO_LONG),
        ("j" * 3_990 + "@example.com", Reason.EMAIL_TOO_LONG),
        # No digit and no at sign: neither, whatever the length.
        ("x" * 10_000, Reason.NOT_IDENTIFIER),
    ],
)
def test_huge_input_gets_the_reason_of_what_it_looks_like(text: str, reason: Reason) -> None:
    with pytest.raises(IdentifierError) as refused:
        parse_identifier(text)
    assert refused.value.reason is reason


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("jane.doe@example.com", "jane.doe@example.com"),
        ("  Jane.Doe@Example.COM ", "jane.doe@example.com"),
        ("jane+clerk_test@example.com", "jane+clerk_test@example.com"),
        ("mailto:jane@example.com", "jane@example.com"),
        ("ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", "jane@example.com"),  # fullwidth
        ("jane@BÜCHER.example", "jane@bücher.example"),  # internationalised domain, kept readable
        ("jane@xn--bcher-kva.example", "jane@bücher.example"),  # the same, typed as punycode
        ("Jörg@Example.DE", "jörg@example.de"),
    ],
)
def test_emails_are_normalised_and_lower_cased(typed: str, expected: str) -> None:
    assert parse_identifier(typed) == Identifier("email", expected)


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("jane@", Reason.BAD_EMAIL),
        ("@example.com", Reason.BAD_EMAIL),
        ("jane@@example.com", Reason.BAD_EMAIL),
        ("jane doe@example.com", Reason.BAD_EMAIL),
        ("jane@example", Reason.BAD_EMAIL),  # no dot in the domain
        ("jane@localhost", Reason.BAD_EMAIL),
        ("jane@-example.com", Reason.BAD_EMAIL),
        ("jane@example..com", Reason.BAD_EMAIL),
        ("jane..doe@example.com", Reason.BAD_EMAIL),
        ('"jane"@example.com', Reason.BAD_EMAIL),
        ("jane@[127.0.0.1]", Reason.BAD_EMAIL),
        ("Jane <jane@example.com>", Reason.BAD_EMAIL),
        ("jane@" + "a" * 64 + ".com", Reason.BAD_EMAIL),  # a label of 64, over DNS's 63
        # Over SMTP's 254 in all, or its 64 before the at sign.
        ("j" * 250 + "@example.com", Reason.EMAIL_TOO_LONG),
        ("jane@" + "a" * 250 + ".com", Reason.EMAIL_TOO_LONG),
        ("j" * 65 + "@example.com", Reason.EMAIL_TOO_LONG),
        (" @ ", Reason.BAD_EMAIL),
        ("", Reason.EMPTY),
    ],
)
def test_refused_emails(typed: str, reason: Reason) -> None:
    with pytest.raises(IdentifierError) as refused:
        parse_identifier(typed)
    assert refused.value.reason is reason


def test_parse_email_on_its_own() -> None:
    assert parse_email("Jane@Example.com").value == "jane@example.com"
    with pytest.raises(IdentifierError) as refused:
        parse_email("   ")
    assert refused.value.reason is Reason.EMPTY


def test_the_same_number_typed_differently_is_the_same_identifier() -> None:
    typed = ["+44 7400 123456", "07400-123-456", "0044 (0)7400 123456", "+٤٤٧٤٠٠١٢٣٤٥٦"]
    identifiers = {parse_identifier(text, default_region="GB") for text in typed}
    assert identifiers == {Identifier("phone", "+447400123456")}


def test_identifiers_are_immutable() -> None:
    identifier = parse_identifier("jane@example.com")
    with pytest.raises(dataclasses.FrozenInstanceError):
        identifier.value = "mallory@example.com"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("identifier", "masked", "display"),
    [
        (Identifier("phone", "+12015550142"), "+1 ••• ••• 0142", "+1 201-555-0142"),
        (Identifier("phone", "+447400900142"), "+44 ••• ••• 0142", "+44 7400 900142"),
        (Identifier("phone", "+4915123456789"), "+49 ••• ••• 6789", "+49 1512 3456789"),
        (Identifier("phone", "+33612345678"), "+33 ••• ••• 5678", "+33 6 12 34 56 78"),
        # Short numbering plans show fewer digits, never most of the number.
        (Identifier("phone", "+29062889"), "+290 ••• ••• 89", "+290 62889"),
        (Identifier("phone", "+6907290"), "+690 ••• ••• 90", "+690 7290"),
        (Identifier("email", "jane.doe@example.com"), "j•••@example.com", "jane.doe@example.com"),
        (Identifier("email", "j@example.com"), "j•••@example.com", "j@example.com"),
        (Identifier("email", "jörg@bücher.example"), "j•••@bücher.example", "jörg@bücher.example"),
    ],
)
def test_masked_and_display_forms(identifier: Identifier, masked: str, display: str) -> None:
    assert identifier.masked == masked
    assert identifier.display == display


def test_masked_phone_hides_everything_but_the_country_and_the_last_digits() -> None:
    identifier = parse_identifier("+44 7400 123456")
    assert "7400" not in identifier.masked
    assert "12" not in identifier.masked
    assert identifier.masked.startswith("+44 ")
    assert identifier.masked.endswith(" 3456")


def test_parsed_identifiers_mask_and_display() -> None:
    phone = parse_identifier("07400 123456", default_region="GB")
    email = parse_identifier("Jane.Doe@Example.com")
    assert (phone.masked, phone.display) == ("+44 ••• ••• 3456", "+44 7400 123456")
    assert (email.masked, email.display) == ("j•••@example.com", "jane.doe@example.com")


def test_reason_travels_with_the_error() -> None:
    error = IdentifierError(Reason.NOT_MOBILE)
    assert isinstance(error, ValueError)
    assert str(error) == "not_mobile"
    assert error.text_values("en") == {}


# --- what the text is --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    ["hello", "Hi there!", "HELP", "who are you?", "привет", "👋", "+", "-- ..", "phone", "email"],
)
def test_text_with_no_digit_and_no_at_sign_is_neither_number_nor_address(typed: str) -> None:
    with pytest.raises(IdentifierError) as refused:
        parse_identifier(typed, default_region="GB")
    assert refused.value.reason is Reason.NOT_IDENTIFIER


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("call me on 07400 123456", Reason.INVALID_NUMBER),  # digits: an attempt at a number
        ("+44 seven four 0 0", Reason.INVALID_NUMBER),
        ("jane at example dot com", Reason.NOT_IDENTIFIER),
        ("jane(at)example.com", Reason.NOT_IDENTIFIER),
        ("jane@", Reason.BAD_EMAIL),  # an at sign: an attempt at an address
    ],
)
def test_digits_make_a_number_and_an_at_sign_an_address(typed: str, reason: Reason) -> None:
    with pytest.raises(IdentifierError) as refused:
        parse_identifier(typed, default_region="GB")
    assert refused.value.reason is reason


# --- numbers that can't take a text, each with its own reason --------------------------------

NUMBER_TYPES = [
    ("+44 20 7946 0018", Reason.NOT_MOBILE, "landline"),
    ("+44 121 234 5678", Reason.NOT_MOBILE, "landline"),
    ("+44 800 123 4567", Reason.TOLL_FREE, "freephone"),
    ("+1 800 234 5678", Reason.TOLL_FREE, "freephone"),
    ("+800 1234 5678", Reason.TOLL_FREE, "freephone"),  # international freephone
    ("+44 901 234 5678", Reason.PREMIUM_RATE, "premium-rate"),
    ("+979 123 456 789", Reason.PREMIUM_RATE, "premium-rate"),  # international premium rate
    ("+49 180 1 2345", Reason.SHARED_COST, "shared-cost"),
    ("+808 1234 5678", Reason.SHARED_COST, "shared-cost"),  # international shared cost
    ("+44 70 1234 5678", Reason.PERSONAL_NUMBER, "personal number"),  # call forwarding
    ("+44 76 4012 3456", Reason.PAGER, "pager"),
    ("+44 55 1234 5678", Reason.UAN, "universal access number"),
    ("+888 123 456 78901", Reason.UAN, "universal access number"),  # as the plan has +888
    ("+49 177 99 1234567", Reason.VOICEMAIL, "voicemail"),
]


@pytest.mark.parametrize(("typed", "reason", "words"), NUMBER_TYPES)
def test_numbers_that_cannot_take_a_text_say_what_they_are(
    typed: str, reason: Reason, words: str
) -> None:
    with pytest.raises(IdentifierError) as refused:
        parse_identifier(typed)
    assert refused.value.reason is reason
    said = texts.t("en", f"reason_{reason.value}", app="Acme")
    assert words in said
    assert ("landline" in said) is (reason is Reason.NOT_MOBILE)
    assert "email address" in said


@pytest.mark.parametrize(("typed", "reason", "words"), NUMBER_TYPES)
def test_what_a_number_is_comes_before_where_it_is(typed: str, reason: Reason, words: str) -> None:
    # Even where SMS may not go, the number's kind is the truer answer.
    with pytest.raises(IdentifierError) as refused:
        parse_identifier(typed, sms_regions=SmsRegions.parse("US,CA"))
    assert refused.value.reason is reason


# --- where SMS codes may go --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "region", "allowed", "expected"),
    [
        ("+1 201 555 0123", None, "US,CA", "+12015550123"),
        ("+1 506 234 5678", None, "US,CA", "+15062345678"),
        ("(201) 555-0123", "US", "US,CA", "+12015550123"),
        ("+44 7400 123456", None, "GB", "+447400123456"),
        ("07400 123456", "GB", "GB", "+447400123456"),
        ("+44 7400 123456", None, " us , gb ", "+447400123456"),
        ("+44 7400 123456", None, "*", "+447400123456"),
        ("+1 876 210 1234", None, "*", "+18762101234"),
        # International networks only by name: "*" is every country, not every network.
        ("+882 3421 234", None, "+882", "+8823421234"),
        ("+882 3421 234", None, "*,+882", "+8823421234"),
        ("+881 6 1234 5678", None, "US,+881", "+881612345678"),
    ],
)
def test_numbers_in_allowed_sms_countries_are_accepted(
    typed: str, region: str | None, allowed: str, expected: str
) -> None:
    sms = SmsRegions.parse(allowed)
    assert parse_identifier(typed, region, sms_regions=sms) == Identifier("phone", expected)


@pytest.mark.parametrize(
    ("typed", "allowed", "reason", "country"),
    [
        ("+44 7400 123456", "US,CA", Reason.SMS_COUNTRY, "United Kingdom"),
        ("+49 1512 3456789", "US,CA", Reason.SMS_COUNTRY, "Germany"),
        ("+7 912 345 6789", "GB", Reason.SMS_COUNTRY, "Russia"),
        # +1 is more than the US and Canada: the Caribbean is a classic pumping destination.
        ("+1 876 210 1234", "US,CA", Reason.SMS_COUNTRY, "Jamaica"),
        ("+1 787 234 5678", "US,CA", Reason.SMS_COUNTRY, "Puerto Rico"),
        ("+1 201 555 0123", "CA", Reason.SMS_COUNTRY, "United States"),
        # Satellite phones and international carriers: never, unless listed by calling code.
        ("+881 6 1234 5678", "*", Reason.SMS_NETWORK, None),  # Iridium, Globalstar…
        ("+870 301 234 567", "*", Reason.SMS_NETWORK, None),  # Inmarsat
        ("+882 3421 234", "*", Reason.SMS_NETWORK, None),
        ("+883 510 012 345", "*", Reason.SMS_NETWORK, None),
        ("+878 10 1234 567 890", "*", Reason.SMS_NETWORK, None),
        ("+882 3421 234", "US,CA,+881", Reason.SMS_NETWORK, None),
        ("+881 6 1234 5678", "US,CA", Reason.SMS_NETWORK, None),
    ],
)
def test_numbers_outside_the_sms_allowlist_are_refused_with_where(
    typed: str, allowed: str, reason: Reason, country: str | None
) -> None:
    with pytest.raises(IdentifierError) as refused:
        parse_identifier(typed, sms_regions=SmsRegions.parse(allowed))
    error = refused.value
    assert error.reason is reason
    said = texts.t("en", f"reason_{reason.value}", app="Acme", **error.text_values("en"))
    assert "email address" in said
    if country is None:
        assert error.text_values("en") == {}
        assert "satellite" in said
    else:
        assert error.text_values("en") == {"country": country}
        assert country in said


@pytest.mark.parametrize("typed", ["+881 6 1234 5678", "+870 301 234 567", "+882 3421 234"])
def test_without_an_allowlist_international_networks_are_still_refused(typed: str) -> None:
    with pytest.raises(IdentifierError) as refused:
        parse_identifier(typed)
    assert refused.value.reason is Reason.SMS_NETWORK


def test_without_an_allowlist_every_country_is_accepted() -> None:
    assert parse_identifier("+1 876 210 1234").value == "+18762101234"
    assert parse_phone("+7 912 345 6789").value == "+79123456789"


def test_a_shared_contact_is_held_to_the_allowlist_too() -> None:
    # The contact button goes through parse_phone: Telegram's own number is still an SMS target.
    with pytest.raises(IdentifierError) as refused:
        parse_phone("+447400123456", sms_regions=SmsRegions.parse("US,CA"))
    assert refused.value.reason is Reason.SMS_COUNTRY
    assert parse_phone("+12015550123", sms_regions=SmsRegions.parse("US,CA")).value == (
        "+12015550123"
    )


def test_email_addresses_are_not_held_to_the_sms_allowlist() -> None:
    only_canada = SmsRegions.parse("CA")
    assert parse_identifier("jane@example.com", sms_regions=only_canada).value == (
        "jane@example.com"
    )


@pytest.mark.parametrize(
    ("setting", "canonical"),
    [
        ("US,CA", "CA,US"),
        ("us, ca", "CA,US"),
        ("GB;DE", None),
        ("*", "*"),
        ("*, +882", "*,+882"),
        ("GB,+881,+870", "GB,+870,+881"),
        ("US,US", "US"),
    ],
)
def test_sms_countries_setting_is_read(setting: str, canonical: str | None) -> None:
    if canonical is None:
        with pytest.raises(ValueError, match="GB;DE"):
            SmsRegions.parse(setting)
        return
    assert str(SmsRegions.parse(setting)) == canonical
    assert SmsRegions.parse(str(SmsRegions.parse(setting))) == SmsRegions.parse(setting)


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("XX", "'XX'"),
        ("UK", "'UK'"),  # the ISO code is GB
        ("001", "'001'"),
        ("+44", "GB"),  # a country's calling code: name the country instead
        ("+1", "US"),
        ("+999", "+999"),
        ("", "empty"),
        (" , ", "empty"),
    ],
)
def test_a_malformed_sms_countries_setting_says_what_is_wrong(setting: str, says: str) -> None:
    with pytest.raises(ValueError) as wrong:
        SmsRegions.parse(setting)
    assert says in str(wrong.value)
    assert "\n" not in str(wrong.value)


def test_the_default_sms_countries_are_clerks_us_and_canada(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SMS_COUNTRIES", raising=False)
    assert DEFAULT_SMS_COUNTRIES == "US,CA"
    settings = load_settings(_env_file=None)
    assert settings.sms_regions == SmsRegions.parse("US,CA")
    assert settings.masked()["SMS_COUNTRIES"] == "CA,US"


def test_sms_countries_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMS_COUNTRIES", "gb, ie, +882")
    assert load_settings(_env_file=None).sms_regions == SmsRegions.parse("GB,IE,+882")
    monkeypatch.setenv("SMS_COUNTRIES", " ")  # blank: the default, like other blank settings
    assert load_settings(_env_file=None).sms_regions == SmsRegions.parse(DEFAULT_SMS_COUNTRIES)
    monkeypatch.setenv("SMS_COUNTRIES", "GB,Atlantis")
    with pytest.raises(ConfigError, match=r"^SMS_COUNTRIES: .*'ATLANTIS'"):
        load_settings(_env_file=None)


# --- look-alike domains ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("jane@exаmple.com", Reason.MIXED_SCRIPT_DOMAIN),  # Cyrillic а among Latin letters
        ("jane@xn--exmple-4nf.com", Reason.MIXED_SCRIPT_DOMAIN),  # the same, as punycode
        ("jane@EXАMPLE.COM", Reason.MIXED_SCRIPT_DOMAIN),  # Cyrillic А, upper case
        ("jane@ехаmple.com", Reason.MIXED_SCRIPT_DOMAIN),
        ("jane@gοοgle.com", Reason.MIXED_SCRIPT_DOMAIN),  # Greek omicrons
        ("jane@mail.exаmple.com", Reason.MIXED_SCRIPT_DOMAIN),  # any label, not just the first
        ("jane@example.cоm", Reason.MIXED_SCRIPT_DOMAIN),
        ("jane@пример.рфf", Reason.MIXED_SCRIPT_DOMAIN),
        ("jane@пример例.jp", Reason.MIXED_SCRIPT_DOMAIN),  # Cyrillic is written with no Han
        # Wholly another script, but every letter looks Latin: reads as "apple", "scope".
        ("jane@аррӏе.com", Reason.LOOKALIKE_DOMAIN),
        ("jane@ѕсоре.com", Reason.LOOKALIKE_DOMAIN),
        ("jane@mail.аррӏе.com", Reason.LOOKALIKE_DOMAIN),
        ("jane@ехо.рф", Reason.LOOKALIKE_DOMAIN),  # "exo", whatever the top-level domain
        # Latin letters that are not ASCII but look exactly like it.
        ("jane@exɑmple.com", Reason.LOOKALIKE_DOMAIN),  # Latin alpha
        ("jane@ıbm.com", Reason.LOOKALIKE_DOMAIN),  # dotless i
        ("jane@i\u0307bm.com", Reason.LOOKALIKE_DOMAIN),  # i and a combining dot above
        ("jane@İBM.com", Reason.LOOKALIKE_DOMAIN),  # IDNA maps İ to the same
    ],
)
def test_look_alike_domains_are_refused(typed: str, reason: Reason) -> None:
    with pytest.raises(IdentifierError) as refused:
        parse_identifier(typed)
    assert refused.value.reason is reason
    said = texts.t("en", f"reason_{reason.value}", app="Acme")
    assert "after the @" in said


@pytest.mark.parametrize(
    ("typed", "expected", "masked"),
    [
        # Internationalised domains in one script that does not pass for Latin stay accepted and
        # are shown as written: readable to their owner, and not readable as a Latin name.
        ("jane@пример.рф", "jane@пример.рф", "j•••@пример.рф"),
        ("jane@ПРИМЕР.РФ", "jane@пример.рф", "j•••@пример.рф"),
        ("jane@xn--e1afmkfd.xn--p1ai", "jane@пример.рф", "j•••@пример.рф"),
        ("jane@москва.рф", "jane@москва.рф", "j•••@москва.рф"),
        ("jane@пример.com", "jane@пример.com", "j•••@пример.com"),
        ("jane@παράδειγμα.δοκιμή", "jane@παράδειγμα.δοκιμή", "j•••@παράδειγμα.δοκιμή"),
        ("jane@例え.テスト", "jane@例え.テスト", "j•••@例え.テスト"),  # Han with kana
        ("jane@실례.테스트", "jane@실례.테스트", "j•••@실례.테스트"),
        ("jane@中国.cn", "jane@中国.cn", "j•••@中国.cn"),
        ("jane@ヤフーjapan.jp", "jane@ヤフーjapan.jp", "j•••@ヤフーjapan.jp"),  # kana with Latin
        ("jane@bücher.example", "jane@bücher.example", "j•••@bücher.example"),
        ("jane@straße.de", "jane@straße.de", "j•••@straße.de"),
        ("jane@münchen-2.de", "jane@münchen-2.de", "j•••@münchen-2.de"),
    ],
)
def test_single_script_international_domains_are_accepted(
    typed: str, expected: str, masked: str
) -> None:
    identifier = parse_identifier(typed)
    assert identifier == Identifier("email", expected)
    assert identifier.masked == masked


# --- case ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        # Only ASCII letters are folded before the at sign: Unicode's lower-casing is not a
        # mailbox's (İ becomes i plus a combining dot, a different address).
        ("İstanbul@example.com", "İstanbul@example.com"),
        ("JÖRG@example.de", "jÖrg@example.de"),
        ("ΣΊΣΥΦΟΣ@example.gr", "ΣΊΣΥΦΟΣ@example.gr"),
        ("Straße@EXAMPLE.de", "straße@example.de"),
        ("ẞTRASSE@example.de", "ẞtrasse@example.de"),
        # After it, the domain is folded as IDNA does.
        ("jane@BÜCHER.EXAMPLE", "jane@bücher.example"),
    ],
)
def test_only_safe_case_folding(typed: str, expected: str) -> None:
    assert parse_identifier(typed) == Identifier("email", expected)


def test_the_istanbul_mailbox_is_not_turned_into_another() -> None:
    typed = parse_identifier("İstanbul@example.com").value
    assert typed.startswith("İ")
    assert "\u0307" not in typed


ASCII_ADDRESSES = [
    "jane.doe@example.com",
    "Jane.Doe@Example.COM",
    "JANE+TAG@EXAMPLE.CO.UK",
    "o'brien@example.ie",
    "User_Name-1@Sub.Example.ORG",
    "x@EXAMPLE.com",
    "mailto:Jane@Example.com",
    " ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ ",
    "Jane@xn--bcher-kva.example",
    "Jane@BÜCHER.example",
]


def _as_stored_before(typed: str) -> str:
    """How addresses were normalised when existing rows were written: all of it lower-cased."""
    text = unicodedata.normalize("NFKC", typed.strip()).removeprefix("mailto:")
    return validate_email(text, check_deliverability=False).normalized.lower()


@pytest.mark.parametrize("typed", ASCII_ADDRESSES)
def test_stored_ascii_addresses_keep_their_blind_index(typed: str) -> None:
    vault = Vault("a-test-secret-of-enough-length-0123456789")
    now = parse_identifier(typed)
    assert now.value == _as_stored_before(typed)
    assert vault.index("email", now.value) == vault.index("email", _as_stored_before(typed))


# --- every reason has its words ------------------------------------------------------------------


def _error_for(reason: Reason) -> IdentifierError:
    if reason is Reason.SMS_COUNTRY:
        with pytest.raises(IdentifierError) as refused:
            parse_identifier("+44 7400 123456", sms_regions=SmsRegions.parse("US"))
        return refused.value
    return IdentifierError(reason)


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_has_a_text_that_fills_in(reason: Reason) -> None:
    error = _error_for(reason)
    said = texts.t("en", f"reason_{reason.value}", app="Acme", **error.text_values("en"))
    assert said.strip()
    assert "{" not in said and "}" not in said


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("hello", "doesn't look like a phone number or an email address"),
        ("j" * 3_990 + "@example.com", "too long for an email address"),
        ("4" * 4_000, "too long for a phone number"),
        ("+44 7400 123456", "United Kingdom"),
        ("+881 6 1234 5678", "satellite"),
        ("+44 901 234 5678", "premium-rate"),
        ("jane@exаmple.com", "different alphabets"),
    ],
)
def test_what_the_person_is_told(typed: str, words: str) -> None:
    with pytest.raises(IdentifierError) as refused:
        parse_identifier(typed, "GB", sms_regions=SmsRegions.parse("US,CA"))
    error = refused.value
    said = texts.t("en", f"reason_{error.reason.value}", app="Acme", **error.text_values("en"))
    assert words in said
