"""Groups, supergroups and channels as Telegram keeps them: who is in them with which status,
invite links, join requests, and the updates each change sends to the bots in the chat.

The Bot API methods a bot calls and the people a test plays both change chats through this
module, so a change looks the same to the bots whoever made it.
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

from .objects import MEMBER_KINDS, build
from .state import BotState, ChatMessage, ChatState, Person, World
from .wire import ApiError, bad_request

Kind = Literal["group", "supergroup", "channel"]
PERMISSIONS = (
    "can_send_messages", "can_send_audios", "can_send_documents", "can_send_photos",
    "can_send_videos", "can_send_video_notes", "can_send_voice_notes", "can_send_polls",
    "can_send_other_messages", "can_add_web_page_previews", "can_react_to_messages",
    "can_edit_tag", "can_change_info", "can_invite_users", "can_pin_messages",
    "can_manage_topics",
)  # fmt: skip
MEDIA = (
    "can_send_audios", "can_send_documents", "can_send_photos", "can_send_videos",
    "can_send_video_notes", "can_send_voice_notes",
)  # fmt: skip
# Newer than most bots: a bot that does not name them does not mean to take them away.
UNNAMED_ALLOWED = ("can_react_to_messages", "can_edit_tag")
RIGHTS = (
    "can_manage_chat", "can_delete_messages", "can_manage_video_chats", "can_restrict_members",
    "can_promote_members", "can_change_info", "can_invite_users", "can_post_stories",
    "can_edit_stories", "can_delete_stories", "can_send_welcome_messages",
)  # fmt: skip
CHANNEL_RIGHTS = ("can_post_messages", "can_edit_messages", "can_manage_direct_messages")
GROUP_RIGHTS = ("can_pin_messages", "can_manage_topics", "can_manage_tags")
# The sender Telegram shows for a message an anonymous administrator posts as the group.
ANONYMOUS_ADMIN = {
    "id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot",
}  # fmt: skip
DM_WINDOW = 300.0  # seconds a join request's user_chat_id lets a bot write first
QUERY_WINDOW = 10.0  # seconds a guard bot has to answer a join request query
JOIN_REQUEST_QUEUE = 6 << 33  # the server queues join requests per user, apart from messages
STALE_QUERY = "query is too old and response timeout expired or query ID is invalid"
FOREVER_BELOW, FOREVER_ABOVE = 30, 366 * 86400


class Refused(Exception):
    """Telegram refused what a person tried in the app (join, write, leave); the message is
    the server's reason, e.g. USER_BANNED_IN_CHANNEL or CHAT_WRITE_FORBIDDEN."""


def rights_for(kind: str) -> tuple[str, ...]:
    return RIGHTS + (CHANNEL_RIGHTS if kind == "channel" else GROUP_RIGHTS)


def default_rights(kind: str) -> frozenset[str]:
    """What the app ticks when a bot is made an administrator: all but adding administrators."""
    return frozenset(rights_for(kind)) - {"can_promote_members"}


def checked_rights(kind: str, rights: frozenset[str]) -> frozenset[str]:
    unknown = rights - set(rights_for(kind))
    if unknown:
        raise ValueError(f"no such administrator rights in a {kind}: {sorted(unknown)}")
    # can_manage_chat is "implied by any other administrator privilege".
    return rights | {"can_manage_chat"} if rights else rights


def until(value: int | None, now: int) -> int:
    """The server's reading of until_date: under 30 s or over 366 days away means forever (0)."""
    if not value or not FOREVER_BELOW <= value - now <= FOREVER_ABOVE:
        return 0
    return value


