"""Bot API methods as the official server answers them, on top of the shared `World`."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .groups import post, presence
from .objects import EntityParseError, build, parse_text
from .state import BotState, CallRecord, ChatMessage, ChatState, PendingUpdate, Webhook, World
from .wire import ApiError, Params, bad_request


@dataclass
class Described:
    """A result that also carries the envelope's `description`, as setWebhook's does."""

    result: Any
    description: str


Handler = Callable[[World, BotState, Params], Awaitable[Any]]
METHODS: dict[str, tuple[str, Handler]] = {}
# The server ignores these when a bot puts them into a webhook answer.
NOT_FROM_WEBHOOK = frozenset({"setwebhook", "deletewebhook", "close", "logout"})

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
STALE_QUERY = "query is too old and response timeout expired or query ID is invalid"
WEBHOOK_ACTIVE = (
    "can't use getUpdates method while webhook is active; use deleteWebhook to delete the "
    "webhook first"
)
OTHER_POLLER = (
    "terminated by other getUpdates request; make sure that only one bot instance is running"
)
CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note",
    "upload_video_note",
})  # fmt: skip
_SECRET = re.compile(r"[A-Za-z0-9_-]*")
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")


def method(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        METHODS[name.lower()] = (name, handler)
        return handler

    return register


async def execute(
    world: World, bot: BotState, name: str, raw: dict[str, Any], via: str = "http"
) -> tuple[Any, str | None]:
    """Run one call and record it; raises ApiError with the server's code and text."""
    entry = METHODS.get(name.lower())
    record = CallRecord(
        bot.id,
        entry[0] if entry else name,
        raw,
        via=via,
        at=world.clock(),
        chat_id=_target_chat(world, raw.get("chat_id")),
    )
    world.record(record)
    try:
        if entry is None:
            raise ApiError.make(404, "method not found")
        faults = world.faults.get(name.lower())
        if faults:
            raise faults.pop(0)
        world.rates.check(record)
        outcome = await entry[1](world, bot, Params(raw))
    except ApiError as error:
        record.error = error
        raise
    world.rates.sent(record)
    described = outcome if isinstance(outcome, Described) else Described(outcome, "")
    record.result = described.result
    return described.result, described.description or None


def _target_chat(world: World, chat_id: Any) -> int | None:
    if isinstance(chat_id, str) and chat_id.startswith("@"):
        return world.usernames.get(chat_id[1:].lower())
    try:
        return int(chat_id) if chat_id not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _clamp(value: int | None, low: int, high: int, default: int) -> int:
    return default if value is None else max(low, min(high, value))


def _updates_list(p: Params) -> list[str] | None:
    if not p.has("allowed_updates"):
        return None
    value = p.decoded("allowed_updates")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request("can't parse allowed_updates JSON object")
    return value


# --- updates and webhooks ---------------------------------------------------------------------


@method("getMe")
async def get_me(world: World, bot: BotState, p: Params) -> Any:
    return bot.as_user(me=True)


@method("getUpdates")
async def get_updates(world: World, bot: BotState, p: Params) -> Any:
    if bot.webhook:
        raise ApiError.make(409, WEBHOOK_ACTIVE)
    offset = p.integer("offset")
    limit = _clamp(p.integer("limit"), 1, 100, 100)
    timeout = _clamp(p.integer("timeout"), 0, 50, 0)
    allowed = _updates_list(p)
    if allowed is not None:
        bot.allowed_updates = allowed
    if offset is not None and offset < 0:
        bot.pending = bot.pending[offset:]
    elif offset:
        # A re-sent duplicate carries an old id; it goes away only once it has been fetched.
        bot.pending = [
            u for u in bot.pending if u.update_id >= offset or (u.duplicate and not u.delivered)
        ]
    bot.poll_generation += 1
    generation = bot.poll_generation
    bot.signal.fire()

    def answerable() -> bool:
        superseded = bot.poll_generation != generation
        return bool(bot.pending) or superseded or bot.webhook is not None or world.closed

    await bot.signal.wait_until(answerable, timeout)
    if bot.poll_generation != generation:
        raise ApiError.make(409, OTHER_POLLER)
    if bot.webhook:
        raise ApiError.make(409, WEBHOOK_ACTIVE)
    batch: list[PendingUpdate] = []
    for update in bot.pending:
        # Clients confirm by the last id they got, so a batch must only ever go up.
        if len(batch) == limit or (batch and update.update_id <= batch[-1].update_id):
            break
        update.delivered = True
        batch.append(update)
    return [u.data for u in batch]


