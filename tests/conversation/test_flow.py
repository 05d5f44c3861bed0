"""The conversation core without Telegram: plain events in, plain replies and records out."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from bot.auth.base import (
    AuthError,
    BackendUnavailable,
    Challenge,
    CodeExpired,
    InvalidIdentifier,
    LinkRef,
    NeedsMoreFields,
    RateLimited,
    Refused,
    Requester,
    TooManyAttempts,
    UnsupportedIdentifier,
    VerifiedIdentity,
    WrongCode,
)
from bot.conversation.commands import Commands
from bot.conversation.events import (
    Command,
    Erased,
    Incoming,
    Linked,
    Other,
    Person,
    Press,
    SharedContact,
    Text,
    Unlinked,
)
from bot.conversation.flow import Conversation, code_digits
from bot.identifiers import Identifier, IdentifierKind
from storage.repos import UNCHANGED, ConversationRecord, LinkRecord

NOW = datetime(2026, 3, 3, 14, 2, tzinfo=UTC)
ANN = Person(7, "Ann", "ann", "en")


class ScriptedBackend:
    """A backend double for one conversation: records calls, answers as scripted."""

    name = "scripted"

    def __init__(self, kinds: tuple[IdentifierKind, ...] = ("email", "phone")) -> None:
        self.kinds = kinds
        self.calls: list[str] = []
        self.verify_error: Exception | None = None
        self.needs: tuple[str, ...] = ()
        self.fail: Exception | None = None  # raised by the next call of any kind

    def _maybe_fail(self) -> None:
        if self.fail is not None:
            raise self.fail

    def supports(self, kind: IdentifierKind) -> bool:
        return kind in self.kinds

    def _challenge(self, identifier: Identifier) -> Challenge:
        return Challenge(
            "scripted",
            identifier,
            "email" if identifier.kind == "email" else "sms",
            NOW + timedelta(minutes=10),
            NOW + timedelta(seconds=30),
        )

    async def start(self, identifier: Identifier, who: Requester) -> Challenge:
        self.calls.append(f"start {identifier.value}")
        self._maybe_fail()
        return self._challenge(identifier)

    async def resend(self, challenge: Challenge, who: Requester) -> Challenge:
        self.calls.append("resend")
        self._maybe_fail()
        return challenge

    async def verify(self, challenge: Challenge, code: str, who: Requester) -> VerifiedIdentity:
        self.calls.append(f"verify {code}")
        self._maybe_fail()
        if self.verify_error:
            raise self.verify_error
        if self.needs:
            raise NeedsMoreFields(self.needs, challenge)
        return VerifiedIdentity("user_1", challenge.identifier, created=True)

    async def complete(
        self, challenge: Challenge, fields: Mapping[str, str], who: Requester
    ) -> VerifiedIdentity:
        self.calls.append(f"complete {sorted(fields.items())}")
        self._maybe_fail()
        return VerifiedIdentity("user_1", challenge.identifier, created=True)

    async def revoke(self, link: LinkRef) -> None:
        self.calls.append("revoke")
        self._maybe_fail()

    async def erase(self, link: LinkRef) -> None:
        self.calls.append("erase")
        self._maybe_fail()


class Chat:
    """Feeds events through the conversation, keeping the stored record as the store would."""

    def __init__(self, backend: ScriptedBackend, region: str | None = None) -> None:
        self.conversation = Conversation(
            backend, app_name="Acme", default_region=region, clock=lambda: NOW
        )
        self.record: ConversationRecord | None = None
        self.link: LinkRecord | None = None
        self.update_id = 0

    async def send(self, event: Text | Command | SharedContact | Press | Other) -> list[str]:
        self.update_id += 1
        outcome, changes = await self.conversation.handle(
            Incoming(ANN, event, self.update_id), self.record, self.link
        )
        self.record = changes.conversation
        if changes.link is None or isinstance(changes.link, LinkRecord):
            self.link = changes.link
        return [r.text for r in outcome.replies]


@pytest.mark.parametrize(
    ("typed", "digits"),
    [("482913", "482913"), ("482 913", "482913"), ("482-913", "482913"), ("٤٨٢٩١٣", "482913")],
)
def test_code_digits_tolerates_spaces_dashes_and_other_scripts(typed: str, digits: str) -> None:
    assert code_digits(typed) == digits


@pytest.mark.parametrize("typed", ["abc123", "", "12 34 ab", "1" * 40])
def test_code_digits_refuses_what_is_not_a_code(typed: str) -> None:
    assert code_digits(typed) is None


async def test_greeting_from_a_stranger_gets_the_welcome() -> None:
    chat = Chat(ScriptedBackend())
    replies = await chat.send(Text("hello there"))
    assert replies[0].startswith("Hi! I'm the sign-in bot for Acme.")


async def test_phone_number_when_only_email_is_configured() -> None:
    backend = ScriptedBackend(kinds=("email",))
    chat = Chat(backend)
    await chat.send(Command("start"))
    replies = await chat.send(Text("+1 201 555 0123"))
    assert replies == ["I can only send codes by email here. Please send your email address."]
    assert backend.calls == []


async def test_national_number_without_region_gets_the_plus_hint() -> None:
    chat = Chat(ScriptedBackend())
    await chat.send(Command("start"))
    (reply,) = await chat.send(Text("0770 090 014"))
    assert "with the country code" in reply


async def test_sticker_while_waiting_for_the_code_repeats_where_it_went() -> None:
    chat = Chat(ScriptedBackend())
    await chat.send(Text("jane@example.com"))
    (reply,) = await chat.send(Other("sticker"))
    assert reply == "I'm waiting for the 6-digit code I sent to j•••@example.com."


async def test_missing_fields_are_asked_one_by_one() -> None:
    backend = ScriptedBackend()
    backend.needs = ("first_name", "username")
    chat = Chat(backend)
    await chat.send(Text("jane@example.com"))
    assert await chat.send(Text("123456")) == [
        "One more thing for your new account: what's your first name?"
    ]
    assert (await chat.send(Text("   ")))[0].startswith("That doesn't look right: it's empty.")
    assert await chat.send(Text("Jane")) == [
        "Pick a username for Acme (letters, digits and _ only)."
    ]
    assert "use 3-64 letters" in (await chat.send(Text("no spaces please")))[0]
    replies = await chat.send(Text("jane_d"))
    assert replies[0].startswith("✅ You're signed in to Acme as jane@example.com")
    assert backend.calls[-1] == "complete [('first_name', 'Jane'), ('username', 'jane_d')]"
    assert chat.link is not None and chat.link.auth_user_id == "user_1"


async def test_backend_down_keeps_the_step() -> None:
    backend = ScriptedBackend()
    chat = Chat(backend)
    await chat.send(Text("jane@example.com"))
    backend.verify_error = BackendUnavailable("connection refused")
    (reply,) = await chat.send(Text("123456"))
    assert reply.startswith("I can't reach the sign-in service right now")
    assert chat.record is not None and chat.record.step == "code"
    backend.verify_error = WrongCode(2)
    assert await chat.send(Text("123456")) == ["That code isn't right. 2 tries left."]


async def test_stale_button_is_answered_with_a_toast() -> None:
    chat = Chat(ScriptedBackend())
    outcome, _ = await chat.conversation.handle(Incoming(ANN, Press("resend"), 1), None, None)
    assert outcome.toast == "That button no longer does anything."
    assert outcome.replies == []


async def test_linked_user_typing_an_address_is_told_to_log_out_first() -> None:
    chat = Chat(ScriptedBackend())
    await chat.send(Text("jane@example.com"))
    await chat.send(Text("123456"))
    (reply,) = await chat.send(Text("other@example.com"))
    assert reply.startswith("You're signed in to Acme as jane@example.com.")
    assert "/logout" in reply


ERRORS = [
    WrongCode(2),
    CodeExpired(),
    TooManyAttempts(None),
    TooManyAttempts(NOW + timedelta(minutes=40)),
    RateLimited(25),
    InvalidIdentifier("not_found"),
    UnsupportedIdentifier("phone"),
    Refused("mfa_required"),
    Refused("something_new"),
    BackendUnavailable("down"),
    AuthError("unforeseen"),
]

# Every way the conversation reaches the backend, from the state it needs.
PATHS = {
    "start": ([], Text("jane@example.com")),
    "resend": ([Text("jane@example.com")], Press("resend")),
    "new code": ([Text("jane@example.com")], Press("new_code")),
    "verify": ([Text("jane@example.com")], Text("123456")),
    "complete": ([Text("jane@example.com"), Text("123456")], Text("Jane")),
    "logout": ([Text("jane@example.com"), Text("123456")], Command("logout")),
    "forget": ([Text("jane@example.com"), Text("123456"), Command("forget")], Press("erase")),
}


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: f"{type(e).__name__}({e})")
@pytest.mark.parametrize("path", list(PATHS))
async def test_every_backend_refusal_on_every_path_gets_an_answer(
    path: str, error: AuthError
) -> None:
    backend = ScriptedBackend()
    backend.needs = ("first_name",) if path == "complete" else ()
    chat = Chat(backend)
    before, event = PATHS[path]
    for step in before:
        await chat.send(step)
    backend.fail = error
    chat.update_id += 1
    outcome, changes = await chat.conversation.handle(
        Incoming(ANN, event, chat.update_id), chat.record, chat.link
    )
    answered = [r.text for r in outcome.replies] or [outcome.toast]
    assert answered[0], f"{path} left {error!r} unanswered"
    assert changes.update_id == chat.update_id
    if isinstance(error, Refused):
        assert "in a minute" not in answered[0]
    if isinstance(error, BackendUnavailable) and path != "start":
        # A passing failure changes nothing stored: the person can simply try again.
        assert changes.conversation == chat.record and changes.link is UNCHANGED


async def test_resend_after_the_code_expired_offers_a_new_code() -> None:
    backend = ScriptedBackend()
    chat = Chat(backend)
    await chat.send(Text("jane@example.com"))
    backend.fail = CodeExpired()
    chat.update_id += 1
    outcome, _ = await chat.conversation.handle(
        Incoming(ANN, Press("resend"), chat.update_id), chat.record, chat.link
    )
    (reply,) = outcome.replies
    assert reply.text == "That code has expired."
    assert [b.text for row in reply.buttons for b in row] == [
        "Send a new code",
        "Use another email or number",
    ]


async def test_a_lasting_refusal_says_what_would_help() -> None:
    backend = ScriptedBackend()
    chat = Chat(backend)
    await chat.send(Text("jane@example.com"))
    backend.fail = Refused("mfa_required")
    (reply,) = await chat.send(Text("123456"))
    assert "two-step verification" in reply


class Entries:
    """Deep links as the gate issues them: "good" stands for chat -100, "used" was issued and
    is spent, anything else is not the gate's."""

    async def check(self, payload: str, user_id: int) -> str | None:
        return "chat:-100" if payload == "good" else None

    def issued(self, payload: str) -> bool:
        return payload in {"good", "used"}