@dataclass(frozen=True)
class Member:
    """One account's standing in one chat; replaced, never changed, so an update can show the
    old standing beside the new."""

    user_id: int
    status: str = "left"  # creator, administrator, member, restricted, left, kicked
    rights: frozenset[str] = frozenset()
    is_anonymous: bool = False
    promoted_by: int | None = None
    custom_title: str | None = None
    permissions: frozenset[str] = frozenset()  # restricted: what is still allowed
    is_member: bool = False  # restricted: whether still in the chat
    until_date: int = 0  # restricted or kicked: when it ends; 0 is forever
    via_link: str | None = None  # the invite link that let them in, for its member_limit

    @property
    def in_chat(self) -> bool:
        if self.status == "restricted":
            return self.is_member
        return self.status in ("creator", "administrator", "member")

    @property
    def is_admin(self) -> bool:
        return self.status in ("creator", "administrator")

    def can(self, right: str) -> bool:
        return self.status == "creator" or (self.status == "administrator" and right in self.rights)

    def settled(self, now: int) -> Member:
        """The standing once a timed restriction or ban has run out."""
        if not self.until_date or now < self.until_date:
            return self
        if self.status == "restricted":
            kept = self.via_link if self.is_member else None
            return Member(self.user_id, "member" if self.is_member else "left", via_link=kept)
        if self.status == "kicked":
            return Member(self.user_id)
        return self


@dataclass(eq=False)
class InviteLink:
    url: str
    chat_id: int
    creator_id: int
    is_primary: bool = False
    creates_join_request: bool = False
    name: str | None = None
    expire_date: int | None = None
    member_limit: int | None = None
    is_revoked: bool = False
    joined: int = 0  # members in the chat now who came through this link
    pending: int = 0

    def usable(self, now: int) -> bool:
        expired = self.expire_date is not None and now >= self.expire_date
        full = self.member_limit is not None and self.joined >= self.member_limit
        return not (self.is_revoked or expired or full)

    def view(self, world: World, viewer_id: int) -> dict[str, Any]:
        """The link as one bot sees it: another admin's link has its second half hidden."""
        shown = self.url if self.creator_id == viewer_id else f"{self.url[:17]}..."
        return build(
            "ChatInviteLink",
            invite_link=shown,
            creator=world.user_dict(self.creator_id),
            creates_join_request=self.creates_join_request,
            is_primary=self.is_primary,
            is_revoked=self.is_revoked,
            name=self.name,
            expire_date=self.expire_date,
            member_limit=self.member_limit,
            pending_join_request_count=self.pending,
        )


@dataclass(eq=False)
class JoinQuery:
    """The question a guard bot must answer within QUERY_WINDOW seconds."""

    id: str
    bot_id: int
    created: float
    answer: str | None = None
    answered_at: float | None = None

    @property
    def delay(self) -> float | None:
        """Seconds from the request to the guard bot's answer."""
        return None if self.answered_at is None else self.answered_at - self.created

    def open(self, now: float) -> bool:
        return self.answer is None and now - self.created <= QUERY_WINDOW


@dataclass(eq=False)
class JoinRequest:
    chat_id: int
    user_id: int
    date: float
    link: InviteLink | None = None
    bio: str | None = None
    state: Literal["pending", "approved", "declined"] = "pending"
    processed_at: float | None = None
    processed_by: int | None = None
    query: JoinQuery | None = None

    def opens_private_chat(self, now: float) -> bool:
        return self.state == "pending" and now - self.date < DM_WINDOW


@dataclass(eq=False)
class Group:
    """A group, supergroup or channel, the same for every bot in it."""

    chat: ChatState
    owner_id: int
    join_by_request: bool = False
    permissions: frozenset[str] = frozenset(PERMISSIONS)  # what members may do by default
    guard_bot_id: int | None = None
    members: dict[int, Member] = field(default_factory=dict)
    bot_ids: set[int] = field(default_factory=set)  # bots that were ever in it
    admin_ids: dict[int, None] = field(default_factory=dict)  # in promotion order
    member_count: int = 0
    links: dict[str, InviteLink] = field(default_factory=dict)
    primary: InviteLink | None = None
    requests: dict[int, JoinRequest] = field(default_factory=dict)  # pending, by user
    asked: dict[int, JoinRequest] = field(default_factory=dict)  # everyone's latest request

    @property
    def id(self) -> int:
        return self.chat.id

    @property
    def kind(self) -> str:
        return self.chat.type

    @property
    def label(self) -> str:
        """The chat's kind as the server's error texts name it."""
        return self.kind

    def member(self, user_id: int, now: int) -> Member:
        found = self.members.get(user_id)
        if found is None:
            return Member(user_id)
        current = found.settled(now)
        if current is not found:
            self.members[user_id] = current
        return current

    def may_write(self, user_id: int, now: int) -> bool:
        """Whether the server takes a text message from this account."""
        member = self.member(user_id, now)
        if member.is_admin:
            return self.kind != "channel" or member.can("can_post_messages")
        if self.kind == "channel" or not member.in_chat:
            return False
        allowed = self.permissions
        if member.status == "restricted":
            allowed = allowed & member.permissions
        return "can_send_messages" in allowed


