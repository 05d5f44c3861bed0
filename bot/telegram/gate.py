"""The aiogram side of the gate: group and channel updates in, the gate's actions out.

The gate decides (bot/gate, framework-free); this module turns Telegram's updates into its calls
and carries out the actions it returns, telling it what Telegram answered.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
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

from bot import metrics
from bot.conversation.events import Happened
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
from bot.gate.model import RIGHTS_CHANNEL, RIGHTS_GROUP
from bot.gate.service import Gate
from bot.telegram.convert import inline_markup, person

log = logging.getLogger(__name__)

GATE_COMMAND = r"^/gate(@\w+)?(\s|$)"
# The request_id of each "add a chat" button, so an answer says which was pressed.
ADD_CHANNEL, ADD_GROUP = 1, 2
JOINED = frozenset({"member", "restricted", "administrator", "creator"})
GONE = frozenset({"left", "kicked"})
# The admin rights by their Bot API names, as the gate reads them.
RIGHTS = (
    "can_invite_users",
    "can_restrict_members",
    "can_delete_messages",
    "can_post_messages",
    "can_manage_chat",
)
NO_PERMISSIONS = ChatPermissions(
    can_send_messages=False,
    can_send_audios=False,
    can_send_documents=False,
    can_send_photos=False,
    can_send_videos=False,
    can_send_video_notes=False,
    can_send_voice_notes=False,
    can_send_polls=False,
    can_send_other_messages=False,
    can_add_web_page_previews=False,
    can_react_to_messages=False,
    can_change_info=False,
    can_invite_users=False,
    can_pin_messages=False,
    can_manage_topics=False,
)


class GateExecutor:
    """Carries out the gate's actions in order and reports each answer back to the gate, which
    may answer with more actions (a link to announce, a failure to log)."""

    def __init__(self, bot: Bot, gate: Gate) -> None:
        self.bot = bot
        self.gate = gate

    async def tell(self, happened: Iterable[Happened]) -> None:
        """What the conversation stored (a sign-in, a sign-out, an erasure), for the gate."""
        for event in happened:
            await self.run(await self.gate.on_event(event))

    async def reconcile(self) -> None:
        await self.run(await self.gate.reconcile())

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
        bot = self.bot
        try:
            if isinstance(action, Approve):
                await bot.approve_chat_join_request(action.chat_id, action.user_id)
            elif isinstance(action, Decline):
                await bot.decline_chat_join_request(action.chat_id, action.user_id)
            elif isinstance(action, AnswerQuery):
                await bot.answer_chat_join_request_query(
                    chat_join_request_query_id=action.query_id, result=action.result
                )
            elif isinstance(action, Restrict):
                await bot.restrict_chat_member(
                    action.chat_id,
                    action.user_id,
                    NO_PERMISSIONS,
                    use_independent_chat_permissions=True,
                )
            elif isinstance(action, Free):
                await bot.restrict_chat_member(
                    action.chat_id,
                    action.user_id,
                    _all_permissions(),
                    use_independent_chat_permissions=True,
                )
            elif isinstance(action, Remove):
                await bot.ban_chat_member(action.chat_id, action.user_id)
                await bot.unban_chat_member(action.chat_id, action.user_id, only_if_banned=True)
            elif isinstance(action, Say):
                await bot.send_message(
                    action.chat_id, action.text, reply_markup=inline_markup(action.buttons)
                )
            elif isinstance(action, Notice):
                await self._notice(action)
            elif isinstance(action, MakeInviteLink):
                link = await bot.create_chat_invite_link(
                    action.chat_id, name=action.name, creates_join_request=True
                )
                return Result(action, True, link=link.invite_link)
        except TelegramAPIError as exc:
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
                    await self.bot.delete_message(notice.chat_id, shown)
                except TelegramAPIError as exc:
                    log.info("old notice not deleted: %s", exc.message)
            return
        markup = inline_markup(notice.buttons)
        if shown is not None:
            try:
                await self.bot.edit_message_text(
                    notice.text, chat_id=notice.chat_id, message_id=shown, reply_markup=markup
                )
                return
            except TelegramAPIError as exc:
                if "message is not modified" in exc.message:
                    return
                log.info("notice not edited, posting anew: %s", exc.message)
        sent = await self.bot.send_message(notice.chat_id, notice.text, reply_markup=markup)
        await store.set_notice(notice.chat_id, notice.key, sent.message_id)


def _all_permissions() -> ChatPermissions:
    return ChatPermissions(**{name: True for name in NO_PERMISSIONS.model_fields_set})


def _rights(member: object) -> list[str] | None:
    if isinstance(member, ChatMemberOwner):
        return list(RIGHTS)
    if isinstance(member, ChatMemberAdministrator):
        return [name for name in RIGHTS if getattr(member, name, False)]
    return None


def gate_router(gate: Gate, executor: GateExecutor) -> Router:
    router = Router(name="gate")

    @router.chat_join_request()
    async def on_join_request(request: ChatJoinRequest) -> None:
        link = request.invite_link
        actions = await gate.on_join_request(
            request.chat.id,
            person(request.from_user),
            request.user_chat_id,
            query_id=request.query_id,
            invite_link_creator_id=link.creator.id if link is not None else None,
        )
        await executor.run(actions)

    @router.chat_member()
    async def on_member(update: ChatMemberUpdated) -> None:
        old, new = update.old_chat_member.status, update.new_chat_member.status
        user = update.new_chat_member.user
        if user.is_bot or new in ("administrator", "creator"):
            return  # bots and admins are not the gate's to hold back
        if old in GONE and new in JOINED:
            link = update.invite_link
            actions = await gate.on_member_joined(
                update.chat.id,
                person(user),
                via_link_creator_id=link.creator.id if link is not None else None,
                via_join_request=bool(update.via_join_request),
            )
        elif old not in GONE and new in GONE:
            actions = await gate.on_member_left(update.chat.id, user.id)
        else:
            return
        await executor.run(actions)

    @router.my_chat_member()
    async def on_bot_member(update: ChatMemberUpdated) -> None:
        new = update.new_chat_member
        actions = await gate.on_bot_status(
            update.chat.id,
            update.chat.title or str(update.chat.id),
            update.chat.type,
            _rights(new),
            actor_id=update.from_user.id if update.from_user else None,
            present=new.status not in GONE,
        )
        await executor.run(actions)

    @router.message(F.chat.type.in_({"group", "supergroup"}), F.text.regexp(GATE_COMMAND))
    async def on_gate_command(message: Message, bot: Bot) -> None:
        assert message.text is not None
        args = message.text.partition(" ")[2]
        chat = message.chat
        if message.sender_chat is not None and message.sender_chat.id == chat.id:
            is_admin, actor_id = True, None  # an anonymous admin, posting as the group
        elif message.from_user is not None:
            actor_id = message.from_user.id
            is_admin = await _is_admin(bot, chat.id, actor_id)
        else:
            return
        actions = await gate.on_admin_command(
            chat.id, actor_id, is_admin, args, title=chat.title, kind=chat.type
        )
        await executor.run(actions)

    # Channels have nobody typing commands: their admins manage them from the private chat.

    @router.message(F.chat.type == "private", F.from_user, F.text.regexp(GATE_COMMAND))
    async def on_private_gate(message: Message, bot: Bot) -> None:
        assert message.text is not None and message.from_user is not None
        user_id, here = message.from_user.id, message.chat.id
        _, target, rest = [*message.text.split(maxsplit=2), "", ""][:3]
        if not target:

            async def administers(chat_id: int) -> bool:
                return await _is_admin(bot, chat_id, user_id)

            overview = await gate.admin_overview(administers)
            await bot.send_message(here, overview, reply_markup=add_chat_keyboard())
            return
        try:
            chat_id = int(target)
        except ValueError:
            await executor.run([Say(here, texts.t("en", "private_usage"))])
            return
        is_admin = await _is_admin(bot, chat_id, user_id)
        if is_admin and await gate.store.get_chat(chat_id) is None:
            # Made an admin while the bot was not listening: learn the chat from Telegram.
            facts = await _facts(bot, chat_id)
            if facts is not None:
                await gate.note_chat(chat_id, *facts)
        actions = await gate.on_admin_command(
            chat_id, user_id, is_admin, rest or "status", reply_to=here
        )
        await executor.run(actions)

    @router.message(F.chat.type == "private", F.from_user, F.chat_shared)
    async def on_chat_shared(message: Message, bot: Bot) -> None:
        """The answer to an "add a chat" button: the chat the admin picked."""
        assert message.chat_shared is not None and message.from_user is not None
        chat_id = message.chat_shared.chat_id
        facts = await _facts(bot, chat_id)
        title, kind, rights = facts if facts is not None else (None, None, None)
        is_admin = facts is not None and await _is_admin(bot, chat_id, message.from_user.id)
        actions = await gate.on_chat_shared(
            chat_id, title, kind, rights, actor_is_admin=is_admin, reply_to=message.chat.id
        )
        await executor.run(actions)

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


async def _facts(bot: Bot, chat_id: int) -> tuple[str, str, list[str] | None] | None:
    """A chat's title and kind and the bot's admin rights there, or None when the bot can't
    see it (not in it)."""
    try:
        chat = await bot.get_chat(chat_id)
        me = await bot.get_chat_member(chat_id, bot.id)
    except TelegramAPIError as exc:
        log.info("could not look at a chat: %s", exc.message)
        return None
    return chat.title or str(chat_id), chat.type, _rights(me)


async def _is_admin(bot: Bot, chat_id: int, user_id: int) -> bool:
    """Telegram's own word, asked each time: an admin demoted a second ago is no admin."""
    try:
        member = await bot.get_chat_member(chat_id, user_id)
    except TelegramAPIError as exc:
        log.info("could not check an admin: %s", exc.message)
        return False
    return member.status in ("creator", "administrator")
