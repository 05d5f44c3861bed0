"""Bot API methods for groups and channels: members, join requests and invite links, with the
official server's checks in its order (the chat, the bot's presence, the chat's kind, the bot's
rights, the target) and its error texts."""

from __future__ import annotations

from typing import Any

from .groups import (
    PERMISSIONS,
    Group,
    Member,
    answer_query,
    change,
    full_info,
    member_view,
    new_link,
    parse_permissions,
    presence,
    settle,
    until,
)
from .methods import method
from .objects import build
from .state import BotState, World
from .wire import ApiError, Params, bad_request

ONLY_SUPERGROUPS = "method is available only for supergroups"
SUPERGROUPS_AND_CHANNELS = "method is available for supergroup and channel chats only"
RESTRICT_RIGHTS = "not enough rights to restrict/unrestrict chat member"
JOIN_REQUEST_RIGHTS = "not enough rights to manage chat join requests"
INVITE_RIGHTS = "not enough rights to manage chat invite link"
IS_ADMIN = "user is an administrator of the chat"
LIMIT_WITH_APPROVAL = "member limit can't be specified for links requiring administrator approval"
RESULTS = frozenset({"approve", "decline", "queue"})
EVERYTHING = frozenset(PERMISSIONS)


def _chat(world: World, bot: BotState, p: Params, private_error: str) -> Group:
    """The group or channel named by chat_id; a private chat gets the method's own refusal."""
    chat = world.chat(bot, p.raw.get("chat_id"))
    group = world.groups.get(chat.id)
    if group is None:
        raise bad_request(private_error)
    return group


def _user_id(world: World, p: Params) -> int:
    user_id = p.integer("user_id")
    if user_id is None or user_id <= 0:
        raise bad_request("invalid user_id specified")
    return user_id


def _known_user(world: World, p: Params) -> int:
    user_id = _user_id(world, p)
    if user_id not in world.people and user_id not in world.bots:
        raise bad_request("user not found")
    return user_id


def _editable(group: Group, target: Member, bot: BotState) -> None:
    """Owners and administrators the bot did not promote are out of its reach."""
    if target.status == "administrator" and target.promoted_by != bot.id:
        raise bad_request(IS_ADMIN)


# --- reading ----------------------------------------------------------------------------------


@method("getChat")
async def get_chat(world: World, bot: BotState, p: Params) -> Any:
    chat = world.chat(bot, p.raw.get("chat_id"))
    group = world.groups.get(chat.id)
    if group is not None:
        return full_info(world, group, bot)
    peer = chat.peer
    assert peer is not None
    gifts = build(
        "AcceptedGiftTypes",
        unlimited_gifts=True,
        limited_gifts=True,
        unique_gifts=True,
        premium_subscription=True,
        gifts_from_channels=True,
    )
    return build(
        "ChatFullInfo",
        id=chat.id,
        type="private",
        username=peer.username,
        first_name=peer.first_name,
        last_name=peer.last_name,
        accent_color_id=0,
        max_reaction_count=11,
        accepted_gift_types=gifts,
    )


@method("getChatMember")
async def get_chat_member(world: World, bot: BotState, p: Params) -> Any:
    chat = world.chat(bot, p.raw.get("chat_id"))
    user_id = _known_user(world, p)
    group = world.groups.get(chat.id)
    if group is None:
        status = "member" if user_id in (chat.id, bot.id) else "left"
        return build(
            "ChatMemberMember" if status == "member" else "ChatMemberLeft",
            status=status,
            user=world.user_dict(user_id),
        )
    if user_id != bot.id:
        presence(world, group, bot)
    return member_view(world, group, group.member(user_id, world.now()), bot.id)


@method("getChatAdministrators")
async def get_chat_administrators(world: World, bot: BotState, p: Params) -> Any:
    group = _chat(world, bot, p, "there are no administrators in the private chat")
    presence(world, group, bot)
    now = world.now()
    # Other bots are left out unless asked for, as the method says.
    wanted = [
        user_id
        for user_id in list(group.admin_ids)
        if user_id == bot.id or user_id not in world.bots or p.flag("return_bots")
    ]
    return [member_view(world, group, group.member(uid, now), bot.id) for uid in wanted]