def presence(world: World, group: Group, bot: BotState) -> Member:
    """The bot's own standing; a bot outside the chat is turned away with 403."""
    me = group.member(bot.id, world.now())
    if me.status == "kicked":
        raise ApiError.make(403, f"bot was kicked from the {group.label} chat")
    if not me.in_chat:
        raise ApiError.make(403, f"bot is not a member of the {group.label} chat")
    return me


def create(
    world: World,
    chat_id: int,
    kind: Kind,
    title: str,
    owner: Person,
    *,
    username: str | None = None,
    join_by_request: bool = False,
) -> Group:
    chat = ChatState(id=chat_id, type=kind, title=title, username=username)
    group = Group(chat, owner.id, join_by_request=join_by_request)
    group.members[owner.id] = Member(owner.id, "creator")
    group.admin_ids[owner.id] = None
    group.member_count = 1
    group.primary = new_link(world, group, owner.id, primary=True)
    world.groups[chat_id] = group
    if username:
        world.usernames[username.lower()] = chat_id
    return group


def new_link(
    world: World, group: Group, creator_id: int, *, primary: bool = False, **settings: Any
) -> InviteLink:
    url = f"https://t.me/+{secrets.token_urlsafe(12)}"
    creates = settings.pop("creates_join_request", group.join_by_request if primary else False)
    link = InviteLink(url, group.id, creator_id, primary, creates, **settings)
    world.links[url] = group.links[url] = link
    return link


def set_join_by_request(group: Group, on: bool) -> None:
    """The chat's "approve new members" switch; the primary link follows it."""
    group.join_by_request = on
    if group.primary is not None:
        group.primary.creates_join_request = on


# --- what bots see --------------------------------------------------------------------------


def deliver(bot: BotState, kind: str, body: dict[str, Any], queue: int, *people: int) -> None:
    bot.known.update(people)
    bot.enqueue(kind, body, queue, people[0] if people else 0)


def member_view(world: World, group: Group, member: Member, viewer_id: int) -> dict[str, Any]:
    """A ChatMember as the bot `viewer_id` gets it."""
    kind = MEMBER_KINDS[member.status]
    user = world.user_dict(member.user_id)
    if member.status == "creator":
        return build(
            kind,
            status="creator",
            user=user,
            is_anonymous=member.is_anonymous,
            custom_title=member.custom_title,
        )
    if member.status == "administrator":
        # The server names every right that applies to the chat's kind, false ones too.
        rights: dict[str, Any] = {n: n in member.rights for n in rights_for(group.kind)}
        return build(
            kind,
            keep=tuple(rights),
            status="administrator",
            user=user,
            can_be_edited=member.promoted_by == viewer_id,
            is_anonymous=member.is_anonymous,
            custom_title=member.custom_title,
            **rights,
        )
    if member.status == "restricted":
        permissions: dict[str, Any] = {n: n in member.permissions for n in PERMISSIONS}
        return build(
            kind,
            status="restricted",
            user=user,
            is_member=member.is_member,
            until_date=member.until_date,
            **permissions,
        )
    if member.status == "kicked":
        return build(kind, status="kicked", user=user, until_date=member.until_date)
    return build(kind, status=member.status, user=user)


def permissions_view(allowed: frozenset[str]) -> dict[str, Any]:
    return build("ChatPermissions", keep=PERMISSIONS, **{n: n in allowed for n in PERMISSIONS})


