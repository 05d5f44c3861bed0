"""Random sequences of what people do in the chat, checked against what must always hold.

Real parts throughout: `ConversationService` over `Store` on a SQLite file, the embedded
`LocalBackend`, the `Vault`. An outbox stands in for the mail server and the SMS gateway and keeps
every code it is asked to deliver; time comes from a clock the machine moves. Three Telegram
users share addresses (two of them even share a recycled phone number), so one person's actions
can reach another's sign-in.

What must hold after every step:
- every update gets an answer (a reply or a toast); a redelivered one changes nothing;
- at most one link per Telegram user, each pointing at an account of its address; a link
  changes only by its own user's update: created by a code, removed by /logout or erasure;
- a link comes only from the newest code of the challenge the chat waits on, while it is
  unexpired, unused and has tries left; a used, replaced or expired code never links anyone;
- such a code, typed by its owner, does link them, unless a lockout refuses it;
- tries spent on a code and failures counted against an address are never given back by a
  resend (or anything but the right code);
- a crash while an update is being stored leaves the person able to finish: Telegram delivers the
  update again and it is handled as if it were new.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sqlite3
import string
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import select
from sqlalchemy import text as sql

from bot.auth import codes
from bot.auth.base import Challenge
from bot.auth.limits import LocalLimits
from bot.auth.local import LocalBackend
from bot.conversation import texts
from bot.conversation.events import (
    Command,
    Event,
    Incoming,
    Other,
    Person,
    Press,
    SharedContact,
    Text,
)
from bot.conversation.flow import CODE, Conversation, code_digits
from bot.conversation.service import ConversationService
from bot.identifiers import Identifier, IdentifierKind
from storage.engine import Database
from storage.local_auth import FAILURE
from storage.models import Base, HandledUpdate, Link, LocalAccount, LocalChallenge, LocalEvent
from storage.repos import Store
from storage.vault import Vault

T = TypeVar("T")

APP = "Acme"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
VAULT = Vault("state-machine-secret-9f3c2a7e51d84b06a1c3e5f7092b4d6e")
LIMITS = LocalLimits()

ANN = Person(101, "Ann", "ann", "en")
BEN = Person(102, "Ben", None, "en")
CAT = Person(103, "Cat", "cat", "de")  # no German catalog yet: English, like anyone else
PEOPLE = (ANN, BEN, CAT)
# Telegram's own numbers, as a shared contact carries them. Cat got Ann's old number.
PHONE_OF = {ANN.id: "+12015550123", BEN.id: "+4915112345678", CAT.id: "+12015550123"}

ADDRESSES = ["ada@example.com", "  ADA@Example.COM ", "bob@example.com", "+1 201 555 0123"]
NOISE = [
    "+4915112345678",
    "0201 555 0123",  # no country code
    "+1 201 555 01",  # too short
    "jane@exаmple.com",  # a Cyrillic а
    "hello",
    "12345",
    "1234567",
    "not-an-address@",
    "x" * 400,
]
COMMANDS = [
    Command("start"),
    Command("start", "gate_123"),
    Command("me"),
    Command("logout"),
    Command("forget"),
    Command("cancel"),
    Command("help"),
    Command("frobnicate"),
]
BUTTONS = ["resend", "new_code", "change", "cancel", "erase", "keep", "stale:42"]
# Past the resend cooldowns (30 s doubling to 5 min), a code's 10 minutes, and the hour that
# send caps and the lockout count over.
JUMPS = [1, 29, 31, 61, 121, 241, 301, 599, 601, 3601]

# What the chat says, read back from the catalog.
LOCKED = texts.EN["too_many"].split("{when}")[0]
WRONG = re.compile(re.escape(texts.EN["wrong_code"]).replace(re.escape("{tries}"), r"(\d+)"))
WRONG_ONE = texts.EN["wrong_code_one"]
ARABIC_INDIC = str.maketrans(string.digits, "٠١٢٣٤٥٦٧٨٩")
# The write that records an update as handled, made in the transaction that stores its outcome.


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Outbox:
    """A delivery channel that keeps every code it is asked to send, as a mail server would."""

    def __init__(self, name: str, kinds: frozenset[IdentifierKind], sent: list[Sent]) -> None:
        self.name = name
        self.kinds = kinds
        self.sent = sent

    async def send_code(
        self, to: Identifier, code: str, *, app_name: str, ttl_minutes: int
    ) -> None:
        self.sent.append(Sent(to, code))


@dataclass(frozen=True, slots=True)
class Sent:
    to: Identifier
    code: str


@dataclass(slots=True)
class Pending:
    """What the machine knows of one challenge: whose, for which address, its newest code."""

    owner: int
    address: str  # blind index, as the database keeps it
    code: str
    sent_at: datetime
    superseded: bool = False  # a newer challenge of the same person for the same address
    used: bool = False  # a link was stored from it

    def live_at(self, now: datetime) -> bool:
        return not (self.superseded or self.used) and now < self.sent_at + LIMITS.code_ttl


@dataclass(frozen=True, slots=True)
class LinkRow:
    account: str
    address: str
    linked_at: datetime


@dataclass(frozen=True, slots=True)
class Seen:
    """What the database holds that the promises are about."""

    links: dict[int, LinkRow]
    link_rows: int
    accounts: dict[str, str]  # account id -> address
    attempts: dict[str, int]  # challenge id -> tries spent
    used: frozenset[str]  # challenges whose code is used up
    failures: dict[str, int]  # key -> failures inside the lockout window


# The process dies as it writes an update's outcome: nothing of that transaction lands. The row
# saying "handled" goes in with the outcome it records, so failing that write is dying between
# deciding an update and storing what it decided. A trigger on the bot's own connection (the
# pool's one SQLite connection) does it; the restart that follows drops it with the connection.
_POWER_CUT = sql(
    f"CREATE TEMP TRIGGER power_cut BEFORE INSERT ON {HandledUpdate.__tablename__} "
    "BEGIN SELECT RAISE(ABORT, 'power cut'); END"
)


class ConversationMachine(RuleBasedStateMachine):
    # Set once per test module: where the schema template lives and each example's copy goes.
    workdir: ClassVar[Path]
    examples: ClassVar[int] = 0

    def __init__(self) -> None:
        super().__init__()
        ConversationMachine.examples += 1
        self.path = self.workdir / f"example-{self.examples}.db"
        shutil.copyfile(self.workdir / "schema.db", self.path)
        self.loop = asyncio.Runner()
        # The test's own eyes on the file: a plain synchronous engine, outside the process
        # under test, so looking costs little and survives its restarts.
        self.eyes = create_sync_engine(f"sqlite:///{self.path}")
        self.clock = Clock()
        self.sent: list[Sent] = []
        self.channels = [
            Outbox("email", frozenset({"email"}), self.sent),
            Outbox("sms", frozenset({"phone"}), self.sent),
        ]
        self.pending: dict[str, Pending] = {}
        self.used_codes: list[str] = []
        self.handled: list[Incoming] = []
        self.update_id = 0
        self._boot()

    # -- the parts, and a restart ----------------------------------------------------------

    def _boot(self) -> None:
        """Everything a process builds on start; nothing survives from the previous one."""
        self.database = Database(f"sqlite+aiosqlite:///{self.path}")
        backend = LocalBackend(
            self.database.sessions, VAULT, self.channels, app_name=APP, clock=self.clock
        )
        self.store = Store(self.database.sessions, VAULT)
        self.service = ConversationService(
            Conversation(backend, app_name=APP, clock=self.clock), self.store
        )

    async def _arm_power_cut(self) -> None:
        async with self.database.engine.connect() as connection:
            await connection.execute(_POWER_CUT)
            await connection.commit()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run(coro)

    def teardown(self) -> None:
        try:
            self.run(self.database.dispose())
        finally:
            self.loop.close()
            self.eyes.dispose()
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    # -- where an example starts -----------------------------------------------------------

    @initialize(
        start=st.lists(
            st.tuples(st.sampled_from(PEOPLE), st.booleans(), st.sampled_from(ADDRESSES)),
            min_size=1,
            max_size=len(PEOPLE),
            unique_by=lambda entry: entry[0].id,
        )
    )
    def where_people_stand(self, start: list[tuple[Person, bool, str]]) -> None:
        """Some people signed in and others waiting for a code, often two on one address, so
        erasure, sign-out and resends meet shared addresses and codes in flight from the first
        step."""
        for who, signed_in, address in sorted(start, key=lambda entry: not entry[1]):
            self.clock.now += LIMITS.resend_cooldown_max  # past the previous send's cooldown
            self.send(who, Text(address))
            assert self._waiting_on(who.id) is not None, f"no code was sent to {address}"
            if signed_in:
                self.send(who, Text(self._current_code(who.id)))
                assert self.look().links.get(who.id) is not None, f"{who.first_name} is out"

    # -- rules: what people do -------------------------------------------------------------

    @rule(who=st.sampled_from(PEOPLE), address=st.sampled_from(ADDRESSES))
    def type_address(self, who: Person, address: str) -> None:
        self.send(who, Text(address))

    @rule(who=st.sampled_from(PEOPLE))
    def type_the_code(self, who: Person) -> None:
        """The newest code sent for what the chat waits on, as the person got it."""
        self.send(who, Text(self._current_code(who.id)))

    @rule(
        who=st.sampled_from(PEOPLE),
        which=st.sampled_from(["spaced", "dashed", "other digits", "delivered", "used"]),
        data=st.data(),
    )
    def type_another_code(self, who: Person, which: str, data: st.DataObject) -> None:
        current = self._current_code(who.id)
        if which == "spaced":
            typed = f"{current[:3]} {current[3:]}"
        elif which == "dashed":
            typed = f"{current[:3]}-{current[3:]}"
        elif which == "other digits":
            typed = current.translate(ARABIC_INDIC)
        elif which == "delivered" and self.sent:
            typed = data.draw(st.sampled_from([sent.code for sent in self.sent]))
        elif which == "used" and self.used_codes:
            typed = data.draw(st.sampled_from(self.used_codes))
        else:
            typed = current
        self.send(who, Text(typed))

    @rule(who=st.sampled_from(PEOPLE))
    def type_a_wrong_code(self, who: Person) -> None:
        self.send(who, Text(f"{(int(self._current_code(who.id)) + 1) % 10**6:06d}"))

    @rule(who=st.sampled_from(PEOPLE), text=st.sampled_from(NOISE) | st.text(min_size=1))
    def type_text(self, who: Person, text: str) -> None:
        self.send(who, Text(text))

    @rule(
        who=st.sampled_from(PEOPLE),
        whose=st.sampled_from(["own", "someone else's", "not a Telegram user's"]),
        plus=st.booleans(),
    )
    def share_contact(self, who: Person, whose: str, plus: bool) -> None:
        owner = who if whose == "own" else next(p for p in PEOPLE if p.id != who.id)
        number = PHONE_OF[owner.id] if plus else PHONE_OF[owner.id].lstrip("+")
        user_id = None if whose == "not a Telegram user's" else owner.id
        self.send(who, SharedContact(number, user_id))

    @rule(who=st.sampled_from(PEOPLE))
    def resend_once_allowed(self, who: Person) -> None:
        """Wait out the cooldown the chat showed, then tap "Resend code"."""
        record = self.run(self.store.load(who.id)).conversation
        if record is not None and "challenge" in record.data:
            resend_at = Challenge.from_dict(record.data["challenge"]).resend_at
            self.clock.now = max(self.clock.now, resend_at)
        self.send(who, Press("resend"))

    @rule(who=st.sampled_from(PEOPLE))
    def mistype_then_ask_again(self, who: Person) -> None:
        """A wrong code, then a new one once the cooldown allows: the try stays spent."""
        self.type_a_wrong_code(who)
        self.resend_once_allowed(who)

    @rule(who=st.sampled_from(PEOPLE), button=st.sampled_from(BUTTONS))
    def press(self, who: Person, button: str) -> None:
        self.send(who, Press(button))

    @rule(who=st.sampled_from(PEOPLE), command=st.sampled_from(COMMANDS))
    def command(self, who: Person, command: Command) -> None:
        self.send(who, command)

    @rule(who=st.sampled_from(PEOPLE))
    def erase_me(self, who: Person) -> None:
        """/forget and the confirming button, the pair that erases a person."""
        self.send(who, Command("forget"))
        self.send(who, Press("erase"))

    @rule(who=st.sampled_from(PEOPLE))
    def sign_out(self, who: Person) -> None:
        self.send(who, Command("logout"))

    @rule(who=st.sampled_from(PEOPLE), kind=st.sampled_from(["sticker", "photo", "voice"]))
    def other(self, who: Person, kind: str) -> None:
        self.send(who, Other(kind))

    @rule(seconds=st.sampled_from(JUMPS))
    def time_passes(self, seconds: int) -> None:
        self.clock.now += timedelta(seconds=seconds)

    @precondition(lambda self: any(p.live_at(self.clock.now) for p in self.pending.values()))
    @rule(data=st.data())
    def a_code_reaches_its_expiry(self, data: st.DataObject) -> None:
        """The very instant a code expires: from then on it must not work."""
        live = [p for p in self.pending.values() if p.live_at(self.clock.now)]
        chosen = data.draw(st.sampled_from(live))
        self.clock.now = chosen.sent_at + LIMITS.code_ttl

    @rule()
    def restart(self) -> None:
        self.run(self.database.dispose())
        self._boot()

    @rule(who=st.sampled_from(PEOPLE), what=st.sampled_from(["code", "resend", "address"]))
    def crash_while_storing(self, who: Person, what: str) -> None:
        """The process dies as it stores an update's outcome; after a restart Telegram delivers
        the update again, since its handling was never confirmed."""
        waiting = self._waiting_on(who.id)
        events: dict[str, Event] = {
            "code": Text(self._current_code(who.id)),
            "resend": Press("resend"),
            "address": Text(ADDRESSES[0]),
        }
        event_ = events[what]
        self.update_id += 1
        incoming = Incoming(who, event_, self.update_id)
        before = self.look()
        start = len(self.sent)
        self.run(self._arm_power_cut())
        with pytest.raises(sqlite3.IntegrityError, match="power cut"):
            self.run(self.service.handle(incoming))
        self._attribute(who.id, self.sent[start:])
        after = self.look()
        assert after.links == before.links, "a link was stored by an update that never finished"
        assert after.used <= before.used, "a code was used up by an update that never finished"
        self._check_tries_kept(before, after, spent_on=waiting if what == "code" else None)
        self.restart()
        self.deliver(incoming)
        tally(f"crashed while storing: {what}")

    @precondition(lambda self: bool(self.handled))
    @rule(data=st.data())
    def redelivery(self, data: st.DataObject) -> None:
        incoming = data.draw(st.sampled_from(self.handled))
        before = self.look()
        start = len(self.sent)
        outcome = self.run(self.service.handle(incoming))
        assert outcome.duplicate, f"update {incoming.update_id} was handled twice"
        assert self.sent[start:] == [], "a redelivered update sent a code"
        assert self.look() == before, "a redelivered update changed what is stored"

    # -- invariants over the whole database ------------------------------------------------

    @invariant()
    def one_link_per_person_pointing_at_its_account(self) -> None:
        seen = self.look()
        assert seen.link_rows == len(seen.links), "a Telegram user has more than one link"
        for user_id, link in seen.links.items():
            assert seen.accounts.get(link.account) == link.address, (
                f"user {user_id}'s link points at no account of its address"
            )

    # -- one update, and what it must have done --------------------------------------------

    def send(self, who: Person, event_: Event) -> None:
        self.update_id += 1
        self.deliver(Incoming(who, event_, self.update_id))

    def deliver(self, incoming: Incoming) -> None:
        who, event_ = incoming.person.id, incoming.event
        now = self.clock.now
        before = self.look()
        waiting = self._waiting_on(who)
        was = replace(self.pending[waiting]) if waiting in self.pending else None
        typed = _typed_code(event_)
        start = len(self.sent)

        outcome = self.run(self.service.handle(incoming))

        self._attribute(who, self.sent[start:])
        after = self.look()
        said = [reply.text for reply in outcome.replies]
        assert not outcome.duplicate, f"update {incoming.update_id} was taken for a redelivery"
        assert said or outcome.toast, f"{event_!r} got no answer"
        self.handled.append(incoming)

        for other in PEOPLE:
            if other.id != who:
                assert after.links.get(other.id) == before.links.get(other.id), (
                    f"{event_!r} from user {who} changed user {other.id}'s link"
                )
        old, new = before.links.get(who), after.links.get(who)
        right = typed is not None and was is not None and typed == was.code
        live = (
            waiting is not None
            and was is not None
            and was.live_at(now)
            and before.attempts.get(waiting, 0) < LIMITS.tries_per_code
        )
        if new is not None and new != old:
            assert right, f"user {who} was linked by {typed!r}, not the newest code sent"
            assert waiting is not None and was is not None and live, (
                f"user {who} was linked by a code that was used, replaced or expired: {was}"
            )
            assert new.address == was.address, "linked to another address than the code's"
            assert waiting in after.used or waiting not in after.attempts, (
                "a link was stored while its code stays usable"
            )
            self.pending[waiting].used = True
            self.used_codes.append(was.code)
            tally("signed in by a code")
        elif new is None and old is not None:
            assert event_ in (Command("logout"), Press("erase")), f"{event_!r} unlinked user {who}"
            tally("signed out or erased")
        elif right and live:
            # Only a lockout may refuse it (its owner's own failures, or the address's total).
            assert any(text.startswith(LOCKED) for text in said), (
                f"the right code, unused and unexpired, did not sign user {who} in: {said}"
            )
            tally("the right code refused: locked out")
        elif right:
            tally("the newest code refused: used, expired or out of tries")
        if event_ == Press("resend") and waiting is not None and len(self.sent) > start:
            tally("resent" + (" after a wrong code" if before.attempts.get(waiting) else ""))
        addresses = [link.address for link in after.links.values()]
        if len(set(addresses)) < len(addresses):
            tally("two people linked to one address")

        self._check_tries_kept(before, after, spent_on=waiting if typed is not None else None)
        if new is None or new == old:
            for key, count in before.failures.items():
                assert after.failures.get(key, 0) >= count, (
                    f"{event_!r} forgave failures without a sign-in"
                )
        if typed is None:
            assert after.failures == before.failures, f"{event_!r} counted a failure"
        for text in said:
            match = WRONG.fullmatch(text)
            tries_left = int(match.group(1)) if match else 1 if text == WRONG_ONE else None
            if tries_left is not None:
                spent = after.attempts.get(waiting or "")
                assert spent is not None and tries_left == LIMITS.tries_per_code - spent, (
                    f"told {tries_left} tries left, {spent} of {LIMITS.tries_per_code} spent"
                )

    def _check_tries_kept(self, before: Seen, after: Seen, *, spent_on: str | None) -> None:
        """A try is spent only by a typed code, on the challenge the chat waits on, and never
        given back (a resend keeps them)."""
        for challenge_id, spent in before.attempts.items():
            if challenge_id in after.attempts:
                grew = after.attempts[challenge_id] - spent
                assert grew >= 0, "tries spent on a code were given back"
                assert grew <= (1 if challenge_id == spent_on else 0), "a try was spent twice"
        for challenge_id in after.attempts.keys() - before.attempts.keys():
            assert after.attempts[challenge_id] == 0, "a new challenge starts with tries spent"

    # -- the model -------------------------------------------------------------------------

    def _waiting_on(self, user_id: int) -> str | None:
        """The challenge the user's chat waits for a code of, as stored."""
        record = self.run(self.store.load(user_id)).conversation
        if record is None or record.step != CODE or "challenge" not in record.data:
            return None
        challenge_id = Challenge.from_dict(record.data["challenge"]).state.get("id")
        return challenge_id if isinstance(challenge_id, str) else None

    def _current_code(self, user_id: int) -> str:
        """The newest code sent for what the user's chat waits on ("000000" when nothing)."""
        waiting = self._waiting_on(user_id)
        return self.pending[waiting].code if waiting in self.pending else "000000"

    def _attribute(self, owner: int, sent: list[Sent]) -> None:
        """Find the stored challenge each delivered code belongs to (by its MAC, as the
        backend checks it); a code no challenge holds can never be right."""
        for item in sent:
            address = VAULT.index(item.to.kind, item.to.value)
            with self.eyes.connect() as conn:
                rows = conn.execute(
                    select(LocalChallenge.id, LocalChallenge.code_mac).where(
                        LocalChallenge.identifier_index == address
                    )
                ).all()
            challenge_id = next(
                (
                    row_id
                    for row_id, mac in rows
                    if Vault.same(mac, codes.code_mac(VAULT, row_id, address, item.code))
                ),
                None,
            )
            if challenge_id is None:
                continue
            known = self.pending.get(challenge_id)
            if known is not None:  # a resend: the new code replaces the old one
                known.code, known.sent_at = item.code, self.clock.now
                continue
            for other_id, other in self.pending.items():
                if other.owner == owner and other.address == address and other_id != challenge_id:
                    other.superseded = True
            self.pending[challenge_id] = Pending(owner, address, item.code, self.clock.now)

    def look(self) -> Seen:
        """What the database holds now."""
        since = self.clock.now - LIMITS.lockout_window
        with self.eyes.connect() as conn:
            links = conn.execute(
                select(
                    Link.telegram_user_id,
                    Link.auth_user_id,
                    Link.identifier_index,
                    Link.linked_at,
                )
            ).all()
            accounts = conn.execute(select(LocalAccount.id, LocalAccount.identifier_index))
            challenges = conn.execute(
                select(LocalChallenge.id, LocalChallenge.attempts, LocalChallenge.consumed_at)
            ).all()
            failures = conn.execute(
                select(LocalEvent.key, LocalEvent.at).where(LocalEvent.kind == FAILURE)
            )
            counted: dict[str, int] = {}
            for key, at in failures:
                if at > since:
                    counted[key] = counted.get(key, 0) + 1
            return Seen(
                links={user: LinkRow(account, address, at) for user, account, address, at in links},
                link_rows=len(links),
                accounts={account_id: address for account_id, address in accounts},
                attempts={challenge_id: spent for challenge_id, spent, _ in challenges},
                used=frozenset(
                    challenge_id for challenge_id, _, at in challenges if at is not None
                ),
                failures=counted,
            )


