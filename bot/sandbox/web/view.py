"""What the page draws, as JSON: accounts, chats and messages the way a Telegram client sees them.

Everything is read from the stand-in's own state, so the page shows exactly what the bot sent:
the text and entities of each message, its inline buttons, whether it was edited or deleted,
and the reply keyboard under the input field.
"""

from __future__ import annotations

from typing import Any

from bot.sandbox.botapi import BotState, ChatMessage, ChatState, Person
from bot.sandbox.botapi.groups import Group
from bot.sandbox.botapi.state import World

# What a Telegram client writes for the service messages a group shows.
_SERVICE = {"new_chat_members": "{} joined the group", "left_chat_member": "{} left the group"}


def chat_key(bot_id: int, chat_id: int) -> str:
    """Chat ids are per bot (a private chat's id is the user's), so the page keys by both."""
    return f"{bot_id}/{chat_id}"


def group_key(chat_id: int) -> str:
    """A group or channel is the same chat for every bot and person in it."""
    return f"chat/{chat_id}"


def person_view(person: Person) -> dict[str, Any]:
    name = " ".join(p for p in (person.first_name, person.last_name) if p)
    return {
        "id": person.id,
        "name": name,
        "first_name": person.first_name,
        "last_name": person.last_name,
        "username": person.username,
        "phone_number": person.phone_number,
        "language_code": person.language_code,
    }


def bot_view(bot: BotState) -> dict[str, Any]:
    return {"id": bot.id, "username": bot.username, "first_name": bot.first_name}


def _button_view(button: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"text": str(button.get("text", ""))}
    if "callback_data" in button:
        out["kind"] = "callback"
    elif "url" in button:
        out["kind"] = "url"
        out["url"] = str(button["url"])
    else:
        # Web apps, logins, games: nothing this product sends, so the page shows them inert.
        out["kind"] = "other"
    return out


def _kind(payload: dict[str, Any]) -> str:
    for kind in ("text", "contact", "sticker", "photo"):
        if kind in payload:
            return kind
    if any(key in payload for key in _SERVICE):
        return "service"
    return "other"


def _name(user: dict[str, Any]) -> str:
    return " ".join(str(p) for p in (user.get("first_name"), user.get("last_name")) if p)


def _service_text(payload: dict[str, Any]) -> str | None:
    for key, template in _SERVICE.items():
        who = payload.get(key)
        if isinstance(who, list):
            return template.format(", ".join(_name(u) for u in who))
        if isinstance(who, dict):
            return template.format(_name(who))
    return None


def message_view(message: ChatMessage) -> dict[str, Any]:
    payload = message.payload
    sender = payload.get("from") or {}
    sender_chat = payload.get("sender_chat")
    out: dict[str, Any] = {
        "id": message.message_id,
        "from_bot": message.from_bot,
        "sender_id": sender.get("id"),
        # Groups show who wrote each message; a channel's posts come from the channel itself.
        "sender_name": str(sender_chat.get("title") or "") if sender_chat else _name(sender),
        "date": payload.get("date"),
        "kind": _kind(payload),
        "text": message.text if message.text is not None else _service_text(payload),
        "entities": payload.get("entities") or payload.get("caption_entities") or [],
        "buttons": [[_button_view(b) for b in row] for row in message.buttons],
        "edited": message.edited,
        "edit_date": payload.get("edit_date"),
        "deleted": message.deleted,
    }
    contact = payload.get("contact")
    if isinstance(contact, dict):
        out["contact"] = {
            "phone_number": contact.get("phone_number"),
            "first_name": contact.get("first_name"),
            "last_name": contact.get("last_name"),
            "user_id": contact.get("user_id"),
        }
    sticker = payload.get("sticker")
    if isinstance(sticker, dict):
        out["emoji"] = sticker.get("emoji")
    return out


def keyboard_view(chat: ChatState) -> list[list[dict[str, Any]]] | None:
    if chat.keyboard is None:
        return None
    return [
        [
            {
                "text": str(b.get("text", "")),
                "request_contact": bool(b.get("request_contact")),
            }
            for b in row
        ]
        for row in chat.keyboard
    ]


def chat_meta(bot: BotState, chat: ChatState) -> dict[str, Any]:
    """The chat as its members see it, without its messages: a private chat is titled with the
    bot's name."""
    private = chat.type == "private"
    return {
        "key": chat_key(bot.id, chat.id),
        "id": chat.id,
        "bot_id": bot.id,
        "type": chat.type,
        "title": bot.first_name if private else chat.title,
        "username": bot.username if private else chat.username,
        "members": [chat.peer.id] if chat.peer is not None else [],
        "opened": chat.opened,
        "keyboard": keyboard_view(chat),
    }


def chat_view(bot: BotState, chat: ChatState) -> dict[str, Any]:
    return {**chat_meta(bot, chat), "messages": [message_view(m) for m in chat.messages.values()]}


def _person_entry(world: World, group: Group, user_id: int) -> dict[str, Any]:
    now = world.now()
    member = group.member(user_id, now)
    bot = world.bots.get(user_id)
    request = group.requests.get(user_id)
    return {
        "id": user_id,
        "name": bot.first_name if bot else _name(world.user_dict(user_id)),
        "is_bot": bot is not None,
        "status": member.status,
        "in_chat": member.in_chat,
        "is_admin": member.is_admin,
        "can_write": group.may_write(user_id, now),
        "asked": request is not None,
    }


def group_meta(world: World, group: Group, bot: BotState) -> dict[str, Any]:
    """A group or channel without its messages: who has a standing in it (member, restricted,
    left, kicked, or a join request waiting) as of now, and whether the bot is there."""
    people = dict.fromkeys([*group.members, *group.requests])
    chat = group.chat
    return {
        "key": group_key(chat.id),
        "id": chat.id,
        "bot_id": bot.id,
        "type": chat.type,
        "title": chat.title,
        "username": chat.username,
        "members": [
            u for u in people if u not in world.bots and group.member(u, world.now()).in_chat
        ],
        "people": [_person_entry(world, group, u) for u in people],
        "join_by_request": group.join_by_request,
        "bot_status": group.member(bot.id, world.now()).status,
        "opened": True,
        "keyboard": None,
    }


def group_view(world: World, group: Group, bot: BotState) -> dict[str, Any]:
    messages = [message_view(m) for m in group.chat.messages.values()]
    return {**group_meta(world, group, bot), "messages": messages}