def parse_permissions(value: Any, independent: bool) -> frozenset[str]:
    """ChatPermissions as the server reads them: unless set independently, other messages and
    previews imply media and text, media and polls imply text."""
    if value is None:
        return frozenset(UNNAMED_ALLOWED)
    if not isinstance(value, dict):
        raise bad_request("Object expected as permissions")
    for name, flag in value.items():
        if not isinstance(flag, bool):
            raise bad_request(
                f'Can\'t parse chat permissions: Field "{name}" must be of type Boolean'
            )
    flags = {name: bool(value.get(name, False)) for name in PERMISSIONS}
    for name in UNNAMED_ALLOWED:
        flags[name] = bool(value.get(name, True))
    if "can_manage_topics" not in value:
        flags["can_manage_topics"] = flags["can_pin_messages"]
    if not any(name in value for name in MEDIA):
        legacy = bool(value.get("can_send_media_messages", False))
        flags.update(dict.fromkeys(MEDIA, legacy))
        if legacy and not independent:
            flags["can_send_messages"] = True
    if not independent:
        if flags["can_send_other_messages"] or flags["can_add_web_page_previews"]:
            flags.update(dict.fromkeys((*MEDIA, "can_send_messages"), True))
        if flags["can_send_polls"]:
            flags["can_send_messages"] = True
    return frozenset(name for name, on in flags.items() if on)


def full_info(world: World, group: Group, bot: BotState) -> dict[str, Any]:
    """getChat's answer for a group or channel."""
    me = group.member(bot.id, world.now())
    guard = group.guard_bot_id if me.is_admin else None
    primary = group.primary.url if group.primary and me.can("can_invite_users") else None
    gifts = build(
        "AcceptedGiftTypes",
        unlimited_gifts=False,
        limited_gifts=False,
        unique_gifts=False,
        premium_subscription=False,
        gifts_from_channels=False,
    )
    return build(
        "ChatFullInfo",
        id=group.id,
        type=group.kind,
        title=group.chat.title,
        username=group.chat.username,
        accent_color_id=0,
        max_reaction_count=11,
        join_by_request=group.join_by_request,
        invite_link=primary,
        permissions=None if group.kind == "channel" else permissions_view(group.permissions),
        accepted_gift_types=gifts,
        guard_bot=world.user_dict(guard) if guard else None,
    )


# --- changes ----------------------------------------------------------------------------------


def _count_link(world: World, url: str | None, step: int) -> None:
    link = world.links.get(url) if url else None
    if link is not None:
        link.joined += step


def change(
    world: World,
    group: Group,
    new: Member,
    actor_id: int,
    *,
    link: InviteLink | None = None,
    via_request: bool = False,
    service_from: int | None = None,
) -> Member:
    """Give `new.user_id` the standing `new` because of `actor_id`; tell the bots (my_chat_member
    to the bot concerned, chat_member to the administrator bots) and post the service message
    a group shows. Returns the old standing."""
    now = world.now()
    user_id = new.user_id
    old = group.member(user_id, now)
    if new == old:
        return old
    group.members[user_id] = new
    if old.in_chat != new.in_chat:
        group.member_count += 1 if new.in_chat else -1
    if old.in_chat and old.via_link and not (new.in_chat and new.via_link == old.via_link):
        _count_link(world, old.via_link, -1)
    if new.in_chat and new.via_link and not (old.in_chat and old.via_link == new.via_link):
        _count_link(world, new.via_link, 1)
    if new.is_admin:
        group.admin_ids[user_id] = None
    else:
        group.admin_ids.pop(user_id, None)
    concerned = world.bots.get(user_id)
    if concerned is not None:
        group.bot_ids.add(user_id)

    def update(viewer_id: int) -> dict[str, Any]:
        return build(
            "ChatMemberUpdated",
            chat=group.chat.as_chat(),
            from_=world.user_dict(actor_id),
            date=now,
            old_chat_member=member_view(world, group, old, viewer_id),
            new_chat_member=member_view(world, group, new, viewer_id),
            invite_link=link.view(world, viewer_id) if link else None,
            via_join_request=via_request,
        )

    if concerned is not None:
        deliver(concerned, "my_chat_member", update(user_id), group.id, actor_id)
    for bot_id in sorted(group.bot_ids):
        if bot_id != user_id and group.member(bot_id, now).is_admin:
            deliver(world.bots[bot_id], "chat_member", update(bot_id), group.id, user_id, actor_id)
    world.emit("member", None, group.chat, user_id=user_id, old=old.status, new=new.status)
    if group.kind != "channel" and old.in_chat != new.in_chat:
        who = world.user_dict(user_id)
        author = actor_id if service_from is None else service_from
        if new.in_chat:
            post(world, group, author, new_chat_members=[who])
        else:
            post(world, group, author, left_chat_member=who)
    return old