async def test_a_deep_link_is_carried_through_to_the_link() -> None:
    chat = Chat(ScriptedBackend())
    chat.conversation.entries = Entries()
    chat.update_id += 1
    outcome, changes = await chat.conversation.handle(
        Incoming(ANN, Command("start", "good"), chat.update_id), None, None
    )
    assert outcome.replies[0].text.startswith("Hi! I'm the sign-in bot for Acme.")
    chat.record = changes.conversation
    await chat.send(Text("not an address"))  # a wrong turn keeps where they came from
    await chat.send(Text("jane@example.com"))
    chat.update_id += 1
    outcome, _ = await chat.conversation.handle(
        Incoming(ANN, Text("123456"), chat.update_id), chat.record, chat.link
    )
    assert outcome.happened == [
        Linked(ANN.id, Identifier("email", "jane@example.com"), "user_1", "chat:-100")
    ]


async def test_a_forged_deep_link_is_refused_politely_and_carries_nothing() -> None:
    chat = Chat(ScriptedBackend())
    chat.conversation.entries = Entries()
    replies = await chat.send(Command("start", "forged"))
    assert (
        replies[0]
        == "That link isn't valid any more. Ask for a new one — or sign in here directly."
    )
    assert chat.record is not None and "entry" not in chat.record.data


