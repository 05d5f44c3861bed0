"""The gate in Telegram's chats, whatever the framework: group and channel events in, as plain
data, and the gate's actions carried out through Telegram calls (bot.calls), each answer told
back to the gate, which may answer with more actions (a link to announce, a failure to log).

The gate decides (bot/gate); an adapter turns its framework's updates into the calls below.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from bot import metrics
from bot.calls import CallFailed, Calls, ChatFacts
from bot.conversation.events import Happened, Person, Reply
from bot.gate import texts
from bot.gate.actions import (
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
)
from bot.gate.service import Gate

log = logging.getLogger(__name__)

GATE_COMMAND = r"^/gate(@\w+)?(\s|$)"
JOINED = frozenset({"member", "restricted", "administrator", "creator"})
GONE = frozenset({"left", "kicked"})
ADMINS = frozenset({"creator", "administrator"})


def is_gate_command(text: str | None) -> bool:
    return text is not None and re.match(GATE_COMMAND, text) is not None


@dataclass(frozen=True, slots=True)
class MemberChange:
    """A `chat_member` update: someone else's membership changed."""

    chat_id: int
    person: Person
    is_bot: bool
    old: str  # statuses by their Bot API names
    new: str
    via_link_creator_id: int | None = None
    via_join_request: bool = False