def _addressed(bot: BotState, payload: dict[str, Any]) -> bool:
    """What a bot in privacy mode still gets: its commands and replies to its messages."""
    reply = payload.get("reply_to_message") or {}
    if (reply.get("from") or {}).get("id") == bot.id:
        return True
    entities = payload.get("entities") or []
    if not entities or entities[0]["type"] != "bot_command" or entities[0]["offset"] != 0:
        return False
    command = str(payload.get("text", ""))[: entities[0]["length"]]
    _, _, name = command.partition("@")
    return not name or name.lower() == bot.username.lower()


def post(
    world: World,
    group: Group,
    author_id: int | None,
    *,
    anonymous: bool = False,
    **fields: Any,
) -> ChatMessage:
    """A new message in the chat from a person or a bot (`author_id`), or from the chat itself:
    a channel's post, or an administrator posting anonymously as the group."""
    chat = group.chat
    from_bot = author_id in world.bots
    sender: dict[str, Any] | None = None
    signature = None
    if group.kind != "channel" and anonymous:
        sender = dict(ANONYMOUS_ADMIN)
        if author_id is not None:
            signature = group.member(author_id, world.now()).custom_title
    elif group.kind != "channel" and author_id is not None:
        sender = world.user_dict(author_id)
    as_chat = group.kind == "channel" or anonymous
    chat.last_message_id += 1
    payload = build(
        "Message",
        message_id=chat.last_message_id,
        from_=sender,
        sender_chat=chat.as_chat() if as_chat else None,
        chat=chat.as_chat(),
        date=world.now(),
        author_signature=signature,
        **fields,
    )
    message = ChatMessage(chat.last_message_id, chat.id, from_bot, payload, author_id=author_id)
    chat.messages[message.message_id] = message
    world.emit(
        "message", None, chat, message_id=message.message_id, from_bot=from_bot, message=payload
    )
    _fan_out(world, group, message, None if as_chat else author_id)
    return message


def _fan_out(world: World, group: Group, message: ChatMessage, author_id: int | None) -> None:
    """Bots never see what bots write, their own service messages included, but see the
    service messages of a bot's action; administrators see every message, other bots
    (privacy mode) only service messages, their commands and replies to them."""
    kind = "channel_post" if group.kind == "channel" else "message"
    payload = message.payload
    service = "new_chat_members" in payload or "left_chat_member" in payload
    if message.from_bot and not service:
        return
    now = world.now()
    people = () if author_id is None or message.from_bot else (author_id,)
    for bot_id in sorted(group.bot_ids):
        member = group.member(bot_id, now)
        if bot_id == author_id or not member.in_chat:
            continue
        bot = world.bots[bot_id]
        if member.is_admin or service or _addressed(bot, payload):
            deliver(bot, kind, copy.deepcopy(payload), group.id, *people)


def admit(
    world: World,
    group: Group,
    user_id: int,
    actor_id: int,
    *,
    link: InviteLink | None = None,
    via_request: bool = False,
    service_from: int | None = None,
) -> None:
    """Into the chat; a restricted person stays restricted, as Telegram keeps restrictions."""
    old = group.member(user_id, world.now())
    via = link.url if link else None
    if old.status == "restricted":
        new = Member(
            user_id,
            "restricted",
            permissions=old.permissions,
            is_member=True,
            until_date=old.until_date,
            via_link=via,
        )
    else:
        new = Member(user_id, "member", via_link=via)
    change(
        world, group, new, actor_id, link=link, via_request=via_request, service_from=service_from
    )


