"""The gate: who gets into a gated chat, decided from the chat's settings (read from the
database at each decision, so a change from the CLI counts at once) and the person's link.

Every method returns actions for an adapter to carry out and writes what it decided to the
decision log. Waits end through `GateStore.settle`, a conditional delete: whichever of an event,
a deadline, a second replica or a restarted one gets there first decides, and only once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from bot.conversation.commands import Commands
from bot.conversation.events import Button, Happened, Linked, Person, Unlinked
from bot.gate import texts
from bot.gate.actions import (
    ALREADY_PARTICIPANT,
    BLOCKED,
    CANT_INITIATE,
    REQUEST_GONE,
    Action,
    AnswerQuery,
    Approve,
    Decline,
    Free,
    MakeInviteLink,
    Notice,
    Remove,
    Restrict,
    Result,
    Say,
    error_says,
)
from bot.gate.deeplink import BadLink, DeepLinks, chat_of, entry_for
from bot.gate.model import (
    MAX_TIMEOUT,
    MIN_TIMEOUT,
    RIGHTS_CHANNEL,
    RIGHTS_GROUP,
    AdmittedChat,
    ChatSettings,
    Policy,
    PolicyError,
    missing_rights,
    parse_kind,
    parse_mode,
    parse_timeout,
)
from bot.identifiers import Identifier
from storage.gate import MANUAL, ChatRecord, ErasureRecord, GateStore, LogEntry, PendingRecord

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# Whether the person asking administers a chat, by its id (Telegram's word, asked each time).
AdminCheck = Callable[[int], Awaitable[bool]]
Verdict = Literal["allowed", "refused", "unlinked"]

WAVE = "wave"  # the key of a group's notice listing newcomers
MAX_NAMES = 10  # newcomers named in that notice; the rest are counted
MAX_NAME_LENGTH = 32  # a name is the newcomer's own text: keep an advert short
INVITE_LINK_NAME = "Passgram gate"
# Rounds of `reconcile` per kind of work, each of up to `limit` rows.
MAX_ROUNDS = 100


class LinkView(Protocol):
    """What the gate reads of a link (`storage.repos.LinkRecord` fits)."""

    @property
    def identifier_kind(self) -> str: ...

    @property
    def identifier_value(self) -> str: ...


class LinkLookup(Protocol):
    """A Telegram user's link (`storage.repos.Store` fits)."""

    async def get_link(self, user_id: int) -> LinkView | None: ...


