"""The publishable key → Frontend API host parser."""

from __future__ import annotations

import base64

import pytest

from bot.auth.clerk import InvalidPublishableKey, fapi_host, fapi_url
from bot.auth.clerk.keys import publishable_key_for


def encoded(text: str, *, padded: bool = False) -> str:
    value = base64.b64encode(text.encode()).decode()
    return value if padded else value.rstrip("=")


@pytest.mark.parametrize(
    ("key", "host"),
    [
        ("pk_test_" + encoded("clerk.example.com$"), "clerk.example.com"),
        ("pk_live_" + encoded("clerk.example.com$"), "clerk.example.com"),
        (
            "pk_test_" + encoded("happy-hippo-1.clerk.accounts.dev$"),
            "happy-hippo-1.clerk.accounts.dev",
        ),
        # Padding left on, surrounding whitespace from a .env file, a host in capitals.
        ("pk_test_" + encoded("clerk.abc.io$", padded=True), "clerk.abc.io"),
        ("  pk_live_" + encoded("Clerk.Example.COM$") + "\n", "clerk.example.com"),
    ],
)
def test_valid_keys(key: str, host: str) -> None:
    assert fapi_host(key) == host
    assert fapi_url(key) == f"https://{host}"


def test_the_documented_example() -> None:
    assert fapi_host("pk_test_Y2xlcmsuZXhhbXBsZS5jb20k") == "clerk.example.com"


def test_round_trip() -> None:
    assert fapi_host(publishable_key_for("foo-bar-13.clerk.accounts.dev", live=True)) == (
        "foo-bar-13.clerk.accounts.dev"
    )


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("", "starts with pk_test_ or pk_live_"),
        ("clerk.example.com", "starts with pk_test_ or pk_live_"),
        ("pk_prod_" + encoded("clerk.example.com$"), "starts with pk_test_ or pk_live_"),
        ("sk_test_abcdefghijklmnop", "secret key"),
        ("pk_test_", "nothing follows"),
        ("pk_test_!!!not*base64", "not base64"),
        ("pk_test_" + encoded("clerk.example.com"), "'$'"),
        ("pk_test_" + encoded("clerk.example.com$$"), "'$'"),
        ("pk_test_" + encoded("clerk$example.com"), "'$'"),
        ("pk_test_" + encoded("localhost$"), "host name"),
        ("pk_test_" + encoded("clerk example.com$"), "host name"),
        ("pk_test_" + encoded("https://clerk.example.com$"), "host name"),
        ("pk_test_" + base64.b64encode(b"\xff\xfeclerk$").decode(), "not base64"),
    ],
)
def test_malformed_keys(key: str, says: str) -> None:
    with pytest.raises(InvalidPublishableKey) as refused:
        fapi_host(key)
    assert says in str(refused.value)
    if len(key) > 12:
        assert key.strip() not in str(refused.value)
