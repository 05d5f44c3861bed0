"""Deep-link payloads: what Telegram accepts, and refused when tampered with, stale, someone
else's, or used before."""

from __future__ import annotations

import base64
import re
from datetime import timedelta

import pytest

from bot.gate.deeplink import BadLink, DeepLinks, Refusal, chat_of
from storage.vault import Vault
from tests.gate.conftest import GROUP, T0, VAULT, World

LINKS = DeepLinks(VAULT, "@passgram_test_bot")
LATER = T0 + timedelta(minutes=10)


def refusal(payload: str, *, now=T0, user_id: int = 101) -> Refusal:  # type: ignore[no-untyped-def]
    with pytest.raises(BadLink) as caught:
        LINKS.read(payload, now, user_id)
    return caught.value.refusal


@pytest.mark.parametrize("chat_id", [GROUP, -1, -1009999999999999, 2**62])
@pytest.mark.parametrize("user_id", [None, 1, 2**52])
def test_payload_fits_telegram_and_names_the_chat(chat_id: int, user_id: int | None) -> None:
    payload = LINKS.make(chat_id, LATER, user_id)
    assert len(payload) <= 64
    assert re.fullmatch(r"[A-Za-z0-9_-]+", payload)
    token = LINKS.read(payload, T0, user_id or 7)
    assert token.chat_id == chat_id
    assert token.user_id == user_id
    assert LINKS.url(payload) == f"https://t.me/passgram_test_bot?start={payload}"


def test_each_payload_is_new() -> None:
    assert LINKS.make(GROUP, LATER, 101) != LINKS.make(GROUP, LATER, 101)


def test_every_changed_character_is_refused() -> None:
    payload = LINKS.make(GROUP, LATER, 101)
    for i in range(1, len(payload)):
        swapped = "A" if payload[i] != "A" else "B"
        changed = payload[:i] + swapped + payload[i + 1 :]
        assert refusal(changed) in (Refusal.TAMPERED, Refusal.MALFORMED), i


def test_a_payload_made_for_another_chat_cannot_be_rewritten() -> None:
    payload = LINKS.make(GROUP, LATER, 101)
    raw = bytearray(base64.urlsafe_b64decode(payload[1:] + "=" * (-len(payload[1:]) % 4)))
    raw[7] ^= 1  # the chat id's last byte
    forged = "g" + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    assert refusal(forged) == Refusal.TAMPERED


def test_another_secret_makes_payloads_this_bot_refuses() -> None:
    other = DeepLinks(Vault("another-secret-entirely-0123456789abcdef"), "passgram_test_bot")
    assert refusal(other.make(GROUP, LATER, 101)) == Refusal.TAMPERED


def test_expiry() -> None:
    payload = LINKS.make(GROUP, LATER, 101)
    assert LINKS.read(payload, LATER - timedelta(seconds=1), 101).chat_id == GROUP
    assert refusal(payload, now=LATER) == Refusal.EXPIRED
    assert refusal(payload, now=LATER + timedelta(days=1)) == Refusal.EXPIRED


def test_a_personal_payload_is_refused_to_anyone_else() -> None:
    payload = LINKS.make(GROUP, LATER, 101)
    assert refusal(payload, user_id=202) == Refusal.NOT_YOURS


def test_a_link_this_bot_made_is_recognised_however_stale_and_nothing_else_is() -> None:
    """What lets a host bot that owns /start hand Passgram's deep links to Passgram."""
    payload = LINKS.make(GROUP, T0, 101)  # expired already, and someone else's
    assert LINKS.genuine(payload)
    other = DeepLinks(Vault("another-secret-entirely-0123456789abcdef"), "passgram_test_bot")
    assert not LINKS.genuine(other.make(GROUP, LATER, 101))
    assert not LINKS.genuine(payload[:-1] + ("A" if payload[-1] != "A" else "B"))
    assert not LINKS.genuine("ref_campaign_42")


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "hello",
        "g",
        "g" + "A" * 63,
        "x" + "A" * 51,
        "g" + "A" * 50 + "=",
        "gé" + "A" * 50,
        "a" * 65,
    ],
)
def test_malformed(payload: str) -> None:
    assert refusal(payload) == Refusal.MALFORMED


async def test_a_payload_works_once(world: World) -> None:
    payload = LINKS.make(GROUP, LATER, 101)
    assert chat_of(await world.gate.check(payload, 101)) == GROUP
    assert await world.gate.check(payload, 101) is None
    assert await world.new_gate().check(payload, 101) is None  # another replica


async def test_a_group_button_works_once_for_each_person(world: World) -> None:
    payload = LINKS.make(GROUP, LATER)
    assert chat_of(await world.gate.check(payload, 101)) == GROUP
    assert chat_of(await world.gate.check(payload, 202)) == GROUP
    assert await world.gate.check(payload, 101) is None
    assert await world.gate.check(payload, 202) is None


async def test_refused_payloads_are_not_used_up(world: World) -> None:
    payload = LINKS.make(GROUP, LATER, 101)
    assert await world.gate.check(payload, 202) is None  # someone else's
    assert await world.gate.check(payload[:-1] + ("A" if payload[-1] != "A" else "B"), 101) is None
    assert chat_of(await world.gate.check(payload, 101)) == GROUP


async def test_a_stale_payload_is_refused_by_the_gate(world: World) -> None:
    payload = LINKS.make(GROUP, T0 + timedelta(seconds=30), 101)
    world.clock.advance(30)
    assert await world.gate.check(payload, 101) is None


def test_only_the_canonical_spelling_is_read() -> None:
    # The last character carries bits base64 decoders ignore: another spelling of the same bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    payload = LINKS.make(GROUP, LATER, 101)
    last = alphabet.index(payload[-1])
    for other in range(last - last % 4, last - last % 4 + 4):
        if other != last:
            assert refusal(payload[:-1] + alphabet[other]) == Refusal.MALFORMED
