"""The page's HTTP side: static files, a JSON API to play the simulated users, and live events.

GET  /                           the page (static/index.html, app.js, style.css)
GET  /api/state                  accounts, chats with their messages, the outbox
GET  /api/events                 server-sent events: a full `state` first, then changes
POST /api/users                  {first_name, last_name?, username?, phone_number?}
POST /api/users/{id}/send        one of {text}, {tap}, {press: {message_id, text}},
                                 {contact: {} | {phone_number, first_name?}}, {sticker};
                                 {chat, text}: write in a group or channel;
                                 {open: {chat?, message_id, text}}: tap a URL button that starts
                                 the bot (its private chat opens with /start PAYLOAD)
POST /api/users/{id}/chats       {title, kind: "group" | "channel", join_by_request?}: a new chat
                                 owned by this user
POST /api/users/{id}/chats/{chat_id}/bot    this user (an admin) adds the bot as an admin
POST /api/users/{id}/chats/{chat_id}/join   join, or ask to join when the chat takes requests
POST /api/users/{id}/chats/{chat_id}/leave
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.gate.model import required_rights
from bot.sandbox.botapi import BotApiServer, ChatMessage, Event, NoAnswer, Refused, SimChat, SimUser

from .outbox import Outbox, OutboxEntry
from .view import (
    bot_view,
    chat_key,
    chat_meta,
    chat_view,
    group_meta,
    group_view,
    keyboard_view,
    message_view,
    person_view,
)

STATIC = Path(__file__).parent / "static"
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - compared against, not bound
KEEP_ALIVE = 15.0  # seconds between comments on an idle event stream, so dead clients show up
PRESS_TIMEOUT = 10.0
# A client that falls this far behind is cut off; on reconnecting it gets a fresh state.
CLIENT_BACKLOG = 1000

_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{4,31}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?")
_PHONE_SEPARATORS = re.compile(r"[\s().-]")
_PHONE = re.compile(r"\+?(\d{5,15})")
MAX_TEXT = 4096
MAX_NAME = 64
MAX_TITLE = 128
# What a Telegram client says when the server refuses something a person tried.
REFUSALS = {
    "CHAT_WRITE_FORBIDDEN": "You can't write here: you are restricted or not in this chat",
    "USER_ALREADY_PARTICIPANT": "Already in this chat",
    "USER_BANNED_IN_CHANNEL": "You are banned from this chat",
    "USER_NOT_PARTICIPANT": "Not in this chat",
    "INVITE_HASH_EXPIRED": "The invite link has expired",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PageEvent = dict[str, Any]


class BadInput(Exception):
    """A request the page (or whoever calls the API) should fix; the text says how."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class _Client:
    """One open event stream: its own queue, so a slow browser never holds up the bot."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[PageEvent | None] = asyncio.Queue(CLIENT_BACKLOG)

    def put(self, event: PageEvent | None) -> bool:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            return False
        return True

    def end(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


class WebConsole:
    """Serves the page for one stand-in. Users created here are the ones the page can play."""

    def __init__(
        self,
        api: BotApiServer,
        outbox: Outbox,
        *,
        app_name: str,
        host: str = "127.0.0.1",
    ) -> None:
        self.api = api
        self.outbox = outbox
        self.app_name = app_name
        self.users: dict[int, SimUser] = {}
        # The page holds every code the backend sent: only answer to names of this machine,
        # so a web page elsewhere can't read it through DNS rebinding. Listening on all
        # interfaces is a choice to be reachable, so any name is accepted then.
        self._hosts = None if host in WILDCARD_HOSTS else LOOPBACK_NAMES | {host.strip("[]")}
        self._clients: set[_Client] = set()
        self._unsubscribe = api.subscribe(self._on_botapi_event)
        outbox.listen(self._on_delivery)

    # --- the model -------------------------------------------------------------------------

    def add_user(
        self,
        first_name: str,
        *,
        last_name: str | None = None,
        username: str | None = None,
        phone_number: str | None = None,
        language_code: str = "en",
    ) -> SimUser:
        user = self.api.user(
            first_name,
            last_name=last_name,
            username=username,
            phone_number=phone_number,
            language_code=language_code,
        )
        self.users[user.id] = user
        self._publish({"type": "user", "user": person_view(user.person)})
        return user

    def state(self) -> dict[str, Any]:
        world = self.api.world
        bot = self.api.bot()
        for user in self.users.values():
            # The chat with the bot is listed before the user writes, as Telegram lists a bot
            # one has opened: with a Start button instead of the input field.
            world.private_chat(bot, user.person)
        return {
            "app_name": self.app_name,
            "bot": bot_view(bot),
            "users": [person_view(u.person) for u in self.users.values()],
            "chats": [chat_view(b, c) for b in world.bots.values() for c in b.chats.values()]
            + [group_view(world, g, bot) for g in world.groups.values()],
            "outbox": [entry.view() for entry in self.outbox.entries],
        }

    # --- live events -----------------------------------------------------------------------

    def _publish(self, event: PageEvent) -> None:
        for client in list(self._clients):
            if not client.put(event):
                self._clients.discard(client)
                client.end()

    def _on_botapi_event(self, event: Event) -> None:
        group = self.api.world.groups.get(event["chat_id"])
        if group is not None:
            self._on_group_event(event, group.chat.messages.get(event.get("message_id", 0)))
            return
        bot = self.api.world.bots.get(event["bot_id"])
        chat = bot.chats.get(event["chat_id"]) if bot else None
        if bot is None or chat is None:
            return
        key = chat_key(bot.id, chat.id)
        kind = event["type"]
        if kind in ("message", "edited", "deleted"):
            message = chat.messages[event["message_id"]]
            meta = chat_meta(bot, chat)
            self._publish({"type": "message", "chat": meta, "message": message_view(message)})
        elif kind == "keyboard":
            self._publish({"type": "keyboard", "chat": key, "keyboard": keyboard_view(chat)})
        elif kind == "chat_action":
            self._publish({"type": "chat_action", "chat": key, "action": event.get("action")})

    def _on_group_event(self, event: Event, message: ChatMessage | None) -> None:
        # Every change in a group (a message, a member's standing, a join request) comes with
        # the chat's people as of now, so the page never shows a standing gone stale.
        meta = self._group_meta(event["chat_id"])
        if event["type"] in ("message", "edited", "deleted") and message is not None:
            self._publish({"type": "message", "chat": meta, "message": message_view(message)})
        else:
            self._publish({"type": "chat", "chat": meta})

    def _group_meta(self, chat_id: int) -> dict[str, Any]:
        world = self.api.world
        return group_meta(world, world.groups[chat_id], self.api.bot())

    def _on_delivery(self, entry: OutboxEntry) -> None:
        self._publish({"type": "outbox", "entry": entry.view()})

    def close(self) -> None:
        """Ends every event stream, so the web server can stop without waiting for them."""
        self._unsubscribe()
        for client in self._clients:
            client.end()
        self._clients.clear()

    # --- HTTP ------------------------------------------------------------------------------

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        app.router.add_get("/", self._index)
        app.router.add_static("/static", STATIC, follow_symlinks=False)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/api/events", self._events)
        app.router.add_post("/api/users", self._create_user)
        app.router.add_post("/api/users/{user_id}/send", self._send)
        app.router.add_post("/api/users/{user_id}/chats", self._create_chat)
        app.router.add_post("/api/users/{user_id}/chats/{chat_id}/{action}", self._chat_action)
        app.on_response_prepare.append(_headers)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._hosts is not None and (request.url.host or "") not in self._hosts:
            return _error(403, "this sandbox only answers on localhost")
        if request.method == "POST" and request.content_type != "application/json":
            # JSON only: a cross-site form or text/plain post can't trigger anything here.
            return _error(415, "send JSON (Content-Type: application/json)")
        try:
            return await handler(request)
        except BadInput as exc:
            return _error(exc.status, str(exc))

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _state(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.state())

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        client = _Client()
        # Joining and taking the snapshot with no await between them: no change can slip in
        # between the state the page starts from and the first change it is told about.
        self._clients.add(client)
        client.put({"type": "state", **self.state()})
        try:
            await response.write(b"retry: 1000\n\n")
            while True:
                try:
                    event = await asyncio.wait_for(client.queue.get(), KEEP_ALIVE)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if event is None:
                    break
                data = json.dumps(event, ensure_ascii=False)
                await response.write(f"data: {data}\n\n".encode())
        except ConnectionResetError:
            pass  # the page went away
        finally:
            self._clients.discard(client)
        return response

    async def _create_user(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        first_name = _name(body.get("first_name"), "first_name", required=True)
        assert first_name is not None
        last_name = _name(body.get("last_name"), "last_name")
        username = _username(body.get("username"))
        phone = _phone(body.get("phone_number"))
        language = body.get("language_code") or "en"
        if not isinstance(language, str) or not _LANGUAGE.fullmatch(language):
            raise BadInput("language_code: a language tag such as en or pt-BR")
        user = self.add_user(
            first_name,
            last_name=last_name,
            username=username,
            phone_number=phone,
            language_code=language,
        )
        return web.json_response(person_view(user.person), status=201)

    def _user(self, request: web.Request) -> SimUser:
        try:
            return self.users[int(request.match_info["user_id"])]
        except (KeyError, ValueError):
            raise BadInput("no such user", 404) from None

    def _chat(self, chat_id: Any) -> SimChat:
        try:
            return self.api.chat(int(chat_id))
        except (KeyError, ValueError, TypeError):
            raise BadInput("no such group or channel", 404) from None

    async def _create_chat(self, request: web.Request) -> web.StreamResponse:
        user = self._user(request)
        body = await _body(request)
        title = body.get("title")
        if not isinstance(title, str) or not title.strip() or len(title.strip()) > MAX_TITLE:
            raise BadInput(f"title: 1 to {MAX_TITLE} characters")
        kind = body.get("kind", "group")
        if kind not in ("group", "channel"):
            raise BadInput('kind: "group" or "channel"')
        asks = body.get("join_by_request", False)
        if not isinstance(asks, bool):
            raise BadInput("join_by_request: true or false")
        # A group made in today's apps is a supergroup: the kind that can restrict members.
        chat = self.api.create_group(
            title.strip(),
            owner=user,
            kind="channel" if kind == "channel" else "supergroup",
            join_by_request=asks,
        )
        meta = self._group_meta(chat.id)
        self._publish({"type": "chat", "chat": meta})
        return web.json_response(meta, status=201)

    async def _chat_action(self, request: web.Request) -> web.StreamResponse:
        user = self._user(request)
        chat = self._chat(request.match_info["chat_id"])
        action = request.match_info["action"]
        await _body(request)
        try:
            if action == "bot":
                if not chat.group.member(user.id, self.api.world.now()).is_admin:
                    raise BadInput("only the chat's administrators can add the bot", 403)
                # Exactly the rights the gate asks for, so the page shows they are enough.
                chat.add_bot(rights=required_rights(chat.type), by=user)
            elif action == "join":
                try:
                    await user.join(chat)
                except ValueError:  # the chat takes join requests: ask the admins instead
                    await user.ask_to_join(chat)
            elif action == "leave":
                await user.leave(chat)
            else:
                raise BadInput("no such action", 404)
        except Refused as exc:
            raise BadInput(_refusal(exc), 403) from None
        except ValueError as exc:
            raise BadInput(str(exc), 409) from None
        return web.json_response(self._group_meta(chat.id))

    async def _send(self, request: web.Request) -> web.StreamResponse:
        user = self._user(request)
        body = await _body(request)
        if "open" in body:
            return web.json_response(await self._open(user, body["open"]))
        if "chat" in body:
            message = await self._say(user, self._chat(body["chat"]), body)
            return web.json_response({"ok": True, "message": message_view(message)})
        if "press" in body:
            return web.json_response({"ok": True, "answer": await _press(user, body["press"])})
        message = await _send_message(user, body)
        return web.json_response({"ok": True, "message": message_view(message)})

    async def _say(self, user: SimUser, chat: SimChat, body: dict[str, Any]) -> ChatMessage:
        text = _text(body.get("text"))
        try:
            return await user.say(chat, text)
        except Refused as exc:
            raise BadInput(_refusal(exc), 403) from None

    async def _open(self, user: SimUser, button: Any) -> dict[str, Any]:
        """A URL button that starts the bot: the app opens the bot's private chat and sends
        /start with the link's payload, as Telegram does."""
        if not isinstance(button, dict) or not isinstance(button.get("text"), str):
            raise BadInput("open: {chat?, message_id, text} of a URL button")
        where = button.get("chat")
        chat = user.chat if where is None else self._chat(where).group.chat
        message_id = button.get("message_id")
        message = chat.messages.get(message_id) if isinstance(message_id, int) else None
        if message is None or message.deleted:
            raise BadInput("that message is not shown any more", 409)
        try:
            sent = await user.open_button(message, button["text"])
        except LookupError:
            raise BadInput("that button is not shown any more", 409) from None
        except ValueError:
            raise BadInput("that button opens a web page, not a bot") from None
        return {
            "ok": True,
            "chat": chat_key(self.api.bot().id, user.id),
            "message": message_view(sent),
        }