@method("getChatMemberCount")
async def get_chat_member_count(world: World, bot: BotState, p: Params) -> Any:
    chat = world.chat(bot, p.raw.get("chat_id"))
    group = world.groups.get(chat.id)
    if group is None:
        return 2
    presence(world, group, bot)
    return group.member_count


# --- members ----------------------------------------------------------------------------------


@method("restrictChatMember")
async def restrict_chat_member(world: World, bot: BotState, p: Params) -> Any:
    group = _chat(world, bot, p, ONLY_SUPERGROUPS)
    me = presence(world, group, bot)
    if group.kind != "supergroup":
        raise bad_request(ONLY_SUPERGROUPS)
    user_id = _known_user(world, p)
    allowed = parse_permissions(
        p.decoded("permissions"), p.flag("use_independent_chat_permissions")
    )
    if not me.can("can_restrict_members"):
        raise bad_request(RESTRICT_RIGHTS)
    now = world.now()
    target = group.member(user_id, now)
    if target.status == "creator":
        raise bad_request(IS_ADMIN)
    _editable(group, target, bot)
    kept = target.via_link if target.in_chat else None
    if allowed >= EVERYTHING:  # "pass True for all permissions to lift restrictions"
        new = Member(user_id, "member" if target.in_chat else "left", via_link=kept)
    else:
        new = Member(
            user_id,
            "restricted",
            permissions=allowed,
            is_member=target.in_chat,
            until_date=until(p.integer("until_date"), now),
            via_link=kept,
        )
    change(world, group, new, bot.id)
    return True


@method("banChatMember")
async def ban_chat_member(world: World, bot: BotState, p: Params) -> Any:
    group = _chat(world, bot, p, "can't ban members in private chats")
    me = presence(world, group, bot)
    user_id = _known_user(world, p)
    if not me.can("can_restrict_members"):
        raise bad_request(RESTRICT_RIGHTS)
    now = world.now()
    target = group.member(user_id, now)
    if target.status == "creator":
        raise bad_request("can't remove chat owner")
    _editable(group, target, bot)
    if group.kind == "group":
        # A basic group has no ban list: the person is only removed.
        new = Member(user_id)
    else:
        new = Member(user_id, "kicked", until_date=until(p.integer("until_date"), now))
    change(world, group, new, bot.id)
    return True


@method("unbanChatMember")
async def unban_chat_member(world: World, bot: BotState, p: Params) -> Any:
    group = _chat(world, bot, p, SUPERGROUPS_AND_CHANNELS)
    me = presence(world, group, bot)
    if group.kind == "group":
        raise bad_request(SUPERGROUPS_AND_CHANNELS)
    user_id = _user_id(world, p)
    now = world.now()
    target = group.member(user_id, now)
    if p.flag("only_if_banned") and target.status != "kicked":
        return True  # answered before any rights are checked, as the server does
    if user_id not in world.people and user_id not in world.bots:
        raise bad_request("user not found")
    if not me.can("can_restrict_members"):
        raise bad_request(RESTRICT_RIGHTS)
    if target.status == "creator":
        raise bad_request("can't remove chat owner")
    _editable(group, target, bot)
    # Without only_if_banned the person is not in the chat afterwards, even a member.
    change(world, group, Member(user_id), bot.id)
    return True


@method("setChatPermissions")
async def set_chat_permissions(world: World, bot: BotState, p: Params) -> Any:
    group = _chat(world, bot, p, "method is not available for private chats")
    me = presence(world, group, bot)
    if group.kind == "channel":
        raise bad_request("method is not available for channel chats")
    allowed = parse_permissions(
        p.decoded("permissions"), p.flag("use_independent_chat_permissions")
    )
    if not me.can("can_restrict_members"):
        raise bad_request("not enough rights to change chat permissions")
    group.permissions = allowed
    return True


@method("leaveChat")
async def leave_chat(world: World, bot: BotState, p: Params) -> Any:
    group = _chat(world, bot, p, "chat not found")
    presence(world, group, bot)
    change(world, group, Member(bot.id), bot.id)
    return True


# --- join requests ----------------------------------------------------------------------------


def _join_requests(world: World, bot: BotState, p: Params) -> tuple[Group, int]:
    group = _chat(world, bot, p, JOIN_REQUEST_RIGHTS)
    me = presence(world, group, bot)
    user_id = _user_id(world, p)
    if not me.can("can_invite_users"):
        raise bad_request(JOIN_REQUEST_RIGHTS)
    return group, user_id