def tally(what: str) -> None:
    """Count how often a path was taken (`pytest --hypothesis-show-statistics`); the replayed
    sequences below run outside Hypothesis, where there is nothing to count into."""
    if currently_in_test_context():
        event(what)


def _typed_code(event_: Event) -> str | None:
    """The code a message holds, as the chat reads it; None for anything else."""
    if not isinstance(event_, Text):
        return None
    digits = code_digits(event_.text)
    return digits if digits is not None and len(digits) == codes.CODE_DIGITS else None


@pytest.fixture(autouse=True, scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The schema, created once; each example starts from a copy of this file."""
    workdir = tmp_path_factory.mktemp("state-machine")
    engine = create_sync_engine(f"sqlite:///{workdir / 'schema.db'}")
    Base.metadata.create_all(engine)
    engine.dispose()
    ConversationMachine.workdir = workdir
    return workdir / "schema.db"


def test_the_conversation_keeps_its_promises() -> None:
    run_state_machine_as_test(
        ConversationMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=30,
            deadline=None,
            # CI runs the same sequences every time, so a red build means the code changed and
            # its printed steps replay anywhere; a developer's run explores new ones each time.
            derandomize=bool(os.environ.get("CI")),
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# Sequences the machine found, kept so they run on every build however the search goes.


def test_erasing_a_shared_account_keeps_the_other_person_signed_in() -> None:
    state = ConversationMachine()
    try:
        state.where_people_stand(
            start=[(ANN, True, "ada@example.com"), (BEN, True, "ada@example.com")]
        )
        state.erase_me(who=ANN)
        state.one_link_per_person_pointing_at_its_account()
    finally:
        state.teardown()


def test_someone_elses_erasure_keeps_my_code_working() -> None:
    state = ConversationMachine()
    try:
        state.where_people_stand(start=[(BEN, True, "bob@example.com")])
        state.time_passes(seconds=301)
        state.type_address(who=CAT, address="bob@example.com")
        state.erase_me(who=BEN)
        state.type_the_code(who=CAT)
    finally:
        state.teardown()


def test_a_crash_between_checking_the_code_and_storing_the_link_leaves_the_code_usable() -> None:
    state = ConversationMachine()
    try:
        state.type_address(who=ANN, address="ada@example.com")
        state.crash_while_storing(who=ANN, what="code")
        state.one_link_per_person_pointing_at_its_account()
    finally:
        state.teardown()