async def test_signing_out_and_erasing_are_told_to_listeners() -> None:
    chat = Chat(ScriptedBackend())
    await chat.send(Text("jane@example.com"))
    await chat.send(Text("123456"))
    chat.update_id += 1
    outcome, changes = await chat.conversation.handle(
        Incoming(ANN, Command("logout"), chat.update_id), chat.record, chat.link
    )
    assert outcome.happened == [Unlinked(ANN.id)]
    assert changes.link is None
    chat.record, chat.link = changes.conversation, None
    await chat.send(Text("jane@example.com"))
    await chat.send(Text("123456"))
    await chat.send(Command("forget"))
    chat.update_id += 1
    outcome, _ = await chat.conversation.handle(
        Incoming(ANN, Press("erase"), chat.update_id), chat.record, chat.link
    )
    assert outcome.happened == [Erased(ANN.id)]


async def test_where_a_host_owns_start_a_deep_link_of_passgrams_still_opens_passgrams_start() -> (
    None
):
    chat = Chat(ScriptedBackend())
    chat.conversation = Conversation(
        ScriptedBackend(),
        app_name="Acme",
        clock=lambda: NOW,
        entries=Entries(),
        commands=Commands({"start": "signin"}),
    )
    meant = chat.conversation.meant
    assert meant(Command("signin")) == "start"
    assert meant(Command("start", "good")) == "start"
    assert meant(Command("start", "used")) == "start"  # Passgram says the link is spent
    assert meant(Command("start")) is None  # the host's
    assert meant(Command("start", "ref_campaign_42")) is None  # the host's own deep link
    outcome, changes = await chat.conversation.handle(
        Incoming(ANN, Command("start", "good"), 1), None, None
    )
    assert outcome.replies[0].text.startswith("Hi! I'm the sign-in bot for Acme.")
    assert changes.conversation is not None
    assert changes.conversation.data["entry"] == "chat:-100"