class GateChats:
    def __init__(self, gate: Gate, calls: Calls) -> None:
        self.gate = gate
        self.calls = calls

    # What the conversation stored, and the gate's own deadlines.

    async def tell(self, happened: Iterable[Happened]) -> None:
        """What the conversation stored (a sign-in, a sign-out, an erasure), for the gate."""
        for event in happened:
            await self.run(await self.gate.on_event(event))

    async def reconcile(self) -> None:
        await self.run(await self.gate.reconcile())

    # Updates from chats.

    async def on_join_request(
        self,
        chat_id: int,
        who: Person,
        user_chat_id: int,
        *,
        query_id: str | None,
        invite_link_creator_id: int | None,
    ) -> None:
        await self.run(
            await self.gate.on_join_request(
                chat_id,
                who,
                user_chat_id,
                query_id=query_id,
                invite_link_creator_id=invite_link_creator_id,
            )
        )

    async def on_member(self, change: MemberChange) -> None:
        if change.is_bot or change.new in ADMINS:
            return  # bots and admins are not the gate's to hold back
        if change.old in GONE and change.new in JOINED:
            actions = await self.gate.on_member_joined(
                change.chat_id,
                change.person,
                via_link_creator_id=change.via_link_creator_id,
                via_join_request=change.via_join_request,
            )
        elif change.old not in GONE and change.new in GONE:
            actions = await self.gate.on_member_left(change.chat_id, change.person.id)
        else:
            return
        await self.run(actions)

    async def on_bot_status(
        self,
        chat_id: int,
        title: str,
        kind: str,
        rights: list[str] | None,
        *,
        actor_id: int | None,
        present: bool,
    ) -> None:
        await self.run(
            await self.gate.on_bot_status(
                chat_id, title, kind, rights, actor_id=actor_id, present=present
            )
        )

    async def on_group_command(
        self,
        chat_id: int,
        text: str,
        *,
        title: str | None,
        kind: str,
        actor_id: int | None,
        as_chat: bool,
    ) -> None:
        """`/gate …` typed in a group; `as_chat`: an anonymous admin, posting as the group."""
        if as_chat:
            is_admin, actor_id = True, None
        elif actor_id is not None:
            is_admin = await self._is_admin(chat_id, actor_id)
        else:
            return
        args = text.partition(" ")[2]
        actions = await self.gate.on_admin_command(
            chat_id, actor_id, is_admin, args, title=title, kind=kind
        )
        await self.run(actions)

    # Channels have nobody typing commands: their admins manage them from the private chat.

    async def on_private_command(self, user_id: int, here: int, text: str) -> None:
        """`/gate [CHAT_ID [ARGS]]` in the private chat."""
        _, target, rest = [*text.split(maxsplit=2), "", ""][:3]
        if not target:

            async def administers(chat_id: int) -> bool:
                return await self._is_admin(chat_id, user_id)

            overview = await self.gate.admin_overview(administers)
            await self.calls.send_chat_picker(here, overview)
            return
        try:
            chat_id = int(target)
        except ValueError:
            await self.run([Say(here, texts.t("en", "private_usage"))])
            return
        is_admin = await self._is_admin(chat_id, user_id)
        if is_admin and await self.gate.store.get_chat(chat_id) is None:
            # Made an admin while the bot was not listening: learn the chat from Telegram.
            facts = await self._facts(chat_id)
            if facts is not None:
                await self.gate.note_chat(chat_id, *facts)
        actions = await self.gate.on_admin_command(
            chat_id, user_id, is_admin, rest or "status", reply_to=here
        )
        await self.run(actions)

    async def on_chat_shared(self, chat_id: int, user_id: int, here: int) -> None:
        """The answer to an "add a chat" button: the chat the admin picked."""
        facts = await self._facts(chat_id)
        title, kind, rights = facts if facts is not None else (None, None, None)
        is_admin = facts is not None and await self._is_admin(chat_id, user_id)
        actions = await self.gate.on_chat_shared(
            chat_id, title, kind, rights, actor_is_admin=is_admin, reply_to=here
        )
        await self.run(actions)

    # Carrying out.

    async def run(self, actions: Iterable[Action]) -> None:
        queue = list(actions)
        while queue:
            action = queue.pop(0)
            if isinstance(action, Notice) and any(
                isinstance(later, Notice)
                and (later.chat_id, later.key) == (action.chat_id, action.key)
                for later in queue
            ):
                continue  # a later notice replaces this one
            result = await self._do(action)
            if result.ok:
                metrics.gate_action(action)
            queue.extend(await self.gate.on_result(result))

    async def _do(self, action: Action) -> Result:
        calls = self.calls
        try:
            if isinstance(action, Approve):
                await calls.approve(action.chat_id, action.user_id)
            elif isinstance(action, Decline):
                await calls.decline(action.chat_id, action.user_id)
            elif isinstance(action, AnswerQuery):
                await calls.answer_join_query(action.query_id, action.result)
            elif isinstance(action, Restrict | Free):
                await calls.permit(action.chat_id, action.user_id, allowed=isinstance(action, Free))
            elif isinstance(action, Remove):
                await calls.remove(action.chat_id, action.user_id)
            elif isinstance(action, Say):
                await calls.send(action.chat_id, Reply(action.text, action.buttons))
            elif isinstance(action, Notice):
                await self._notice(action)
            elif isinstance(action, MakeInviteLink):
                link = await calls.make_invite_link(action.chat_id, action.name)
                return Result(action, True, link=link)
        except CallFailed as exc:
            log.info("gate action %s refused: %s", type(action).__name__, exc.message)
            return Result(action, False, error=exc.message)
        return Result(action, True)

    async def _notice(self, notice: Notice) -> None:
        """One message per wave of newcomers: posted, then edited in place, then deleted."""
        store = self.gate.store
        shown = await store.get_notice(notice.chat_id, notice.key)
        if notice.text is None:
            if shown is not None:
                await store.set_notice(notice.chat_id, notice.key, None)
                try:
                    await self.calls.delete(notice.chat_id, shown)
                except CallFailed as exc:
                    log.info("old notice not deleted: %s", exc.message)
            return
        reply = Reply(notice.text, notice.buttons)
        if shown is not None:
            try:
                await self.calls.edit(notice.chat_id, shown, reply)
                return
            except CallFailed as exc:
                if "message is not modified" in exc.message:
                    return
                log.info("notice not edited, posting anew: %s", exc.message)
        sent = await self.calls.send(notice.chat_id, reply)
        await store.set_notice(notice.chat_id, notice.key, sent)

    # Telegram's word, asked each time: an admin demoted a second ago is no admin.

    async def _is_admin(self, chat_id: int, user_id: int) -> bool:
        try:
            member = await self.calls.member(chat_id, user_id)
        except CallFailed as exc:
            log.info("could not check an admin: %s", exc.message)
            return False
        return member.status in ADMINS

    async def _facts(self, chat_id: int) -> tuple[str, str, list[str] | None] | None:
        """A chat's title and kind and the bot's admin rights there, or None when the bot
        can't see it (not in it)."""
        try:
            chat: ChatFacts = await self.calls.chat(chat_id)
            me = await self.calls.member(chat_id, self.calls.bot_id)
        except CallFailed as exc:
            log.info("could not look at a chat: %s", exc.message)
            return None
        return chat.title or str(chat_id), chat.kind, me.rights
