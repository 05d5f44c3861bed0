"""What the page draws, as JSON: accounts, chats and messages the way a Telegram client sees them.

Everything is read from the stand-in's own state, so the page shows exactly what the bot sent:
the text and entities of each message, its inline buttons, whether it was edited or deleted,
and the reply keyboard under the input field.
"""

from __future__ import annotations

from typing import Any

from bot.sandbox.botapi import BotState, ChatMessage, ChatState, Person


def chat_key(bot_id: int, chat_id: int) -> str:
    """Chat ids are per bot (a private chat's id is the user's), so the page keys by both."""
    return f"{bot_id}/{chat_id}"


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
    return "other"


def message_view(message: ChatMessage) -> dict[str, Any]:
    payload = message.payload
    sender = payload.get("from") or {}
    out: dict[str, Any] = {
        "id": message.message_id,
        "from_bot": message.from_bot,
        "sender_id": sender.get("id"),
        "date": payload.get("date"),
        "kind": _kind(payload),
        "text": message.text,
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
