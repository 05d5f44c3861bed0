"""The sign-in conversation as a state machine over plain events.

One `Conversation.handle` call is one update: it reads the stored step, talks to the auth
backend, and returns what to say plus what to store. It never touches Telegram; the adapter
does. Steps: no row (idle) → "identifier" → "code" (→ "field" when the backend wants more)
→ linked; "confirm_forget" from anywhere.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.auth.base import (
    AuthBackend,
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
    WaitNotifier,
    WrongCode,
)
from bot.conversation import texts
from bot.conversation.commands import Commands
from bot.conversation.events import (
    Admissions,
    Button,
    Command,
    EntryCheck,
    Erased,
    Incoming,
    Linked,
    Other,
    Outcome,
    Press,
    Reply,
    SharedContact,
    Text,
    Unlinked,
)
from bot.identifiers import (
    Identifier,
    IdentifierError,
    SmsRegions,
    parse_identifier,
    parse_phone,
)
from storage.repos import (
    UNCHANGED,
    AuditRecord,
    Changes,
    ConversationRecord,
    LinkRecord,
    Unchanged,
    UserInfo,
    Work,
)

log = logging.getLogger(__name__)

IDENTIFIER, CODE, FIELD, CONFIRM_FORGET = "identifier", "code", "field", "confirm_forget"
RESEND, CHANGE, CANCEL, NEW_CODE, ERASE, KEEP = (
    "resend",
    "change",
    "cancel",
    "new_code",
    "erase",
    "keep",
)
_CODE_SEPARATORS = re.compile(r"[\s\-‐-―−.]+")
_USERNAME = re.compile(r"^[A-Za-z0-9_]{3,64}$")
FIELD_QUESTIONS = {
    "first_name": "ask_first_name",
    "last_name": "ask_last_name",
    "username": "ask_username",
}


def code_digits(text: str) -> str | None:
    """The digits of a typed code ("482 913", "482-913", "٤٨٢٩١٣"), or None if it isn't one."""
    compact = _CODE_SEPARATORS.sub("", text)
    if not compact or len(compact) > 12 or not all(ch.isdecimal() for ch in compact):
        return None
    return "".join(str(unicodedata.decimal(ch)) for ch in compact)


def _looks_like_identifier(text: str) -> bool:
    """Whether a first message is an attempt at an address or number, not a greeting."""
    return "@" in text or sum(ch.isdecimal() for ch in text) >= 3


@dataclass(slots=True)
class Turn:
    """Everything one update reads and decides; becomes the `Changes` to store."""

    incoming: Incoming
    record: ConversationRecord | None
    link: LinkRecord | None
    lang: str
    notify_wait: WaitNotifier | None = None
    outcome: Outcome = field(default_factory=Outcome)
    new_link: LinkRecord | Unchanged | None = UNCHANGED  # None: removed
    audit: list[AuditRecord] = field(default_factory=list)
    erase: bool = False
    work: list[Work] = field(default_factory=list)

    @property
    def step(self) -> str | None:
        return self.record.step if self.record else None

    @property
    def data(self) -> dict[str, Any]:
        return self.record.data if self.record else {}

    def go(self, step: str | None, **data: Any) -> None:
        # Where the person came from (a deep link) stays with them until they are linked.
        entry = self.data.get("entry")
        if entry is not None and "entry" not in data:
            data["entry"] = entry
        self.record = ConversationRecord(step, data) if step else None

    def say(self, reply: Reply) -> None:
        self.outcome.replies.append(reply)

    def changes(self) -> Changes:
        person = self.incoming.person
        return Changes(
            user=UserInfo(person.id, person.username, person.first_name, person.language_code),
            conversation=self.record,
            link=self.new_link,
            audit=self.audit,
            erase=self.erase,
            work=self.work,
            update_id=self.incoming.update_id,
        )