def entrance(
    world: World, group: Group | None, url: str | None
) -> tuple[Group, InviteLink | None, bool]:
    """Where a person comes in: a chat (its public username, or else its primary link) or an
    invite link; and whether that way asks the administrators first."""
    if group is not None:
        if group.chat.username is not None:
            return group, None, group.join_by_request
        link = group.primary
    else:
        link = world.links.get(url or "")
        if link is None:
            raise Refused("INVITE_HASH_INVALID")
        group = world.groups[link.chat_id]
    assert link is not None
    if not link.usable(world.now()):
        raise Refused("INVITE_HASH_EXPIRED")
    return group, link, link.creates_join_request


def join(world: World, group: Group, person: Person, link: InviteLink | None) -> None:
    member = group.member(person.id, world.now())
    if member.in_chat:
        raise Refused("USER_ALREADY_PARTICIPANT")
    if member.status == "kicked":
        raise Refused("USER_BANNED_IN_CHANNEL")
    admit(world, group, person.id, person.id, link=link)


def leave(world: World, group: Group, person: Person) -> None:
    member = group.member(person.id, world.now())
    if not member.in_chat:
        raise Refused("USER_NOT_PARTICIPANT")
    if member.status == "creator":
        raise ValueError("the owner stays; give the chat away first")
    if member.status == "restricted":
        new = Member(
            person.id, "restricted", permissions=member.permissions, until_date=member.until_date
        )
    else:
        new = Member(person.id)
    change(world, group, new, person.id)


def ask(
    world: World, group: Group, person: Person, link: InviteLink | None, bio: str | None = None
) -> JoinRequest:
    """A join request: to every bot that may approve it, and with a query_id to the guard bot."""
    now = world.clock()
    member = group.member(person.id, int(now))
    if member.in_chat:
        raise Refused("USER_ALREADY_PARTICIPANT")
    if member.status == "kicked":
        raise Refused("USER_BANNED_IN_CHANNEL")
    pending = group.requests.get(person.id)
    if pending is not None:
        return pending
    request = JoinRequest(group.id, person.id, now, link, bio)
    group.requests[person.id] = request
    group.asked[person.id] = request
    if link is not None:
        link.pending += 1
    guard = group.guard_bot_id
    if guard is not None and group.member(guard, int(now)).in_chat:
        request.query = JoinQuery(str(secrets.randbits(63)), guard, now)
        world.join_queries[request.query.id] = request
    else:
        guard = None  # a guard bot removed from the chat is asked nothing
    for bot_id in sorted(group.bot_ids):
        if bot_id != guard and not group.member(bot_id, int(now)).can("can_invite_users"):
            continue
        bot = world.bots[bot_id]
        body = build(
            "ChatJoinRequest",
            chat=group.chat.as_chat(),
            from_=person.as_user(),
            user_chat_id=person.id,
            date=int(now),
            bio=bio,
            invite_link=link.view(world, bot_id) if link else None,
            query_id=request.query.id if request.query and bot_id == guard else None,
        )
        bot.dm_grants[person.id] = request
        deliver(bot, "chat_join_request", body, person.id + JOIN_REQUEST_QUEUE, person.id)
    world.emit("join_request", None, group.chat, user_id=person.id)
    return request


def settle(world: World, group: Group, request: JoinRequest, approve: bool, actor_id: int) -> None:
    request.state = "approved" if approve else "declined"
    request.processed_at = world.clock()
    request.processed_by = actor_id
    group.requests.pop(request.user_id, None)
    if request.link is not None:
        request.link.pending -= 1
    world.emit("join_request_settled", None, group.chat, user_id=request.user_id, approved=approve)
    if approve and not group.member(request.user_id, world.now()).in_chat:
        # A request through a link names the link; a direct one says via_join_request.
        admit(
            world,
            group,
            request.user_id,
            actor_id,
            link=request.link,
            via_request=request.link is None,
            service_from=request.user_id,
        )


def answer_query(world: World, bot: BotState, query_id: str, result: str) -> None:
    request = world.join_queries.get(query_id)
    now = world.clock()
    query = request.query if request is not None else None
    if (
        request is None
        or query is None
        or query.bot_id != bot.id
        or request.state != "pending"
        or not query.open(now)
    ):
        raise bad_request(STALE_QUERY)
    query.answer = result
    query.answered_at = now
    if result != "queue":  # "queue" leaves the request to the administrators
        settle(world, world.groups[request.chat_id], request, result == "approve", bot.id)