@method("setWebhook")
async def set_webhook(world: World, bot: BotState, p: Params) -> Any:
    url = p.string("url") or ""
    if not url:
        return await delete_webhook(world, bot, p)
    if not re.match(r"https?://[^/]+", url):
        raise bad_request("bad webhook: Wrong HTTP URL specified")
    secret = p.string("secret_token")
    if secret is not None:
        if len(secret) > 256:
            raise bad_request("secret token is too long")
        if not _SECRET.fullmatch(secret):
            raise bad_request("secret token contains unallowed characters")
    connections = _clamp(p.integer("max_connections"), 1, 100, 40)
    allowed = _updates_list(p)
    if allowed is not None:
        bot.allowed_updates = allowed
    if p.flag("drop_pending_updates"):
        bot.pending.clear()
    old = bot.webhook
    same = old and (old.url, old.secret, old.max_connections) == (url, secret, connections)
    bot.webhook = Webhook(url, secret, connections, p.string("ip_address"))
    bot.signal.fire()
    return Described(True, "Webhook is already set" if same else "Webhook was set")


@method("deleteWebhook")
async def delete_webhook(world: World, bot: BotState, p: Params) -> Any:
    if p.flag("drop_pending_updates"):
        bot.pending.clear()
    had = bot.webhook is not None
    bot.webhook = None
    bot.signal.fire()
    return Described(True, "Webhook was deleted" if had else "Webhook is already deleted")


@method("getWebhookInfo")
async def get_webhook_info(world: World, bot: BotState, p: Params) -> Any:
    hook = bot.webhook or Webhook(url="", secret=None, max_connections=0, ip_address=None)
    return build(
        "WebhookInfo",
        url=hook.url,
        has_custom_certificate=False,
        pending_update_count=len(bot.pending),
        ip_address=hook.ip_address,
        last_error_date=hook.last_error_date,
        last_error_message=hook.last_error_message,
        max_connections=hook.max_connections,
        allowed_updates=bot.allowed_updates if bot.webhook else None,
    )


@method("close")
@method("logOut")
async def close(world: World, bot: BotState, p: Params) -> Any:
    return True


# --- messages ---------------------------------------------------------------------------------


def _open_chat(world: World, bot: BotState, p: Params) -> ChatState:
    """A chat the bot may write to now."""
    chat = world.chat(bot, p.raw.get("chat_id"))
    group = world.groups.get(chat.id)
    if group is not None:
        presence(world, group, bot)
        return chat
    if chat.blocked:
        raise ApiError.make(403, "bot was blocked by the user")
    if not chat.opened and not world.may_write_first(bot, chat.id):
        raise ApiError.make(403, "bot can't initiate conversation with a user")
    return chat


def _text(p: Params) -> tuple[str, list[dict[str, Any]]]:
    raw = p.string("text")
    if raw is None or not raw.strip():
        raise bad_request("message text is empty")
    try:
        text, entities = parse_text(raw, p.string("parse_mode"))
    except EntityParseError as error:
        raise bad_request(f"can't parse entities: {error}") from None
    if len(text) > 4096:
        raise bad_request("message is too long")
    given = p.decoded("entities")
    return text, entities or (given if isinstance(given, list) else [])


def _inline(markup: Any) -> dict[str, Any]:
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request("can't parse inline keyboard markup JSON object")
    for button in (b for row in rows for b in row):
        if not isinstance(button, dict) or not button.get("text"):
            raise bad_request("can't parse inline keyboard button: Text must be non-empty")
        if set(button) <= {"text", "style", "icon_custom_emoji_id"}:
            raise bad_request(
                "can't parse inline keyboard button: Text buttons are unallowed in the inline "
                "keyboard"
            )
        if len(str(button.get("callback_data", "")).encode()) > 64:
            raise bad_request("BUTTON_DATA_INVALID")
    return {"inline_keyboard": rows}


def _markup(p: Params, *, inline_only: bool = False) -> tuple[str, dict[str, Any] | None]:
    """("inline"|"keyboard"|"remove"|"none", markup) for a reply_markup parameter."""
    markup = p.decoded("reply_markup")
    if markup is None:
        return "none", None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup or inline_only:
        return "inline", _inline(markup)
    if "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request("can't parse reply keyboard markup JSON object")
        normal = [[b if isinstance(b, dict) else {"text": str(b)} for b in row] for row in rows]
        return "keyboard", {**markup, "keyboard": normal}
    if markup.get("remove_keyboard"):
        return "remove", None
    return "none", None  # ForceReply: a client concern with no state to keep


def _reply_to(chat: ChatState, p: Params) -> dict[str, Any] | None:
    params = p.decoded("reply_parameters")
    wanted = params.get("message_id") if isinstance(params, dict) else None
    wanted = wanted or p.integer("reply_to_message_id")
    target = chat.messages.get(int(wanted)) if wanted else None
    if wanted and (target is None or target.deleted):
        raise bad_request("message to be replied not found")
    return {k: v for k, v in target.payload.items() if k != "reply_to_message"} if target else None