class Gate:
    def __init__(
        self,
        store: GateStore,
        links: LinkLookup,
        clock: Clock,
        *,
        deeplinks: DeepLinks,
        app: str = "Passgram",
        commands: Commands | None = None,
    ) -> None:
        # Texts name commands as people type them, renamed where a host bot owns a name.
        self._mentions = (commands or Commands()).mentions()
        self.store = store
        self.links = links
        self.clock = clock
        self.deeplinks = deeplinks
        self.app = app

    # The conversation's entry check: a deep link's payload into the chat it names.

    async def check(self, payload: str, user_id: int) -> str | None:
        """The entry a genuine, live, unused deep link stands for; None refuses it. Uses the
        link up."""
        now = self.clock()
        try:
            token = self.deeplinks.read(payload, now, user_id)
        except BadLink as exc:
            log.info("deep link refused: %s", exc.refusal.value)
            return None
        if not await self.store.redeem(token.redemption_key(self.deeplinks.vault, user_id), now):
            log.info("deep link refused: used")
            return None
        return entry_for(token.chat_id)

    def issued(self, payload: str) -> bool:
        return self.deeplinks.genuine(payload)

    async def settings(self, chat_id: int) -> ChatSettings | None:
        record = await self.store.get_chat(chat_id)
        return _settings(record) if record else None

    # Join requests and members.

    async def on_join_request(
        self,
        chat_id: int,
        user: Person,
        user_chat_id: int,
        query_id: str | None = None,
        invite_link_creator_id: int | None = None,
    ) -> list[Action]:
        s = await self.settings(chat_id)
        if s is None or not s.enabled or s.mode != "join_requests":
            # Not the gate's to decide: a guard bot hands it to the chat's admins.
            return [AnswerQuery(query_id, "queue")] if query_id else []
        now = self.clock()
        verdict, identifier, rule = await self._verdict(s, user.id)
        detail = _via(invite_link_creator_id)
        if verdict == "allowed":
            await self.store.admit(
                chat_id,
                user.id,
                rule,
                at=now,
                end_wait=True,
                log=[self._entry(s, user.id, "approved", rule, now, detail=detail)],
            )
            return [AnswerQuery(query_id, "approve") if query_id else Approve(chat_id, user.id)]
        if verdict == "refused":
            assert identifier is not None
            await self.store.settle(chat_id, user.id)
            await self.store.log(self._refusal(s, user.id, "declined", now, identifier))
            return [
                AnswerQuery(query_id, "decline") if query_id else Decline(chat_id, user.id),
                Say(user_chat_id, self._refused_text(s, identifier, user.language_code)),
            ]
        deadline = now + timedelta(seconds=s.timeout)
        await self.store.put_pending(
            PendingRecord(
                chat_id,
                user.id,
                "request",
                deadline,
                user_chat_id=user_chat_id,
                query_id=query_id,
                name=user.first_name or None,
                created_at=now,
            ),
            log=[self._entry(s, user.id, "asked", str(s.policy), now, detail=detail)],
        )
        lang = texts.language_for(user.language_code)
        url = self.deeplinks.url(self.deeplinks.make(chat_id, deadline, user.id))
        ask = Say(
            user_chat_id,
            texts.t(
                lang,
                "ask_request",
                name=user.first_name or "there",
                title=s.title,
                app=self.app,
                wait=texts.wait(s.timeout),
            ),
            ((Button(texts.t(lang, "btn_sign_in"), url=url),),),
        )
        return [AnswerQuery(query_id, "queue"), ask] if query_id else [ask]

    async def on_member_joined(
        self,
        chat_id: int,
        user: Person,
        via_link_creator_id: int | None = None,
        via_join_request: bool = False,
    ) -> list[Action]:
        """A newcomer (a `chat_member` update from "not a member" to "member")."""
        s = await self.settings(chat_id)
        if s is None or not s.enabled:
            return []
        now = self.clock()
        if s.mode == "join_requests" and via_join_request:
            # Decided as a join request: by the gate (nothing waits any more), or by an admin
            # in Telegram while the gate waited, which ends the wait.
            wait = await self.store.get_pending(chat_id, user.id)
            if wait is not None and wait.kind == "request":
                entry = self._entry(s, user.id, "approved", "admin", now)
                await self.store.settle(chat_id, user.id, wait.deadline_at, log=[entry])
            return []
        verdict, identifier, rule = await self._verdict(s, user.id)
        detail = _via(via_link_creator_id)
        if s.mode == "join_requests":
            detail["without_request"] = True
        if verdict == "allowed":
            restricted = await self.store.has_restricted(chat_id, user.id)
            waited = await self.store.settle(chat_id, user.id)
            entries = [self._entry(s, user.id, "approved", rule, now, detail=detail)]
            if restricted:
                entries.append(self._entry(s, user.id, "freed", rule, now))
            await self.store.admit(chat_id, user.id, rule, at=now, log=entries)
            actions: list[Action] = [Free(chat_id, user.id)] if restricted else []
            return actions + (await self._notice(s, now) if waited else [])
        if verdict == "refused":
            assert identifier is not None
            waited = await self.store.settle(chat_id, user.id)
            await self.store.log(self._refusal(s, user.id, "removed", now, identifier))
            actions = [
                Remove(chat_id, user.id),
                Say(user.id, self._refused_text(s, identifier, user.language_code)),
            ]
            return actions + (await self._notice(s, now) if waited else [])
        if not s.can_restrict:
            # A channel can't hold someone who may read but not write: out until they verify.
            await self.store.log(
                [self._entry(s, user.id, "removed", rule, now, detail=detail | {"unverified": 1})]
            )
            return [Remove(chat_id, user.id)]
        await self.store.put_pending(
            PendingRecord(
                chat_id,
                user.id,
                "member",
                now + timedelta(seconds=s.timeout),
                name=user.first_name or None,
                created_at=now,
            ),
            log=[self._entry(s, user.id, "restricted", rule, now, detail=detail)],
        )
        return [Restrict(chat_id, user.id), *await self._notice(s, now)]

    async def on_member_left(self, chat_id: int, user_id: int) -> list[Action]:
        """Someone left or was removed: nothing to wait for, nobody to remove later."""
        wait = await self.store.get_pending(chat_id, user_id)
        waited = (
            wait is not None
            and wait.kind == "member"
            and await self.store.settle(chat_id, user_id, wait.deadline_at)
        )
        await self.store.drop_admission(chat_id, user_id)
        s = await self.settings(chat_id)
        return await self._notice(s, self.clock()) if waited and s else []

    # What the conversation tells: sign-ins, sign-outs, erasures.

    async def on_event(self, event: Happened) -> list[Action]:
        """What the conversation tells once it is stored: a sign-in, a sign-out, an erasure."""
        if isinstance(event, Linked):
            return await self.on_linked(event.user_id, event.identifier, event.entry)
        if isinstance(event, Unlinked):
            return await self.on_unlinked(event.user_id)
        return await self.on_erased(event.user_id)

    async def on_linked(
        self, user_id: int, identifier: Identifier, entry: str | None = None
    ) -> list[Action]:
        """Someone signed in: every wait of theirs is decided now."""
        now = self.clock()
        touched: dict[int, ChatSettings] = {}
        actions: list[Action] = []
        waits = await self.store.pending_of(user_id)
        for wait in waits:
            actions += await self._resolve(wait, identifier, now, touched)
        came_from = chat_of(entry)
        if came_from is not None and came_from not in {wait.chat_id for wait in waits}:
            actions += await self._came_back(came_from, user_id, identifier)
        return actions + await self._notices(touched, now)

    async def on_unlinked(self, user_id: int) -> list[Action]:
        """Someone signed out: out of every chat that requires a live link."""
        now = self.clock()
        actions: list[Action] = []
        for admission in await self.store.admissions_of(user_id):
            if admission.rule == MANUAL:
                continue
            s = await self.settings(admission.chat_id)
            if s is not None and s.enabled and s.require_live_link:
                entry = self._entry(s, user_id, "removed", "signed_out", now)
                if await self.store.drop_admission(s.chat_id, user_id, log=[entry]):
                    actions.append(Remove(s.chat_id, user_id))
        return actions

    async def on_erased(self, user_id: int) -> list[Action]:
        """Someone erased their data: their gate rows go, and so do they, where the chat
        requires a live link (or was still waiting for them)."""
        await self.store.erase_user(user_id)  # nothing left to do if the conversation did it
        now = self.clock()
        touched: dict[int, ChatSettings] = {}
        actions: list[Action] = []
        for erasure in await self.store.erasures(user_id):
            actions += await self._erasure(erasure, now, touched)
        return actions + await self._notices(touched, now)

    # Admins.

    async def on_admin_command(
        self,
        chat_id: int,
        actor_id: int | None,
        actor_is_admin: bool,
        args: str,
        *,
        reply_to: int | None = None,
        title: str | None = None,
        kind: str | None = None,
    ) -> list[Action]:
        """`/gate ARGS` in a chat (or about a channel, from the private chat: replies then go
        to `reply_to`). `actor_is_admin` is Telegram's word: the chat's administrators, or an
        anonymous admin posting as the chat. `title` and `kind` let a chat the bot has not
        been told about yet be set up."""
        to = reply_to if reply_to is not None else chat_id
        words = args.split()
        verb = words[0].lower() if words else "help"
        rest = " ".join(words[1:])
        if verb == "help":
            return [Say(to, texts.t("en", "help", low=MIN_TIMEOUT, high=MAX_TIMEOUT))]
        if not actor_is_admin:
            return [Say(to, texts.t("en", "not_admin"))]
        record = await self.store.get_chat(chat_id)
        if record is None and kind is not None:
            record = await self.store.note_chat(chat_id, title or "", parse_kind(kind), None)
        if record is None:
            return [Say(to, texts.t("en", "unknown_chat", rights=texts.rights("en", RIGHTS_GROUP)))]
        s = _settings(record)
        now = self.clock()
        if verb == "status":
            return [Say(to, await self._status(record))]
        if verb in ("on", "off"):
            return await self._switch(record, actor_id, verb == "on", to, now)
        if verb == "mode":
            return await self._set_mode(s, actor_id, rest, to, now)
        if verb == "policy":
            try:
                policy = Policy.parse(rest)
            except PolicyError as exc:
                return [Say(to, texts.t("en", "bad_policy", error=str(exc)))]
            await self._update(s, actor_id, now, policy=str(policy))
            return [Say(to, texts.t("en", "policy_set", policy=policy, accepts=policy.describe()))]
        if verb == "timeout":
            try:
                seconds = parse_timeout(rest)
            except ValueError:
                return [Say(to, texts.t("en", "bad_timeout", low=MIN_TIMEOUT, high=MAX_TIMEOUT))]
            await self._update(s, actor_id, now, timeout=seconds)
            return [Say(to, texts.t("en", "timeout_set", timeout=texts.wait(seconds)))]
        if verb == "live":
            if rest.lower() not in ("on", "off"):
                return [Say(to, texts.t("en", "bad_live"))]
            live = rest.lower() == "on"
            await self._update(s, actor_id, now, require_live_link=live)
            return [Say(to, texts.t("en", "live_set_on" if live else "live_set_off"))]
        if verb in ("approve", "remove"):
            try:
                target = int(rest)
            except ValueError:
                return [Say(to, texts.t("en", "bad_user"))]
            if verb == "approve":
                return await self._approve_by_hand(s, actor_id, target, to, now)
            return await self._remove_by_hand(s, actor_id, target, to, now)
        if verb == "link":
            if s.mode == "members":
                return [Say(to, texts.t("en", "link_members_mode"))]
            return [MakeInviteLink(chat_id, INVITE_LINK_NAME, reply_to=to)]
        return [Say(to, texts.t("en", "unknown"))]

    async def on_bot_status(
        self,
        chat_id: int,
        title: str,
        kind: str,
        rights: Collection[str] | None,
        *,
        actor_id: int | None = None,
        present: bool = True,
    ) -> list[Action]:
        """The bot's own membership changed (`my_chat_member`): `rights` are its admin rights
        by Bot API name (None: not an admin); `present` False when it left or was removed.
        Says which rights are missing: in the group, or to the admin who changed them
        (`actor_id`) for a channel, where the bot would be posting to every subscriber."""
        if not present:
            await self.store.note_chat(chat_id, title, parse_kind(kind), ())
            await self.store.forget_waits_in(chat_id)  # nothing can be done there any more
            return []
        await self.store.note_chat(chat_id, title, parse_kind(kind), rights or ())
        to = actor_id if kind == "channel" else chat_id
        if to is None:
            return []
        missing = missing_rights(kind, rights)
        # Nobody types in a channel: its admin manages it from the private chat, by its id.
        where = "_channel" if kind == "channel" else ""
        if missing:
            text = texts.t(
                "en",
                "rights_missing" + where,
                title=title,
                rights=texts.rights("en", missing),
                chat_id=chat_id,
            )
        else:
            text = texts.t("en", "rights_ok" + where, title=title, chat_id=chat_id)
        return [Say(to, text)]

    # Admins in the private chat, for channels (and groups, if they like).

    async def admin_overview(self, is_admin: AdminCheck) -> str:
        """`/gate` in the private chat: the chats where the bot is an admin that the person
        administers (`is_admin`: Telegram's word, asked per chat), with each gate's state."""
        lines = []
        for record in await self.store.list_chats():
            if not record.bot_rights or not await is_admin(record.chat_id):
                continue
            s = _settings(record)
            lines.append(
                texts.t(
                    "en",
                    "chat_line",
                    title=s.title or s.chat_id,
                    kind=s.kind,
                    chat_id=s.chat_id,
                    state=texts.t("en", "state_on" if s.enabled else "state_off"),
                )
            )
        if not lines:
            return texts.t("en", "no_chats")
        return texts.t("en", "your_chats", chats="\n".join(lines))

    async def note_chat(
        self, chat_id: int, title: str, kind: str, rights: Collection[str] | None
    ) -> None:
        """What Telegram says of a chat the bot missed hearing about; its settings are kept."""
        await self.store.note_chat(chat_id, title, parse_kind(kind), rights or ())

    async def on_chat_shared(
        self,
        chat_id: int,
        title: str | None,
        kind: str | None,
        rights: Collection[str] | None,
        *,
        actor_is_admin: bool,
        reply_to: int,
    ) -> list[Action]:
        """An admin picked a chat with the "add a chat" button. `kind` None: the bot can't see
        the chat (it is not in it); `rights`: the bot's admin rights there (None: none)."""
        if kind is None:
            group, channel = texts.rights("en", RIGHTS_GROUP), texts.rights("en", RIGHTS_CHANNEL)
            return [Say(reply_to, texts.t("en", "shared_unseen", group=group, channel=channel))]
        if not actor_is_admin:
            return [Say(reply_to, texts.t("en", "not_admin"))]
        record = await self.store.note_chat(
            chat_id, title or str(chat_id), parse_kind(kind), rights or ()
        )
        added = texts.t("en", "shared", title=record.title, chat_id=chat_id)
        return [Say(reply_to, added + "\n\n" + await self._status(record))]

    # What Telegram answered.

    async def on_result(self, result: Result) -> list[Action]:
        action, error = result.action, result.error
        if isinstance(action, MakeInviteLink):
            to = action.reply_to if action.reply_to is not None else action.chat_id
            if result.ok and result.link:
                return [Say(to, texts.t("en", "invite_link", link=result.link))]
            return [Say(to, texts.t("en", "invite_link_failed", error=error or "no link"))]
        if result.ok:
            return []
        now = self.clock()
        if isinstance(action, Say):
            if error_says(error, CANT_INITIATE) or error_says(error, BLOCKED):
                # The request waits for its timeout; an admin can still approve it by hand.
                for wait in await self.store.pending_for_chat_of(action.chat_id):
                    await self.store.log(
                        [
                            LogEntry(
                                wait.chat_id,
                                wait.user_id,
                                "dm_failed",
                                detail={"error": error or ""},
                                at=now,
                            )
                        ]
                    )
            return []
        if isinstance(action, Approve) and error_says(error, ALREADY_PARTICIPANT):
            return []
        if isinstance(action, (Approve, Decline)) and error_says(error, REQUEST_GONE):
            if isinstance(action, Approve):
                await self.store.drop_admission(action.chat_id, action.user_id)
            await self.store.log([LogEntry(action.chat_id, action.user_id, "request_gone", at=now)])
            return []
        if isinstance(action, (Approve, Decline, Restrict, Free, Remove)):
            await self.store.log(
                [
                    LogEntry(
                        action.chat_id,
                        action.user_id,
                        "failed",
                        detail={"call": type(action).__name__.lower(), "error": error or ""},
                        at=now,
                    )
                ]
            )
        return []

    # Deadlines and lost decisions.

    async def reconcile(self, now: datetime | None = None, *, limit: int = 100) -> list[Action]:
        """What may have been missed (run at start and as a job): waits of people who have
        signed in meanwhile are decided, waits past their deadline are ended (a join request
        declined, a newcomer removed), sign-outs and erasures not acted on are."""
        now = now or self.clock()
        touched: dict[int, ChatSettings] = {}
        actions: list[Action] = []
        for _ in range(MAX_ROUNDS):
            waits = await self.store.pending_linked(limit)
            for wait in waits:
                link = await self.links.get_link(wait.user_id)
                identifier = _identifier(link) if link else None
                if identifier is not None:
                    actions += await self._resolve(wait, identifier, now, touched)
            if len(waits) < limit:
                break
        for _ in range(MAX_ROUNDS):
            due = await self.store.due(now, limit)
            for wait in due:
                actions += await self._expire(wait, now, touched)
            if len(due) < limit:
                break
        for _ in range(MAX_ROUNDS):
            unlinked = await self.store.admissions_without_link(limit)
            for admission in unlinked:
                s = await self.settings(admission.chat_id)
                if s is None:
                    continue
                entry = self._entry(s, admission.user_id, "removed", "signed_out", now)
                if await self.store.drop_admission(s.chat_id, admission.user_id, log=[entry]):
                    actions.append(Remove(s.chat_id, admission.user_id))
            if len(unlinked) < limit:
                break
        for _ in range(MAX_ROUNDS):
            erasures = await self.store.erasures(limit=limit)
            for erasure in erasures:
                actions += await self._erasure(erasure, now, touched)
            if len(erasures) < limit:
                break
        # A token lives at most the longest timeout; its record is useless after that.
        await self.store.forget_redeemed(now - timedelta(seconds=MAX_TIMEOUT + 60))
        return actions + await self._notices(touched, now)

    # /me.

    async def admitted_chats(self, user_id: int) -> list[AdmittedChat]:
        return [
            AdmittedChat(a.chat_id, a.title or str(a.chat_id), a.admitted_at)
            for a in await self.store.admissions_of(user_id)
        ]

    # Inside.

    async def _verdict(
        self, s: ChatSettings, user_id: int
    ) -> tuple[Verdict, Identifier | None, str]:
        admission = await self.store.get_admission(s.chat_id, user_id)
        if admission is not None and admission.rule == MANUAL:
            return "allowed", None, MANUAL
        link = await self.links.get_link(user_id)
        identifier = _identifier(link) if link else None
        if identifier is None:
            return "unlinked", None, str(s.policy)
        verdict: Verdict = "allowed" if s.policy.allows(identifier) else "refused"
        return verdict, identifier, str(s.policy)

    async def _resolve(
        self,
        wait: PendingRecord,
        identifier: Identifier,
        now: datetime,
        touched: dict[int, ChatSettings],
    ) -> list[Action]:
        """Decide a wait for someone who is signed in as `identifier`."""
        s = await self.settings(wait.chat_id)
        if s is None or not s.enabled:
            return await self._release(wait, s, now, touched)
        chat_id, user_id = wait.chat_id, wait.user_id
        rule = str(s.policy)
        if s.policy.allows(identifier):
            entries = [self._entry(s, user_id, "approved", rule, now)]
            if wait.kind == "member":
                entries.append(self._entry(s, user_id, "freed", rule, now))
            if not await self.store.settle(
                chat_id, user_id, wait.deadline_at, admit=rule, log=entries, at=now
            ):
                return []
            if wait.kind == "request":
                return [
                    Approve(chat_id, user_id),
                    Say(user_id, texts.t("en", "admitted_request", title=s.title)),
                ]
            touched[chat_id] = s
            return [
                Free(chat_id, user_id),
                Say(user_id, texts.t("en", "admitted_member", title=s.title)),
            ]
        outcome = "declined" if wait.kind == "request" else "removed"
        refusal = self._refusal(s, user_id, outcome, now, identifier)
        if not await self.store.settle(chat_id, user_id, wait.deadline_at, log=refusal):
            return []
        say = Say(user_id, self._refused_text(s, identifier, None))
        if wait.kind == "request":
            return [Decline(chat_id, user_id), say]
        touched[chat_id] = s
        return [Remove(chat_id, user_id), say]

    async def _expire(
        self, wait: PendingRecord, now: datetime, touched: dict[int, ChatSettings]
    ) -> list[Action]:
        s = await self.settings(wait.chat_id)
        if s is None or not s.enabled:
            return await self._release(wait, s, now, touched)
        outcome = "declined" if wait.kind == "request" else "removed"
        entry = self._entry(s, wait.user_id, outcome, "timeout", now, detail={"timeout": s.timeout})
        if not await self.store.settle(wait.chat_id, wait.user_id, wait.deadline_at, log=[entry]):
            return []
        if wait.kind == "request":
            return [Decline(wait.chat_id, wait.user_id)]
        touched[wait.chat_id] = s
        return [Remove(wait.chat_id, wait.user_id)]

    async def _release(
        self,
        wait: PendingRecord,
        s: ChatSettings | None,
        now: datetime,
        touched: dict[int, ChatSettings],
    ) -> list[Action]:
        """End a wait in a chat whose gate is off: a newcomer the gate restricted is freed, a
        join request is left to the chat's admins."""
        entries = []
        if wait.kind == "member":
            entries.append(LogEntry(wait.chat_id, wait.user_id, "freed", "gate_off", at=now))
        if not await self.store.settle(wait.chat_id, wait.user_id, wait.deadline_at, log=entries):
            return []
        if wait.kind == "request":
            return []
        if s is not None:
            touched[wait.chat_id] = s
        return [Free(wait.chat_id, wait.user_id)]

    async def _erasure(
        self, erasure: ErasureRecord, now: datetime, touched: dict[int, ChatSettings]
    ) -> list[Action]:
        """Act on an erased person's chat, logging it without naming them."""
        outcome = {"decline": "declined", "remove": "removed", "free": "freed"}[erasure.action]
        entry = LogEntry(erasure.chat_id, None, outcome, "erased", at=now)
        if not await self.store.settle_erasure(erasure.chat_id, erasure.user_id, log=[entry]):
            return []
        if erasure.action == "decline":
            return [Decline(erasure.chat_id, erasure.user_id)]
        s = await self.settings(erasure.chat_id)
        if s is not None and erasure.waiting:
            touched[erasure.chat_id] = s
        if erasure.action == "free":
            return [Free(erasure.chat_id, erasure.user_id)]
        return [Remove(erasure.chat_id, erasure.user_id)]

    async def _came_back(self, chat_id: int, user_id: int, identifier: Identifier) -> list[Action]:
        """Signed in from a chat's link with nothing waiting there (the wait timed out, or
        they had left): say what to do next."""
        s = await self.settings(chat_id)
        if s is None or not s.enabled:
            return []
        if await self.store.get_admission(chat_id, user_id) is not None:
            return []
        if not s.policy.allows(identifier):
            return [Say(user_id, self._refused_text(s, identifier, None))]
        return [Say(user_id, texts.t("en", "ask_again", title=s.title))]

    async def _notice(self, s: ChatSettings, now: datetime) -> list[Action]:
        """The group's one message about newcomers, as it should read now."""
        if not s.can_restrict:
            return []
        waiting = await self.store.pending_in(s.chat_id, "member", limit=MAX_NAMES)
        if not waiting:
            return [Notice(s.chat_id, WAVE, None)]
        names = ", ".join(_short(w.name) or texts.t("en", "someone") for w in waiting)
        total = await self.store.count_pending(s.chat_id, "member")
        if total > len(waiting):
            names = texts.t("en", "wave_more", names=names, count=total - len(waiting))
        token = self.deeplinks.make(s.chat_id, now + timedelta(seconds=s.timeout))
        return [
            Notice(
                s.chat_id,
                WAVE,
                texts.t("en", "wave", names=names, app=self.app, wait=texts.wait(s.timeout)),
                ((Button(texts.t("en", "btn_verify"), url=self.deeplinks.url(token)),),),
            )
        ]

    async def _notices(self, touched: dict[int, ChatSettings], now: datetime) -> list[Action]:
        actions: list[Action] = []
        for s in touched.values():
            actions += await self._notice(s, now)
        return actions

    async def _status(self, record: ChatRecord) -> str:
        s = _settings(record)
        text = texts.t(
            "en",
            "status",
            state=texts.t("en", "state_on" if s.enabled else "state_off"),
            mode=texts.t("en", f"mode_{s.mode}"),
            policy=s.policy,
            accepts=s.policy.describe(),
            timeout=texts.wait(s.timeout),
            live=texts.t("en", "yes" if s.require_live_link else "no"),
            waiting=await self.store.count_pending(s.chat_id),
        )
        if record.bot_rights is not None:
            missing = missing_rights(s.kind, record.bot_rights)
            if missing:
                text += "\n" + texts.t("en", "status_missing", rights=texts.rights("en", missing))
        return text

    async def _switch(
        self, record: ChatRecord, actor_id: int | None, on: bool, to: int, now: datetime
    ) -> list[Action]:
        s = _settings(record)
        if on:
            missing = (
                missing_rights(s.kind, record.bot_rights) if record.bot_rights is not None else ()
            )
            if missing:
                why = texts.t("en", "status_missing", rights=texts.rights("en", missing))
                return [Say(to, texts.t("en", "cannot_turn_on", title=s.title, missing=why))]
            await self._update(s, actor_id, now, enabled=True)
            how = texts.t("en", f"how_{s.mode}")
            return [Say(to, texts.t("en", "turned_on", how=how))]
        await self._update(s, actor_id, now, enabled=False)
        actions: list[Action] = []
        for wait in await self.store.forget_waits_in(s.chat_id):
            if wait.kind == "member":
                await self.store.log(
                    [LogEntry(s.chat_id, wait.user_id, "freed", "gate_off", actor_id, at=now)]
                )
                actions.append(Free(s.chat_id, wait.user_id))
        if s.can_restrict:
            actions.append(Notice(s.chat_id, WAVE, None))
        return [*actions, Say(to, texts.t("en", "turned_off"))]

    async def _set_mode(
        self, s: ChatSettings, actor_id: int | None, text: str, to: int, now: datetime
    ) -> list[Action]:
        try:
            mode = parse_mode(text)
        except ValueError:
            return [Say(to, texts.t("en", "bad_mode"))]
        if mode == "members" and not s.can_restrict:
            return [Say(to, texts.t("en", "mode_channel"))]
        await self._update(s, actor_id, now, mode=mode)
        return [Say(to, texts.t("en", "mode_set", mode=texts.t("en", f"mode_{mode}")))]

    async def _update(
        self, s: ChatSettings, actor_id: int | None, now: datetime, **changes: Any
    ) -> None:
        entry = LogEntry(s.chat_id, None, "settings", "", actor_id, detail=changes, at=now)
        await self.store.update_chat(s.chat_id, log=[entry], **changes)

    async def _approve_by_hand(
        self, s: ChatSettings, actor_id: int | None, user_id: int, to: int, now: datetime
    ) -> list[Action]:
        entry = self._entry(s, user_id, "manual_approve", MANUAL, now, actor_id=actor_id)
        reply = Say(to, texts.t("en", "approved", user=user_id))
        wait = await self.store.get_pending(s.chat_id, user_id)
        if wait is not None and await self.store.settle(
            s.chat_id, user_id, wait.deadline_at, admit=MANUAL, log=[entry], at=now
        ):
            if wait.kind == "request":
                return [Approve(s.chat_id, user_id), reply]
            return [Free(s.chat_id, user_id), *await self._notice(s, now), reply]
        restricted = await self.store.has_restricted(s.chat_id, user_id)
        entries = [entry]
        if restricted:
            entries.append(self._entry(s, user_id, "freed", MANUAL, now, actor_id=actor_id))
        await self.store.admit(s.chat_id, user_id, MANUAL, at=now, log=entries)
        return [Free(s.chat_id, user_id), reply] if restricted else [reply]

    async def _remove_by_hand(
        self, s: ChatSettings, actor_id: int | None, user_id: int, to: int, now: datetime
    ) -> list[Action]:
        entry = self._entry(s, user_id, "manual_remove", MANUAL, now, actor_id=actor_id)
        reply = Say(to, texts.t("en", "removed", user=user_id))
        wait = await self.store.get_pending(s.chat_id, user_id)
        if (
            wait is not None
            and wait.kind == "request"
            and await self.store.settle(s.chat_id, user_id, wait.deadline_at, log=[entry])
        ):
            return [Decline(s.chat_id, user_id), reply]
        waited = await self.store.settle(s.chat_id, user_id)
        await self.store.drop_admission(s.chat_id, user_id)
        await self.store.log([entry])
        notice = await self._notice(s, now) if waited else []
        return [Remove(s.chat_id, user_id), *notice, reply]

    def _entry(
        self,
        s: ChatSettings,
        user_id: int | None,
        action: str,
        rule: str,
        now: datetime,
        *,
        actor_id: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> LogEntry:
        return LogEntry(s.chat_id, user_id, action, rule, actor_id, detail or {}, at=now)

    def _refusal(
        self, s: ChatSettings, user_id: int, outcome: str, now: datetime, identifier: Identifier
    ) -> list[LogEntry]:
        # The kind of identifier says why without saying what it was.
        detail = {"identifier": identifier.kind}
        rule = str(s.policy)
        return [
            self._entry(s, user_id, "policy_refused", rule, now, detail=detail),
            self._entry(s, user_id, outcome, rule, now),
        ]

    def _refused_text(self, s: ChatSettings, identifier: Identifier, language: str | None) -> str:
        return texts.t(
            texts.language_for(language),
            "refused",
            title=s.title,
            accepts=s.policy.describe(),
            who=identifier.masked,
            **self._mentions,
        )


def _settings(record: ChatRecord) -> ChatSettings:
    try:
        policy = Policy.parse(record.policy)
    except PolicyError:
        # Only a hand-edited row gets here; refusing everyone is the safe reading of it.
        log.error("chat %s has an unreadable policy; nobody is admitted", record.chat_id)
        policy = Policy("email-domain", ())
    return ChatSettings(
        chat_id=record.chat_id,
        title=record.title,
        kind=parse_kind(record.kind),
        enabled=record.enabled,
        mode=parse_mode(record.mode)
        if record.mode in ("join_requests", "members")
        else "join_requests",
        policy=policy,
        timeout=record.timeout,
        require_live_link=record.require_live_link,
    )


def _identifier(link: LinkView) -> Identifier | None:
    kind = link.identifier_kind
    if kind == "email":
        return Identifier("email", link.identifier_value)
    if kind == "phone":
        return Identifier("phone", link.identifier_value)
    return None


def _via(link_creator_id: int | None) -> dict[str, Any]:
    return {"link_creator_id": link_creator_id} if link_creator_id is not None else {}


def _short(name: str | None) -> str:
    if not name:
        return ""
    name = " ".join(name.split())
    return name if len(name) <= MAX_NAME_LENGTH else name[: MAX_NAME_LENGTH - 1] + "…"
