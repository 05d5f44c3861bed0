"""A group or channel as a test holds it: its owner and administrators act through it (add the
bot and set its rights, make it the guard bot, add or remove people, create invite links), and
it shows what a member would see (statuses, what the bots posted, edited and deleted)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from . import groups
from .groups import Group, JoinRequest, Member
from .state import BotState, ChatMessage, Person, World
from .users import NoAnswer, SimUser

Who = SimUser | Person


def _person(who: Who) -> Person:
    return who.person if isinstance(who, SimUser) else who


class SimChat:
    def __init__(self, world: World, group: Group) -> None:
        self.world = world
        self.group = group
        self._scanned = 0  # the last message id next_message looked at

    def __repr__(self) -> str:
        return f"<SimChat {self.type} {self.title!r} id={self.id}>"

    @property
    def id(self) -> int:
        return self.group.id

    @property
    def type(self) -> str:
        return self.group.kind

    @property
    def title(self) -> str | None:
        return self.group.chat.title

    @property
    def username(self) -> str | None:
        return self.group.chat.username

    @property
    def owner(self) -> Person:
        return self.world.people[self.group.owner_id]

    @property
    def primary_link(self) -> str:
        assert self.group.primary is not None
        return self.group.primary.url

    def _bot(self, token: str | None) -> BotState:
        if token is None:
            return self.world.default_bot()
        return self.world.bots[int(token.split(":", 1)[0])]

    def _actor(self, by: Who | None) -> int:
        return self.group.owner_id if by is None else _person(by).id

    def _rights(self, rights: Iterable[str] | None) -> frozenset[str]:
        if rights is None:
            return groups.default_rights(self.type)
        return groups.checked_rights(self.type, frozenset(rights))

    # --- the bot ---------------------------------------------------------------------------

    def add_bot(
        self,
        token: str | None = None,
        *,
        admin: bool = True,
        rights: Iterable[str] | None = None,
        by: Who | None = None,
    ) -> None:
        """Add the bot, as an administrator with `rights` (default: what the app ticks, all
        but adding administrators) or as a plain member; it gets my_chat_member."""
        self.set_bot_rights(token, rights=rights if admin else (), by=by)

    def set_bot_rights(
        self, token: str | None = None, *, rights: Iterable[str] | None, by: Who | None = None
    ) -> None:
        """Make the bot an administrator with exactly `rights`; no rights makes it a plain
        member (channels take bots only as administrators)."""
        bot = self._bot(token)
        actor = self._actor(by)
        granted = self._rights(rights)
        if granted:
            new = Member(bot.id, "administrator", rights=granted, promoted_by=actor)
        elif self.type == "channel":
            raise ValueError("a channel takes bots only as administrators")
        else:
            new = Member(bot.id, "member")
        groups.change(self.world, self.group, new, actor)

    def remove_bot(
        self, token: str | None = None, *, ban: bool = False, by: Who | None = None
    ) -> None:
        bot = self._bot(token)
        banned = ban and self.type != "group"
        groups.change(
            self.world, self.group, Member(bot.id, "kicked" if banned else "left"), self._actor(by)
        )

    def make_guard(self, token: str | None = None) -> None:
        """Assign the bot to process join requests (Bot API 10.1): it then gets query_id with
        each request. Ordinary supergroups only, and the bot must be an administrator."""
        bot = self._bot(token)
        if self.type != "supergroup":
            raise ValueError("guard bots process join requests in supergroups only")
        if not self.group.member(bot.id, self.world.now()).is_admin:
            raise ValueError(f"{bot.username} is not an administrator of {self.title!r}")
        bot.supports_join_request_queries = True
        self.group.guard_bot_id = bot.id

    # --- people ----------------------------------------------------------------------------

    def set_join_by_request(self, on: bool = True) -> None:
        """The "approve new members" switch (no Bot API method sets it)."""
        groups.set_join_by_request(self.group, on)

    def add_member(self, who: Who, *, by: Who | None = None) -> None:
        """An administrator adds someone directly, with no link: a way in that bypasses links."""
        person = _person(who)
        member = self.group.member(person.id, self.world.now())
        if member.in_chat:
            raise groups.Refused("USER_ALREADY_PARTICIPANT")
        groups.admit(self.world, self.group, person.id, self._actor(by))

    def promote(
        self,
        who: Who,
        *,
        rights: Iterable[str] | None = None,
        anonymous: bool = False,
        title: str | None = None,
        by: Who | None = None,
    ) -> None:
        """Make someone an administrator (`anonymous`: they post as the group); for the owner,
        only `anonymous` and `title` change."""
        person = _person(who)
        if self.group.member(person.id, self.world.now()).status == "creator":
            owner = Member(person.id, "creator", is_anonymous=anonymous, custom_title=title)
            groups.change(self.world, self.group, owner, person.id)
            return
        new = Member(
            person.id,
            "administrator",
            rights=self._rights(rights),
            is_anonymous=anonymous,
            promoted_by=self._actor(by),
            custom_title=title,
        )
        groups.change(self.world, self.group, new, self._actor(by))

    def remove(self, who: Who, *, ban: bool = False, by: Who | None = None) -> None:
        """An administrator removes someone in the app (and bans them with `ban`)."""
        person = _person(who)
        banned = ban and self.type != "group"
        groups.change(
            self.world,
            self.group,
            Member(person.id, "kicked" if banned else "left"),
            self._actor(by),
        )

    def create_link(
        self,
        *,
        by: Who | None = None,
        creates_join_request: bool = False,
        name: str | None = None,
        member_limit: int | None = None,
        expire_date: int | None = None,
    ) -> str:
        """An invite link made by an administrator in the app: to the bot, a foreign link."""
        link = groups.new_link(
            self.world,
            self.group,
            self._actor(by),
            creates_join_request=creates_join_request,
            name=name,
            member_limit=member_limit,
            expire_date=expire_date,
        )
        return link.url

    # --- what members see ------------------------------------------------------------------

    def status(self, who: Who | BotState) -> str:
        """creator, administrator, member, restricted, left or kicked, as of now."""
        return self.group.member(who.id, self.world.now()).status

    def member(self, who: Who | BotState, token: str | None = None) -> dict[str, Any]:
        """The ChatMember a bot's getChatMember would answer."""
        member = self.group.member(who.id, self.world.now())
        return groups.member_view(self.world, self.group, member, self._bot(token).id)

    def can_write(self, who: Who) -> bool:
        return self.group.may_write(_person(who).id, self.world.now())

    def join_request(self, who: Who) -> JoinRequest | None:
        """The person's latest join request, pending or settled."""
        return self.group.asked.get(_person(who).id)

    @property
    def member_count(self) -> int:
        return self.group.member_count

    @property
    def messages(self) -> list[ChatMessage]:
        return list(self.group.chat.messages.values())

    @property
    def bot_messages(self) -> list[ChatMessage]:
        return [m for m in self.group.chat.messages.values() if m.from_bot]

    async def next_message(self, timeout: float = 5.0) -> ChatMessage:  # noqa: ASYNC109
        """The next new message a bot posted here (edits are not new messages)."""
        chat = self.group.chat
        found: list[ChatMessage] = []

        def ready() -> bool:
            while not found and self._scanned < chat.last_message_id:
                self._scanned += 1
                message = chat.messages.get(self._scanned)
                if message is not None and message.from_bot:
                    found.append(message)
            return bool(found)

        if not await chat.signal.wait_until(ready, timeout):
            raise NoAnswer(f"no new bot message in {self!r} within {timeout} s. {self._report()}")
        return found[0]

    async def wait_for(
        self,
        match: Callable[[ChatMessage], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
        what: str = "a message",
    ) -> ChatMessage:
        """The first message in the chat matching `match`, waiting for it if need be."""
        chat = self.group.chat

        def find() -> ChatMessage | None:
            return next((m for m in chat.messages.values() if match(m)), None)

        if not await chat.signal.wait_until(lambda: find() is not None, timeout):
            raise NoAnswer(f"{self!r} shows no {what} within {timeout} s. {self._report()}")
        found = find()
        assert found is not None
        return found

    def _report(self) -> str:
        failed = [
            f"{c.method} -> {c.error.description}"
            for c in self.world.calls
            if c.error is not None and c.chat_id == self.id
        ]
        return (
            f"Bot messages here: {self.bot_messages or 'none'}. "
            f"Failed bot calls on this chat (last 10): {failed[-10:] or 'none'}."
        )