class Conversation:
    def __init__(
        self,
        backend: AuthBackend,
        *,
        app_name: str,
        default_region: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        entries: EntryCheck | None = None,
        sms_regions: SmsRegions | None = None,
        admissions: Admissions | None = None,
        commands: Commands | None = None,
    ) -> None:
        self.admissions = admissions
        self.commands = commands or Commands()
        self._mentions = self.commands.mentions()
        self.backend = backend
        self.entries = entries
        self.sms_regions = sms_regions
        self.app = app_name
        self.region = default_region
        self.clock = clock

    def meant(self, command: Command) -> str | None:
        """Passgram's own name of a command, whatever a host bot renamed it to; None when it is
        not Passgram's. Telegram opens every deep link with /start, so `/start PAYLOAD` with a
        link Passgram issued is Passgram's start even where the host owns /start."""
        meant = self.commands.meaning(command.name)
        if (
            meant is None
            and command.name == "start"
            and command.args
            and self.entries is not None
            and self.entries.issued(command.args)
        ):
            return "start"
        return meant

    async def handle(
        self,
        incoming: Incoming,
        record: ConversationRecord | None,
        link: LinkRecord | None,
        notify_wait: WaitNotifier | None = None,
    ) -> tuple[Outcome, Changes]:
        """Decide one update. Returns what to say and what to store, in one transaction."""
        lang = texts.language_for(incoming.person.language_code)
        turn = Turn(incoming, record, link, lang, notify_wait)
        event = incoming.event
        try:
            if isinstance(event, Command):
                await self._command(turn, Command(self.meant(event) or "", event.args))
            elif isinstance(event, Press):
                await self._press(turn, event.data)
            elif isinstance(event, SharedContact):
                await self._contact(turn, event)
            elif isinstance(event, Text):
                await self._text(turn, event.text)
            else:
                self._other(turn, event)
        except AuthError as exc:
            self._refused(turn, exc)
        return turn.outcome, turn.changes()

    def refusal(
        self,
        incoming: Incoming,
        record: ConversationRecord | None,
        link: LinkRecord | None,
        exc: AuthError,
    ) -> Outcome:
        """The answer to a refusal found after deciding (while storing), with nothing stored."""
        turn = Turn(incoming, record, link, texts.language_for(incoming.person.language_code))
        self._refused(turn, exc)
        return turn.outcome

    # --- helpers -------------------------------------------------------------------------

    def t(self, turn: Turn, key: str, **values: Any) -> str:
        return texts.t(turn.lang, key, app=self.app, **self._mentions, **values)

    def _requester(self, turn: Turn) -> Requester:
        person = turn.incoming.person
        return Requester(person.id, person.username, turn.notify_wait)

    @staticmethod
    def _identifier(link: LinkRecord) -> Identifier:
        return Identifier(link.identifier_kind, link.identifier_value)  # type: ignore[arg-type]

    def _ask_identifier(self, turn: Turn, key: str | None = None, **values: str) -> None:
        email = self.backend.supports("email")
        phone = self.backend.supports("phone")
        if key is None:
            key = (
                "ask_identifier"
                if email and phone
                else "ask_identifier_email_only"
                if email
                else "ask_identifier_phone_only"
            )
        turn.say(
            Reply(
                self.t(turn, key, **values),
                contact_button=self.t(turn, "share_phone") if phone else None,
            )
        )
        turn.go(IDENTIFIER)

    def _code_buttons(self, turn: Turn, challenge: Challenge) -> tuple[tuple[Button, ...], ...]:
        wait = (challenge.resend_at - self.clock()).total_seconds()
        resend = (
            self.t(turn, "btn_resend_in", seconds=round(wait))
            if wait >= 1
            else self.t(turn, "btn_resend")
        )
        return (
            (Button(resend, RESEND),),
            (
                Button(self.t(turn, "btn_change"), CHANGE),
                Button(self.t(turn, "btn_cancel"), CANCEL),
            ),
        )

    def _challenge(self, turn: Turn) -> Challenge | None:
        raw = turn.data.get("challenge")
        return Challenge.from_dict(raw) if raw else None

    def _waiting_for_code(self, turn: Turn, challenge: Challenge) -> None:
        turn.say(
            Reply(
                self.t(turn, "waiting_for_code", masked=challenge.identifier.masked),
                buttons=self._code_buttons(turn, challenge),
            )
        )

    def _refused(self, turn: Turn, exc: AuthError) -> None:
        """The one place where a backend's refusal becomes the person's answer.

        The stored step stays as it was loaded unless the refusal itself moves the
        conversation (a new question, a locked address), so nothing typed so far is lost.
        """
        pressed = isinstance(turn.incoming.event, Press)
        if isinstance(exc, WrongCode):
            key = "wrong_code_one" if exc.tries_left == 1 else "wrong_code"
            turn.say(Reply(self.t(turn, key, tries=exc.tries_left)))
        elif isinstance(exc, CodeExpired):
            turn.say(
                Reply(
                    self.t(turn, "expired"),
                    buttons=(
                        (Button(self.t(turn, "btn_new_code"), NEW_CODE),),
                        (Button(self.t(turn, "btn_change"), CHANGE),),
                    ),
                )
            )
        elif isinstance(exc, TooManyAttempts):
            self._too_many(turn, exc)
        elif isinstance(exc, RateLimited):
            if pressed:
                turn.outcome.clear_pressed = False
                wait = max(1, round(exc.retry_after))
                turn.outcome.toast = self.t(turn, "resend_wait", seconds=wait)
                return
            turn.say(Reply(self.t(turn, "rate_limited", wait=texts.duration(exc.retry_after))))
            if turn.step != CODE:
                turn.go(IDENTIFIER)
        elif isinstance(exc, NeedsMoreFields):
            turn.go(FIELD, challenge=exc.challenge.to_dict(), fields_needed=list(exc.fields))
            self._ask_field(turn, exc.fields[0])
        elif isinstance(exc, UnsupportedIdentifier):
            self._ask_identifier(turn, "only_email" if exc.kind == "phone" else "only_phone")
        elif isinstance(exc, InvalidIdentifier):
            key = f"backend_{exc.reason}"
            self._ask_identifier(turn, key if key in texts.EN else "reason_backend")
        elif isinstance(exc, Refused):
            # Lasting: asking again changes nothing, so the answer says what would.
            log.warning("auth backend refused for good: %s", exc.reason)
            key = f"refused_{exc.reason}"
            turn.say(Reply(self.t(turn, key if key in texts.EN else "refused")))
            turn.go(IDENTIFIER)
        elif isinstance(exc, BackendUnavailable):
            log.warning("auth backend unavailable: %s", exc)
            turn.outcome.clear_pressed = False
            turn.say(Reply(self.t(turn, "unavailable")))
        else:
            log.warning("auth backend refused: %s", type(exc).__name__)
            turn.outcome.clear_pressed = False
            turn.say(Reply(self.t(turn, "unavailable")))

    # --- commands ------------------------------------------------------------------------

    async def _command(self, turn: Turn, cmd: Command) -> None:
        name = cmd.name
        if name == "start":
            entry = await self._entry(turn, cmd.args) if cmd.args else None
            if cmd.args and entry is None:
                turn.say(Reply(self.t(turn, "bad_link")))
            if turn.link:
                self._already_linked(turn)
                if entry is not None:
                    link = turn.link
                    turn.outcome.happened.append(
                        Linked(
                            link.telegram_user_id, self._identifier(link), link.auth_user_id, entry
                        )
                    )
            else:
                if entry is not None:
                    turn.go(IDENTIFIER, entry=entry)
                self._ask_identifier(turn, "welcome")
        elif name == "help":
            turn.say(Reply(self.t(turn, "help")))
        elif name == "cancel":
            self._cancel(turn)
        elif name == "me":
            await self._me(turn)
        elif name == "logout":
            await self._logout(turn)
        elif name == "forget":
            self._confirm_forget(turn)
        else:
            turn.say(Reply(self.t(turn, "unknown_command")))

    async def _entry(self, turn: Turn, payload: str) -> str | None:
        if self.entries is None:
            return None
        return await self.entries.check(payload, turn.incoming.person.id)

    def _already_linked(self, turn: Turn) -> None:
        assert turn.link
        who = self._identifier(turn.link).display
        turn.say(Reply(self.t(turn, "already_linked", who=who), remove_keyboard=True))
        turn.go(None)

    def _cancel(self, turn: Turn) -> None:
        key = "cancelled" if turn.step else "nothing_to_cancel"
        turn.say(Reply(self.t(turn, key), remove_keyboard=True))
        turn.go(None)

    async def _me(self, turn: Turn) -> None:
        if not turn.link:
            turn.say(Reply(self.t(turn, "me_not_linked")))
            return
        since = turn.link.linked_at or self.clock()
        who = self._identifier(turn.link).display
        text = self.t(turn, "me", who=who, since=texts.date(since))
        chats = (
            await self.admissions.admitted_chats(turn.link.telegram_user_id)
            if self.admissions
            else []
        )
        if chats:
            lines = [
                self.t(turn, "me_chat", title=c.title, since=texts.date(c.since)) for c in chats
            ]
            text = "\n".join([text, self.t(turn, "me_chats"), *lines])
        turn.say(Reply(text))

    def _link_ref(self, link: LinkRecord) -> LinkRef:
        return LinkRef(
            telegram_user_id=link.telegram_user_id,
            auth_user_id=link.auth_user_id,
            identifier=self._identifier(link),
            session_id=link.session_id,
            state=link.state,
        )

    async def _logout(self, turn: Turn) -> None:
        if not turn.link:
            turn.say(Reply(self.t(turn, "not_linked")))
            return
        await self.backend.revoke(self._link_ref(turn.link))
        turn.audit.append(AuditRecord("signed_out", turn.link.backend, turn.link.auth_user_id))
        turn.outcome.happened.append(Unlinked(turn.incoming.person.id))
        turn.new_link = None
        turn.go(None)
        turn.say(Reply(self.t(turn, "logged_out"), remove_keyboard=True))

    def _confirm_forget(self, turn: Turn) -> None:
        kind = turn.link.identifier_kind if turn.link else "none"
        what = self.t(turn, f"forget_what_{kind}")
        turn.say(
            Reply(
                self.t(turn, "forget_confirm", what=what),
                buttons=(
                    (
                        Button(self.t(turn, "btn_erase"), ERASE),
                        Button(self.t(turn, "btn_keep"), KEEP),
                    ),
                ),
            )
        )
        turn.go(CONFIRM_FORGET)

    async def _forget(self, turn: Turn) -> None:
        if turn.link:
            await self.backend.erase(self._link_ref(turn.link))
        turn.erase = True
        turn.outcome.happened.append(Erased(turn.incoming.person.id))
        turn.new_link = None
        turn.go(None)
        turn.say(Reply(self.t(turn, "forgotten"), remove_keyboard=True))

    # --- buttons -------------------------------------------------------------------------

    async def _press(self, turn: Turn, data: str) -> None:
        step = turn.step
        challenge = self._challenge(turn)
        turn.outcome.clear_pressed = True
        if data == CANCEL and step:
            self._cancel(turn)
        elif data == CHANGE and step in (CODE, FIELD):
            self._ask_identifier(turn)
        elif data == RESEND and step == CODE and challenge:
            await self._resend(turn, challenge)
        elif data == NEW_CODE and step in (CODE, FIELD) and challenge:
            await self._start(turn, challenge.identifier)
        elif data == ERASE and step == CONFIRM_FORGET:
            await self._forget(turn)
        elif data == KEEP and step == CONFIRM_FORGET:
            turn.say(Reply(self.t(turn, "forget_kept")))
            turn.go(None)
        else:
            turn.outcome.toast = self.t(turn, "stale_button")

    def _waiting_on(self, turn: Turn, challenge: Challenge) -> None:
        """The chat waits for the code of `challenge` from now on; the backend's work for it
        is stored with that step."""
        if challenge.commit is not None:
            turn.work.append(challenge.commit)
        turn.go(CODE, challenge=challenge.to_dict())

    async def _resend(self, turn: Turn, challenge: Challenge) -> None:
        fresh = await self.backend.resend(challenge, self._requester(turn))
        self._waiting_on(turn, fresh)
        turn.say(
            Reply(
                self.t(turn, "resent", masked=fresh.identifier.masked),
                buttons=self._code_buttons(turn, fresh),
            )
        )

    # --- messages ------------------------------------------------------------------------

    async def _contact(self, turn: Turn, contact: SharedContact) -> None:
        if turn.link:
            self._already_linked(turn)
            return
        if contact.user_id != turn.incoming.person.id:
            turn.say(Reply(self.t(turn, "contact_not_yours")))
            if turn.step != CODE:
                turn.go(IDENTIFIER)
            return
        number = contact.phone_number.strip()
        # Telegram sends the account's own number, sometimes without the "+".
        try:
            identifier = parse_phone(
                number if number.startswith("+") else f"+{number}", sms_regions=self.sms_regions
            )
        except IdentifierError as exc:
            turn.say(
                Reply(self.t(turn, f"reason_{exc.reason.value}", **exc.text_values(turn.lang)))
            )
            turn.go(IDENTIFIER)
            return
        await self._start(turn, identifier)

    async def _text(self, turn: Turn, text: str) -> None:
        step = turn.step
        if step == CODE:
            await self._code(turn, text)
        elif step == FIELD:
            await self._field(turn, text)
        elif step == CONFIRM_FORGET:
            turn.say(Reply(self.t(turn, "tap_a_button")))
        elif turn.link:
            self._already_linked(turn)
        elif step is None and not _looks_like_identifier(text):
            await self._command(turn, Command("start"))
        else:
            try:
                identifier = parse_identifier(text, self.region, sms_regions=self.sms_regions)
            except IdentifierError as exc:
                self._ask_identifier(
                    turn, f"reason_{exc.reason.value}", **exc.text_values(turn.lang)
                )
                return
            await self._start(turn, identifier)

    def _other(self, turn: Turn, event: Other) -> None:
        step = turn.step
        challenge = self._challenge(turn)
        if step == CODE and challenge:
            self._waiting_for_code(turn, challenge)
        elif step == FIELD:
            self._ask_field(turn, turn.data["fields_needed"][0])
        elif step == CONFIRM_FORGET:
            turn.say(Reply(self.t(turn, "tap_a_button")))
        elif turn.link:
            self._already_linked(turn)
        else:
            turn.say(Reply(self.t(turn, "not_text")))
            self._ask_identifier(turn)

    async def _start(self, turn: Turn, identifier: Identifier) -> None:
        if not self.backend.supports(identifier.kind):
            raise UnsupportedIdentifier(identifier.kind)
        challenge = await self.backend.start(identifier, self._requester(turn))
        self._waiting_on(turn, challenge)
        how = self.t(turn, f"how_{challenge.channel}")
        minutes = max(1, round((challenge.expires_at - self.clock()).total_seconds() / 60))
        turn.say(
            Reply(
                self.t(
                    turn,
                    "code_sent",
                    how=how,
                    masked=identifier.masked,
                    minutes=minutes,
                ),
                buttons=self._code_buttons(turn, challenge),
            )
        )

    def _too_many(self, turn: Turn, exc: TooManyAttempts) -> None:
        change = (Button(self.t(turn, "btn_change"), CHANGE),)
        if exc.retry_at:
            text = self.t(turn, "too_many", when=texts.clock(exc.retry_at))
            buttons: tuple[tuple[Button, ...], ...] = (change,)
        else:
            # This code is used up, but the address is not locked: a new code may be asked for.
            text = self.t(turn, "too_many_code")
            buttons = ((Button(self.t(turn, "btn_new_code"), NEW_CODE),), change)
        turn.say(Reply(text, buttons=buttons))
        if turn.step != CODE:
            turn.go(IDENTIFIER)

    async def _code(self, turn: Turn, text: str) -> None:
        challenge = self._challenge(turn)
        assert challenge is not None
        digits = code_digits(text)
        if digits is None:
            # A fresh address or number here means "use this one instead" (a typo fixed).
            try:
                identifier = parse_identifier(text, self.region, sms_regions=self.sms_regions)
            except IdentifierError:
                self._waiting_for_code(turn, challenge)
                return
            await self._start(turn, identifier)
            return
        turn.outcome.delete_incoming = True
        if len(digits) != 6:
            turn.say(Reply(self.t(turn, "code_shape")))
            return
        try:
            identity = await self.backend.verify(challenge, digits, self._requester(turn))
        except WrongCode:
            turn.audit.append(AuditRecord("code_failed", self.backend.name))
            raise
        except TooManyAttempts:
            turn.audit.append(AuditRecord("locked_out", self.backend.name))
            raise
        self._linked(turn, identity)

    def _ask_field(self, turn: Turn, name: str) -> None:
        turn.say(Reply(self.t(turn, FIELD_QUESTIONS.get(name, "ask_username"))))

    async def _field(self, turn: Turn, text: str) -> None:
        needed: list[str] = list(turn.data["fields_needed"])
        given: dict[str, str] = dict(turn.data.get("fields") or {})
        name, value = needed[0], " ".join(text.split())
        reason = (
            "field_empty"
            if not value
            else "field_too_long"
            if len(value) > 64
            else "field_username"
            if name == "username" and not _USERNAME.match(value)
            else None
        )
        if reason:
            turn.say(Reply(self.t(turn, "bad_field", reason=self.t(turn, reason))))
            return
        given[name] = value
        needed.pop(0)
        challenge = self._challenge(turn)
        assert challenge is not None
        if needed:
            turn.go(FIELD, challenge=challenge.to_dict(), fields_needed=needed, fields=given)
            self._ask_field(turn, needed[0])
            return
        try:
            identity = await self.backend.complete(challenge, given, self._requester(turn))
        except InvalidIdentifier:
            # The backend refused a value (a username taken or malformed): ask for it again;
            # the step stays as stored, with this field still to answer.
            turn.say(Reply(self.t(turn, "bad_field", reason=self.t(turn, "field_username"))))
            return
        self._linked(turn, identity)

    def _linked(self, turn: Turn, identity: VerifiedIdentity) -> None:
        person = turn.incoming.person
        if identity.commit is not None:
            turn.work.append(identity.commit)
        turn.new_link = LinkRecord(
            telegram_user_id=person.id,
            backend=self.backend.name,
            auth_user_id=identity.auth_user_id,
            identifier_kind=identity.identifier.kind,
            identifier_value=identity.identifier.value,
            session_id=identity.session_id,
            state=dict(identity.state),
            signed_up=identity.created,
            linked_at=self.clock(),
        )
        turn.audit.append(
            AuditRecord(
                "signed_up" if identity.created else "signed_in",
                self.backend.name,
                identity.auth_user_id,
                {"channel": identity.identifier.kind},
            )
        )
        turn.outcome.happened.append(
            Linked(person.id, identity.identifier, identity.auth_user_id, turn.data.get("entry"))
        )
        turn.go(None)
        who = identity.identifier.display
        key = "signed_up" if identity.created else "signed_in"
        text = f"{self.t(turn, key, who=who)}\n{self.t(turn, 'signed_in_footer')}"
        buttons: tuple[tuple[Button, ...], ...] = ()
        if identity.sign_in_url:
            buttons = ((Button(self.t(turn, "open_app"), url=identity.sign_in_url),),)
        turn.say(Reply(text, buttons=buttons, remove_keyboard=not buttons))
