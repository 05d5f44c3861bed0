"""A chat's policy: what admins type, what it lets in, and how it is said."""

from __future__ import annotations

import re

import pytest

from bot.gate.model import Policy, PolicyError, missing_rights
from bot.identifiers import Identifier

ADA = Identifier("email", "ada@example.com")
ADA_ORG = Identifier("email", "ada@example.org")
ADA_SUB = Identifier("email", "ada@mail.example.com")
IDN = Identifier("email", "иван@пример.рф")
UK = Identifier("phone", "+447400123456")
US = Identifier("phone", "+12025550142")
CA = Identifier("phone", "+16135550142")


@pytest.mark.parametrize(
    ("text", "kind", "values", "form"),
    [
        ("any", "any", (), "any"),
        ("  ANY ", "any", (), "any"),
        ("email-domain:example.com", "email-domain", ("example.com",), "email-domain:example.com"),
        (
            "email-domain: Example.ORG, @example.com ,example.com",
            "email-domain",
            ("example.com", "example.org"),
            "email-domain:example.com,example.org",
        ),
        ("email-domain:ПРИМЕР.РФ", "email-domain", ("пример.рф",), "email-domain:пример.рф"),
        ("phone-country:gb,US", "phone-country", ("GB", "US"), "phone-country:GB,US"),
        ("Phone-Country: us ", "phone-country", ("US",), "phone-country:US"),
    ],
)
def test_parse_and_round_trip(text: str, kind: str, values: tuple[str, ...], form: str) -> None:
    policy = Policy.parse(text)
    assert (policy.kind, policy.values) == (kind, values)
    assert str(policy) == form
    assert Policy.parse(str(policy)) == policy


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "unknown policy"),
        ("everyone", "unknown policy 'everyone'"),
        ("any:example.com", "takes no values"),
        ("email-domain:", "needs at least one value"),
        ("email-domain: , ", "needs at least one value"),
        ("email-domain:not a domain", "not an email domain"),
        ("email-domain:localhost", "not an email domain"),
        ("phone-country:XX", "unknown country 'XX'"),
        ("phone-country:+44", "unknown country '+44'"),
        ("email-domain:" + ",".join(f"d{i}.example.com" for i in range(21)), "at most 20"),
        ("email-domain:" + "a" * 600 + ".com", "too long"),
    ],
)
def test_parse_refuses_with_a_reason(text: str, says: str) -> None:
    with pytest.raises(PolicyError, match=re.escape(says)):
        Policy.parse(text)


@pytest.mark.parametrize(
    ("policy", "identifier", "allowed"),
    [
        ("any", ADA, True),
        ("any", UK, True),
        ("email-domain:example.com", ADA, True),
        ("email-domain:example.com", ADA_ORG, False),
        ("email-domain:example.com", ADA_SUB, False),  # a subdomain is another domain
        ("email-domain:example.com,example.org", ADA_ORG, True),
        ("email-domain:example.com", UK, False),
        ("email-domain:пример.рф", IDN, True),
        ("email-domain:xn--e1afmkfd.xn--p1ai", IDN, True),  # the ASCII form of the same
        ("phone-country:GB", UK, True),
        ("phone-country:GB", US, False),
        ("phone-country:US", CA, False),  # +1 is more than the United States
        ("phone-country:CA,US", CA, True),
        ("phone-country:GB", ADA, False),
    ],
)
def test_allows(policy: str, identifier: Identifier, allowed: bool) -> None:
    assert Policy.parse(policy).allows(identifier) is allowed


@pytest.mark.parametrize(
    ("policy", "described"),
    [
        ("any", "anyone who signs in"),
        ("email-domain:example.com", "addresses at example.com"),
        ("email-domain:c.com,a.com,b.com", "addresses at a.com, b.com or c.com"),
        ("phone-country:GB", "phone numbers from United Kingdom"),
        ("phone-country:US,GB", "phone numbers from United Kingdom or United States"),
    ],
)
def test_describe(policy: str, described: str) -> None:
    assert Policy.parse(policy).describe() == described


def test_the_default_policy_is_any() -> None:
    assert Policy("any") == Policy.parse("any") == Policy()


@pytest.mark.parametrize(
    ("kind", "rights", "missing"),
    [
        ("supergroup", None, ("can_invite_users", "can_restrict_members", "can_delete_messages")),
        ("supergroup", ["can_invite_users", "can_delete_messages"], ("can_restrict_members",)),
        ("channel", ["can_invite_users", "can_restrict_members"], ()),
        ("channel", ["can_post_messages"], ("can_invite_users", "can_restrict_members")),
    ],
)
def test_missing_rights(kind: str, rights: list[str] | None, missing: tuple[str, ...]) -> None:
    assert missing_rights(kind, rights) == missing
