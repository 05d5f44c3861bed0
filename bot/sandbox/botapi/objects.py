"""Bot API objects, built from one field table so every shape follows the server's omission rule.

The official server leaves out optional fields that are empty or false; required fields are
always present, even when false or zero. New object kinds (chat members, invite links, join
requests) are added as rows here rather than as hand-written dicts.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

REQ, OPT = True, False

FIELDS: dict[str, dict[str, bool]] = {
    "User": {
        "id": REQ, "is_bot": REQ, "first_name": REQ, "last_name": OPT, "username": OPT,
        "language_code": OPT, "is_premium": OPT, "can_join_groups": OPT,
        "can_read_all_group_messages": OPT, "supports_inline_queries": OPT,
        "can_connect_to_business": OPT, "has_main_web_app": OPT,
        "supports_join_request_queries": OPT,
    },
    "Chat": {
        "id": REQ, "type": REQ, "title": OPT, "username": OPT, "first_name": OPT, "last_name": OPT,
        "is_forum": OPT,
    },
    "ChatFullInfo": {
        "id": REQ, "type": REQ, "title": OPT, "username": OPT, "first_name": OPT, "last_name": OPT,
        "is_forum": OPT, "accent_color_id": REQ, "max_reaction_count": REQ, "join_by_request": OPT,
        "invite_link": OPT, "permissions": OPT, "accepted_gift_types": REQ, "guard_bot": OPT,
    },
    "AcceptedGiftTypes": {
        "unlimited_gifts": REQ, "limited_gifts": REQ, "unique_gifts": REQ,
        "premium_subscription": REQ, "gifts_from_channels": REQ,
    },
    "Message": {
        "message_id": REQ, "from": OPT, "sender_chat": OPT, "date": REQ, "chat": REQ,
        "reply_to_message": OPT, "edit_date": OPT, "has_protected_content": OPT, "text": OPT,
        "entities": OPT, "caption": OPT, "caption_entities": OPT, "photo": OPT, "sticker": OPT,
        "contact": OPT, "new_chat_members": OPT, "left_chat_member": OPT, "author_signature": OPT,
        "chat_shared": OPT, "reply_markup": OPT,
    },
    "ChatShared": {"request_id": REQ, "chat_id": REQ, "title": OPT, "username": OPT},
    "MessageEntity": {"type": REQ, "offset": REQ, "length": REQ, "url": OPT, "language": OPT},
    "Contact": {
        "phone_number": REQ, "first_name": REQ, "last_name": OPT, "user_id": OPT, "vcard": OPT,
    },
    "PhotoSize": {
        "file_id": REQ, "file_unique_id": REQ, "width": REQ, "height": REQ, "file_size": OPT,
    },
    "Sticker": {
        "file_id": REQ, "file_unique_id": REQ, "type": REQ, "width": REQ, "height": REQ,
        "is_animated": REQ, "is_video": REQ, "emoji": OPT, "set_name": OPT,
    },
    "CallbackQuery": {
        "id": REQ, "from": REQ, "message": OPT, "inline_message_id": OPT, "chat_instance": REQ,
        "data": OPT, "game_short_name": OPT,
    },
    "WebhookInfo": {
        "url": REQ, "has_custom_certificate": REQ, "pending_update_count": REQ, "ip_address": OPT,
        "last_error_date": OPT, "last_error_message": OPT, "max_connections": OPT,
        "allowed_updates": OPT,
    },
    "BotCommand": {"command": REQ, "description": REQ},
    "ChatPermissions": {
        "can_send_messages": OPT, "can_send_audios": OPT, "can_send_documents": OPT,
        "can_send_photos": OPT, "can_send_videos": OPT, "can_send_video_notes": OPT,
        "can_send_voice_notes": OPT, "can_send_polls": OPT, "can_send_other_messages": OPT,
        "can_add_web_page_previews": OPT, "can_react_to_messages": OPT, "can_edit_tag": OPT,
        "can_change_info": OPT, "can_invite_users": OPT, "can_pin_messages": OPT,
        "can_manage_topics": OPT,
    },
    "ChatMemberOwner": {"status": REQ, "user": REQ, "is_anonymous": REQ, "custom_title": OPT},
    "ChatMemberAdministrator": {
        "status": REQ, "user": REQ, "can_be_edited": REQ, "is_anonymous": REQ,
        "can_manage_chat": REQ, "can_delete_messages": REQ, "can_manage_video_chats": REQ,
        "can_restrict_members": REQ, "can_promote_members": REQ, "can_change_info": REQ,
        "can_invite_users": REQ, "can_post_stories": REQ, "can_edit_stories": REQ,
        "can_delete_stories": REQ, "can_send_welcome_messages": REQ, "can_post_messages": OPT,
        "can_edit_messages": OPT, "can_pin_messages": OPT, "can_manage_topics": OPT,
        "can_manage_direct_messages": OPT, "can_manage_tags": OPT, "custom_title": OPT,
    },
    "ChatMemberMember": {"status": REQ, "user": REQ, "tag": OPT, "until_date": OPT},
    "ChatMemberRestricted": {
        "status": REQ, "user": REQ, "is_member": REQ, "can_send_messages": REQ,
        "can_send_audios": REQ, "can_send_documents": REQ, "can_send_photos": REQ,
        "can_send_videos": REQ, "can_send_video_notes": REQ, "can_send_voice_notes": REQ,
        "can_send_polls": REQ, "can_send_other_messages": REQ, "can_add_web_page_previews": REQ,
        "can_react_to_messages": REQ, "can_edit_tag": REQ, "can_change_info": REQ,
        "can_invite_users": REQ, "can_pin_messages": REQ, "can_manage_topics": REQ,
        "until_date": REQ, "tag": OPT,
    },
    "ChatMemberLeft": {"status": REQ, "user": REQ},
    "ChatMemberBanned": {"status": REQ, "user": REQ, "until_date": REQ},
    "ChatInviteLink": {
        "invite_link": REQ, "creator": REQ, "creates_join_request": REQ, "is_primary": REQ,
        "is_revoked": REQ, "name": OPT, "expire_date": OPT, "member_limit": OPT,
        "pending_join_request_count": OPT,
    },
    "ChatJoinRequest": {
        "chat": REQ, "from": REQ, "user_chat_id": REQ, "date": REQ, "bio": OPT,
        "invite_link": OPT, "query_id": OPT,
    },
    "ChatMemberUpdated": {
        "chat": REQ, "from": REQ, "date": REQ, "old_chat_member": REQ, "new_chat_member": REQ,
        "invite_link": OPT, "via_join_request": OPT, "via_chat_folder_invite_link": OPT,
    },
}  # fmt: skip
MEMBER_KINDS = {
    "creator": "ChatMemberOwner", "administrator": "ChatMemberAdministrator",
    "member": "ChatMemberMember", "restricted": "ChatMemberRestricted",
    "left": "ChatMemberLeft", "kicked": "ChatMemberBanned",
}  # fmt: skip

UPDATE_KINDS = (
    "message", "edited_message", "channel_post", "edited_channel_post", "callback_query",
    "my_chat_member", "chat_member", "chat_join_request", "message_reaction",
    "message_reaction_count",
)  # fmt: skip
# What getUpdates and webhooks deliver when allowed_updates is empty.
DEFAULT_UPDATES = frozenset(UPDATE_KINDS) - {
    "chat_member", "message_reaction", "message_reaction_count",
}  # fmt: skip


def build(kind: str, /, *, keep: tuple[str, ...] = (), **values: Any) -> dict[str, Any]:
    """Build a `kind` object; `from_` stands for `from`; names in `keep` survive being false."""
    table = FIELDS[kind]
    out: dict[str, Any] = {}
    for raw, value in values.items():
        name = raw.rstrip("_")
        if name not in table:
            raise KeyError(f"{kind} has no field {name!r}")
        # Zero counts as empty too (`0 == False`), as the server leaves out zero dates and ids.
        if table[name] or name in keep or value not in (None, False, "", [], {}):
            out[name] = value
    missing = [name for name, required in table.items() if required and name not in out]
    if missing:
        raise KeyError(f"{kind} lacks required fields {missing}")
    return out


def utf16_len(text: str) -> int:
    """Entity offsets and lengths count UTF-16 code units, not code points."""
    return len(text.encode("utf-16-le")) // 2


_COMMAND = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")


def command_entities(text: str) -> list[dict[str, Any]]:
    return [
        build(
            "MessageEntity",
            type="bot_command",
            offset=utf16_len(text[: m.start()]),
            length=utf16_len(m.group()),
        )
        for m in _COMMAND.finditer(text)
    ]


_HTML_TAGS = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "ins": "underline", "s": "strikethrough", "strike": "strikethrough",
    "del": "strikethrough", "tg-spoiler": "spoiler", "span": "spoiler", "a": "text_link",
    "code": "code", "pre": "pre", "blockquote": "blockquote",
}  # fmt: skip


class EntityParseError(ValueError):
    pass


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text = ""
        self.entities: list[dict[str, Any]] = []
        self._open: list[tuple[str, int, dict[str, str | None]]] = []

    def _where(self) -> str:
        return f"at byte offset {len(self.text.encode())}"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _HTML_TAGS:
            raise EntityParseError(f'Unsupported start tag "{tag}" {self._where()}')
        self._open.append((tag, utf16_len(self.text), dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if not self._open or self._open[-1][0] != tag:
            raise EntityParseError(f'Unmatched end tag {self._where()}, expected "</{tag}>"')
        _, start, attrs = self._open.pop()
        length = utf16_len(self.text) - start
        if length:
            kind = _HTML_TAGS[tag]
            url = attrs.get("href") if kind == "text_link" else None
            self.entities.append(
                build("MessageEntity", type=kind, offset=start, length=length, url=url)
            )

    def handle_data(self, data: str) -> None:
        self.text += data

    def finish(self) -> tuple[str, list[dict[str, Any]]]:
        self.close()
        if self._open:
            raise EntityParseError(
                f'Can\'t find end tag corresponding to start tag "{self._open[-1][0]}"'
            )
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return self.text, self.entities


def parse_text(text: str, parse_mode: str | None) -> tuple[str, list[dict[str, Any]]]:
    """The text as a client shows it and its entities; Markdown modes pass through unparsed."""
    if (parse_mode or "").lower() != "html":
        return text, []
    parser = _HtmlText()
    parser.feed(text)
    return parser.finish()