def _text(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise BadInput("text: type something")
    if len(text.strip()) > MAX_TEXT:
        raise BadInput(f"text: at most {MAX_TEXT} characters")
    # Telegram clients trim what is typed before sending it.
    return text.strip()


def _refusal(exc: Refused) -> str:
    reason = str(exc)
    return f"{REFUSALS.get(reason, 'Telegram refused')} ({reason})"


async def _send_message(user: SimUser, body: dict[str, Any]) -> ChatMessage:
    if "text" in body:
        return await user.send_text(_text(body["text"]))
    if "tap" in body:
        if not isinstance(body["tap"], str):
            raise BadInput("tap: the text of a keyboard button")
        try:
            return await user.tap(body["tap"])
        except LookupError:
            raise BadInput("that keyboard button is not shown any more", 409) from None
        except ValueError:
            raise BadInput("this user has no phone number to share") from None
    if "contact" in body:
        return await _contact(user, body["contact"])
    if "sticker" in body:
        emoji = body["sticker"]
        if not isinstance(emoji, str) or not 0 < len(emoji) <= 8:
            raise BadInput("sticker: one emoji")
        return await user.send_sticker(emoji)
    raise BadInput("expected one of text, tap, press, contact, sticker")


async def _contact(user: SimUser, contact: Any) -> ChatMessage:
    if not isinstance(contact, dict):
        raise BadInput("contact: {} for one's own, or {phone_number, first_name?}")
    if contact.get("phone_number") in (None, ""):
        if user.phone_number is None:
            raise BadInput("this user has no phone number to share")
        return await user.send_contact(user_id=user.id)
    # Someone else's card from the address book: Telegram attaches their id only when they
    # are one of the sender's contacts on Telegram, and never the sender's own.
    return await user.send_contact(
        phone_number=_phone(contact["phone_number"]),
        user_id=None,
        first_name=_name(contact.get("first_name"), "first_name") or "Contact",
    )


async def _press(user: SimUser, press: Any) -> str | None:
    if not isinstance(press, dict) or not isinstance(press.get("text"), str):
        raise BadInput("press: {message_id, text} of an inline button")
    message_id = press.get("message_id")
    if message_id is not None and not isinstance(message_id, int):
        raise BadInput("press: message_id must be a number")
    try:
        return await user.press(press["text"], PRESS_TIMEOUT, message_id=message_id)
    except NoAnswer:
        raise BadInput("the bot did not answer the button press", 504) from None
    except LookupError:
        raise BadInput("that button is not shown any more", 409) from None
    except ValueError:
        raise BadInput("that button opens a link; it sends nothing to the bot") from None


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise BadInput("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadInput("the body must be a JSON object")
    return body


def _name(value: Any, field: str, *, required: bool = False) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise BadInput(f"{field}: required")
        return None
    if not isinstance(value, str) or len(value.strip()) > MAX_NAME:
        raise BadInput(f"{field}: text of at most {MAX_NAME} characters")
    return value.strip()


def _username(value: Any) -> str | None:
    if value is None or value == "":
        return None
    name = value.strip().removeprefix("@") if isinstance(value, str) else ""
    if not _USERNAME.fullmatch(name):
        raise BadInput("username: 5-32 letters, digits or _, starting with a letter")
    return name


def _phone(value: Any) -> str | None:
    """A phone number as Telegram keeps it on an account: digits with the country code."""
    if value is None or value == "":
        return None
    match = _PHONE.fullmatch(_PHONE_SEPARATORS.sub("", value)) if isinstance(value, str) else None
    if match is None:
        raise BadInput("phone_number: the full number with its country code, like +44 7400 123456")
    return f"+{match.group(1)}"


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    # The page shows bot text as text only; the policy backs that up if a bug ever tried more.
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    # Static files change with the package; a sandbox never needs them cached.
    response.headers.setdefault("Cache-Control", "no-store")