def _no_request(group: Group, user_id: int) -> ApiError:
    """A request that was handled or withdrawn is missing; one never made names a stranger."""
    return bad_request("HIDE_REQUESTER_MISSING" if user_id in group.asked else "USER_ID_INVALID")


@method("approveChatJoinRequest")
async def approve_chat_join_request(world: World, bot: BotState, p: Params) -> Any:
    group, user_id = _join_requests(world, bot, p)
    if group.member(user_id, world.now()).in_chat:
        raise bad_request("USER_ALREADY_PARTICIPANT")
    request = group.requests.get(user_id)
    if request is None:
        raise _no_request(group, user_id)
    settle(world, group, request, True, bot.id)
    return True


@method("declineChatJoinRequest")
async def decline_chat_join_request(world: World, bot: BotState, p: Params) -> Any:
    group, user_id = _join_requests(world, bot, p)
    request = group.requests.get(user_id)
    if request is None:
        raise _no_request(group, user_id)
    settle(world, group, request, False, bot.id)
    return True


@method("answerChatJoinRequestQuery")
async def answer_chat_join_request_query(world: World, bot: BotState, p: Params) -> Any:
    query_id = p.string("chat_join_request_query_id", required=True) or ""
    result = p.string("result", required=True) or ""
    if result not in RESULTS:
        raise bad_request("invalid result specified")
    answer_query(world, bot, query_id, result)
    return True


# --- invite links -----------------------------------------------------------------------------


def _links(world: World, bot: BotState, p: Params) -> Group:
    group = _chat(world, bot, p, INVITE_RIGHTS)
    me = presence(world, group, bot)
    if not me.can("can_invite_users"):
        raise bad_request(INVITE_RIGHTS)
    return group


def _link_settings(world: World, p: Params) -> dict[str, Any]:
    limit = p.integer("member_limit")
    creates = p.flag("creates_join_request")
    if creates and limit:
        raise bad_request(LIMIT_WITH_APPROVAL)
    if limit is not None and not 1 <= limit <= 99999:
        raise bad_request("USAGE_LIMIT_INVALID")
    name = p.string("name")
    return {
        "name": name[:32] if name else None,  # the server cuts a long name, it does not refuse
        "expire_date": p.integer("expire_date") or None,
        "member_limit": limit or None,
        "creates_join_request": creates,
    }


def _own_link(world: World, group: Group, bot: BotState, p: Params) -> Any:
    url = p.string("invite_link", required=True) or ""
    link = group.links.get(url)
    if link is None:
        raise bad_request("INVITE_HASH_EXPIRED")
    if link.creator_id != bot.id:
        raise bad_request("CHAT_ADMIN_REQUIRED")
    return link


@method("createChatInviteLink")
async def create_chat_invite_link(world: World, bot: BotState, p: Params) -> Any:
    group = _links(world, bot, p)
    link = new_link(world, group, bot.id, **_link_settings(world, p))
    return link.view(world, bot.id)


@method("editChatInviteLink")
async def edit_chat_invite_link(world: World, bot: BotState, p: Params) -> Any:
    group = _links(world, bot, p)
    link = _own_link(world, group, bot, p)
    if link.is_primary or link.is_revoked:
        raise bad_request("CHAT_ADMIN_REQUIRED" if link.is_primary else "INVITE_HASH_EXPIRED")
    # Every setting is replaced; one left out is cleared, as the server does.
    for name, value in _link_settings(world, p).items():
        setattr(link, name, value)
    return link.view(world, bot.id)


@method("revokeChatInviteLink")
async def revoke_chat_invite_link(world: World, bot: BotState, p: Params) -> Any:
    group = _links(world, bot, p)
    link = _own_link(world, group, bot, p)
    link.is_revoked = True
    if link is group.primary:
        group.primary = new_link(world, group, bot.id, primary=True)
    return link.view(world, bot.id)


@method("exportChatInviteLink")
async def export_chat_invite_link(world: World, bot: BotState, p: Params) -> Any:
    group = _links(world, bot, p)
    if group.primary is not None:
        group.primary.is_revoked = True
    group.primary = new_link(world, group, bot.id, primary=True)
    return group.primary.url
