"""The aiogram side of the gate: group and channel updates turned into the shared gate's calls
(bot.gate_chats), and the aiogram objects its actions need (permissions, the chat picker)."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import (
    ChatAdministratorRights,
    ChatJoinRequest,
    ChatMemberAdministrator,
    ChatMemberOwner,
    ChatMemberUpdated,
    ChatPermissions,
    KeyboardButton,
    KeyboardButtonRequestChat,
    Message,
    ReplyKeyboardMarkup,
)

from bot.calls import PERMISSIONS, RIGHTS
from bot.gate import texts
from bot.gate.model import RIGHTS_CHANNEL, RIGHTS_GROUP
from bot.gate_chats import GONE, MemberChange
from bot.mounted import Parts
from bot.telegram import filters
from bot.telegram.convert import person

# The request_id of each "add a chat" button, so an answer says which was pressed.
ADD_CHANNEL, ADD_GROUP = 1, 2
NO_PERMISSIONS = ChatPermissions(**dict.fromkeys(PERMISSIONS, False))
ALL_PERMISSIONS = ChatPermissions(**dict.fromkeys(PERMISSIONS, True))


def rights(member: object) -> list[str] | None:
    if isinstance(member, ChatMemberOwner):
        return list(RIGHTS)
    if isinstance(member, ChatMemberAdministrator):
        return [name for name in RIGHTS if getattr(member, name, False)]
    return None


def gate_router(parts: Parts) -> Router:
    router = Router(name="gate")

    @router.chat_join_request()
    async def on_join_request(request: ChatJoinRequest) -> None:
        link = request.invite_link
        await parts.gate.on_join_request(
            request.chat.id,
            person(request.from_user),
            request.user_chat_id,
            query_id=request.query_id,
            invite_link_creator_id=link.creator.id if link is not None else None,
        )

    @router.chat_member()
    async def on_member(update: ChatMemberUpdated) -> None:
        user, link = update.new_chat_member.user, update.invite_link
        change = MemberChange(
            update.chat.id,
            person(user),
            user.is_bot,
            update.old_chat_member.status,
            update.new_chat_member.status,
            via_link_creator_id=link.creator.id if link is not None else None,
            via_join_request=bool(update.via_join_request),
        )
        await parts.gate.on_member(change)

    @router.my_chat_member()
    async def on_bot_member(update: ChatMemberUpdated) -> None:
        new = update.new_chat_member
        await parts.gate.on_bot_status(
            update.chat.id,
            update.chat.title or str(update.chat.id),
            update.chat.type,
            rights(new),
            actor_id=update.from_user.id if update.from_user else None,
            present=new.status not in GONE,
        )

    @router.message(filters.gate_command_in_group)
    async def on_gate_command(message: Message) -> None:
        assert message.text is not None
        chat = message.chat
        await parts.gate.on_group_command(
            chat.id,
            message.text,
            title=chat.title,
            kind=chat.type,
            actor_id=message.from_user.id if message.from_user else None,
            as_chat=message.sender_chat is not None and message.sender_chat.id == chat.id,
        )

    @router.message(filters.gate_command_in_private)
    async def on_private_gate(message: Message) -> None:
        assert message.text is not None and message.from_user is not None
        await parts.gate.on_private_command(message.from_user.id, message.chat.id, message.text)

    @router.message(filters.chat_shared)
    async def on_chat_shared(message: Message) -> None:
        assert message.chat_shared is not None and message.from_user is not None
        await parts.gate.on_chat_shared(
            message.chat_shared.chat_id, message.from_user.id, message.chat.id
        )

    return router


def add_chat_keyboard() -> ReplyKeyboardMarkup:
    """Buttons that open Telegram's chat picker, showing only chats the person administers
    with the rights the bot needs, and make the bot an admin of the one picked."""

    def button(
        text: str, request_id: int, channel: bool, needed: tuple[str, ...]
    ) -> KeyboardButton:
        rights = _admin_rights(needed)
        return KeyboardButton(
            text=text,
            request_chat=KeyboardButtonRequestChat(
                request_id=request_id,
                chat_is_channel=channel,
                user_administrator_rights=rights,
                bot_administrator_rights=rights,
                request_title=True,
            ),
        )

    return ReplyKeyboardMarkup(
        keyboard=[
            [
                button(texts.t("en", "btn_add_channel"), ADD_CHANNEL, True, RIGHTS_CHANNEL),
                button(texts.t("en", "btn_add_group"), ADD_GROUP, False, RIGHTS_GROUP),
            ]
        ],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def _admin_rights(names: tuple[str, ...]) -> ChatAdministratorRights:
    required = {
        name: False
        for name, info in ChatAdministratorRights.model_fields.items()
        if info.is_required()
    }
    return ChatAdministratorRights(**(required | dict.fromkeys(names, True)))
