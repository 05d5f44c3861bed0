"""Between aiogram's objects and the conversation's plain events and replies."""

from __future__ import annotations

from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    User,
)

from bot.conversation.events import (
    Button,
    Event,
    Other,
    Person,
    Press,
    Reply,
    SharedContact,
)
from bot.private_chat import text_event

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | None


def person(user: User) -> Person:
    return Person(user.id, user.first_name, user.username, user.language_code)


def message_event(message: Message) -> Event:
    if message.contact is not None:
        return SharedContact(message.contact.phone_number, message.contact.user_id)
    text = message.text
    if text is None:
        return Other(message.content_type)
    return text_event(text)


def press_event(query: CallbackQuery) -> Event:
    return Press(query.data or "")


def inline_markup(buttons: tuple[tuple[Button, ...], ...]) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text=b.text, url=b.url)
                if b.url
                else InlineKeyboardButton(text=b.text, callback_data=b.data)
                for b in row
            ]
            for row in buttons
        ]
    )


def markup(reply: Reply) -> Markup:
    if reply.buttons:
        return inline_markup(reply.buttons)
    if reply.contact_button:
        return ReplyKeyboardMarkup(
            keyboard=[[KeyboardButton(text=reply.contact_button, request_contact=True)]],
            resize_keyboard=True,
            one_time_keyboard=True,
        )
    if reply.remove_keyboard:
        return ReplyKeyboardRemove()
    return None