@method("sendMessage")
async def send_message(world: World, bot: BotState, p: Params) -> Any:
    chat = _open_chat(world, bot, p)
    group = world.groups.get(chat.id)
    if group is not None and not group.may_write(bot.id, world.now()):
        if group.kind == "channel":
            raise bad_request("need administrator rights in the channel chat")
        raise bad_request("not enough rights to send text messages to the chat")
    text, entities = _text(p)
    kind, markup = _markup(p)
    fields: dict[str, Any] = {
        "text": text,
        "entities": entities,
        "reply_markup": markup if kind == "inline" else None,
        "has_protected_content": p.flag("protect_content"),
        "reply_to_message": _reply_to(chat, p),
    }
    if group is not None:
        message = post(world, group, bot.id, **fields)
    else:
        message = world.post(bot, chat, None, **fields)
    if kind in ("keyboard", "remove"):
        world.set_keyboard(bot, chat, markup)
    return message.payload


def _message(world: World, bot: BotState, p: Params, action: str) -> tuple[ChatState, ChatMessage]:
    if p.has("inline_message_id"):
        raise bad_request("MESSAGE_ID_INVALID")
    chat = world.chat(bot, p.raw.get("chat_id"))
    group = world.groups.get(chat.id)
    if group is not None:
        presence(world, group, bot)
    message_id = p.integer("message_id")
    if message_id is None:
        raise bad_request("message identifier is not specified")
    message = chat.messages.get(message_id)
    if message is None or message.deleted:
        raise bad_request(f"message to {action} not found")
    return chat, message


def _edit(world: World, bot: BotState, chat: ChatState, message: ChatMessage, **new: Any) -> Any:
    if message.author_id != bot.id:
        raise bad_request("message can't be edited")
    old = {key: message.payload.get(key) for key in new}
    if old == {key: value or None for key, value in new.items()}:
        raise bad_request(NOT_MODIFIED)
    for key, value in new.items():
        if value:
            message.payload[key] = value
        else:
            message.payload.pop(key, None)
    message.payload["edit_date"] = world.now()
    message.edited = True
    world.emit("edited", bot, chat, message_id=message.message_id, message=message.payload)
    return message.payload


@method("editMessageText")
async def edit_message_text(world: World, bot: BotState, p: Params) -> Any:
    chat, message = _message(world, bot, p, "edit")
    text, entities = _text(p)
    markup = _markup(p, inline_only=True)[1]
    return _edit(world, bot, chat, message, text=text, entities=entities, reply_markup=markup)


@method("editMessageReplyMarkup")
async def edit_message_reply_markup(world: World, bot: BotState, p: Params) -> Any:
    chat, message = _message(world, bot, p, "edit")
    return _edit(world, bot, chat, message, reply_markup=_markup(p, inline_only=True)[1])


@method("deleteMessage")
async def delete_message(world: World, bot: BotState, p: Params) -> Any:
    chat, message = _message(world, bot, p, "delete")
    group = world.groups.get(chat.id)
    if group is not None and message.author_id != bot.id:
        me = group.member(bot.id, world.now())
        # Any administrator of a basic group may delete; elsewhere it takes the right.
        if not (group.kind == "group" and me.is_admin) and not me.can("can_delete_messages"):
            raise bad_request("message can't be deleted")
    message.deleted = True
    world.emit("deleted", bot, chat, message_id=message.message_id)
    return True


@method("sendChatAction")
async def send_chat_action(world: World, bot: BotState, p: Params) -> Any:
    chat = _open_chat(world, bot, p)
    action = p.string("action")
    if action not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    world.emit("chat_action", bot, chat, action=action)
    return True


@method("answerCallbackQuery")
async def answer_callback_query(world: World, bot: BotState, p: Params) -> Any:
    query = bot.callbacks.get(p.string("callback_query_id", required=True) or "")
    if (
        query is None
        or query.answer is not None
        or world.clock() - query.created > world.callback_ttl
    ):
        raise bad_request(STALE_QUERY)
    query.answer = {"text": p.string("text"), "show_alert": p.flag("show_alert")}
    query.answer["url"] = p.string("url")
    query.answered.set()
    chat = bot.chats[query.chat_id]
    world.emit("callback_answered", bot, chat, callback_query_id=query.id, **query.answer)
    return True


# --- commands ---------------------------------------------------------------------------------


def _scope_key(p: Params) -> str:
    scope = p.decoded("scope") or {"type": "default"}
    return json.dumps([scope, p.string("language_code") or ""], sort_keys=True)


@method("setMyCommands")
async def set_my_commands(world: World, bot: BotState, p: Params) -> Any:
    commands = p.decoded("commands")
    if not isinstance(commands, list):
        raise bad_request("can't parse commands JSON object")
    built = []
    for item in commands:
        if not isinstance(item, dict) or not _COMMAND.fullmatch(str(item.get("command", ""))):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(str(item.get("description", ""))) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        built.append(build("BotCommand", command=item["command"], description=item["description"]))
    bot.commands[_scope_key(p)] = built
    return True


@method("getMyCommands")
async def get_my_commands(world: World, bot: BotState, p: Params) -> Any:
    return bot.commands.get(_scope_key(p), [])


@method("deleteMyCommands")
async def delete_my_commands(world: World, bot: BotState, p: Params) -> Any:
    bot.commands.pop(_scope_key(p), None)
    return True
