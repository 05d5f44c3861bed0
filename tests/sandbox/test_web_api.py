"""The sandbox page's API against the stand-in: what the page is given is what the bot sent.

Each test runs the real sandbox assembly (`Sandbox`, as `passgram sandbox` does) on a free port,
and talks HTTP to it like the page does.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.sandbox.app import Sandbox, SandboxConfig
from bot.sandbox.botapi import ChatMessage, SimUser
from bot.sandbox.web.view import chat_key

EMAIL = "alice.archer@example.com"
SHARE = "📱 Share my phone number"


class Page:
    """What the page does over HTTP, plus the stand-in's users to wait on."""

    def __init__(self, sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        self.sandbox = sandbox
        self.http = http

    def user(self, first_name: str) -> SimUser:
        return next(u for u in self.sandbox.console.users.values() if u.first_name == first_name)

    async def state(self) -> dict[str, Any]:
        async with self.http.get("/api/state") as response:
            assert response.status == 200
            body: dict[str, Any] = await response.json()
            return body

    async def send(self, user: SimUser, body: dict[str, Any], status: int = 200) -> Any:
        async with self.http.post(f"/api/users/{user.id}/send", json=body) as response:
            assert response.status == status, await response.text()
            return await response.json()

    async def chat(self, user: SimUser) -> dict[str, Any]:
        key = chat_key(user.bot.id, user.chat.id)
        return next(c for c in (await self.state())["chats"] if c["key"] == key)

    async def say(self, user: SimUser, text: str) -> ChatMessage:
        """Type `text` and wait for the bot's next reply."""
        await self.send(user, {"text": text})
        return await user.next_message()


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxConfig(port=0, data_dir=tmp_path)) as running:
        yield running


@pytest.fixture
async def page(sandbox: Sandbox) -> AsyncIterator[Page]:
    async with aiohttp.ClientSession(base_url=sandbox.url) as http:
        yield Page(sandbox, http)


def texts(rows: list[list[dict[str, Any]]]) -> list[list[str]]:
    return [[str(b["text"]) for b in row] for row in rows]


def assert_shows(shown: dict[str, Any], sent: ChatMessage) -> None:
    """One message of the page's chat against the same message in the stand-in."""
    assert shown["id"] == sent.message_id
    assert shown["from_bot"] == sent.from_bot
    assert shown["text"] == sent.text
    assert shown["entities"] == sent.payload.get("entities", [])
    assert texts(shown["buttons"]) == texts(sent.buttons)
    assert shown["edited"] == sent.edited
    assert shown["deleted"] == sent.deleted


async def test_state_has_the_premade_users_each_with_a_chat_with_the_bot(page: Page) -> None:
    state = await page.state()
    assert state["app_name"] == "Acme"
    assert state["bot"]["first_name"] == "Acme sign-in"
    users = {u["first_name"]: u for u in state["users"]}
    assert set(users) == {"Alice", "Bob"}
    assert all(u["phone_number"].startswith("+") for u in users.values())
    chats = {c["members"][0]: c for c in state["chats"]}
    for user in users.values():
        chat = chats[user["id"]]
        assert chat["type"] == "private"
        assert chat["title"] == "Acme sign-in"
        assert chat["opened"] is False and chat["messages"] == []
    assert state["outbox"] == []


async def test_the_chat_shows_exactly_what_the_bot_sent(page: Page) -> None:
    alice = page.user("Alice")
    welcome = await page.say(alice, "/start")
    sent = await page.say(alice, EMAIL)
    assert "a•••@example.com" in (sent.text or "")

    chat = await page.chat(alice)
    assert chat["opened"] is True
    assert [m["id"] for m in chat["messages"]] == [m.message_id for m in alice.history]
    for shown, message in zip(chat["messages"], alice.history, strict=True):
        assert_shows(shown, message)
    # The bot's own calls, as it made them: the page shows each text with its buttons.
    calls = [c for c in page.sandbox.botapi.calls_to("sendMessage") if c.ok]
    from_bot = [m for m in chat["messages"] if m["from_bot"]]
    assert [m["text"] for m in from_bot] == [c.params["text"] for c in calls]
    markup = json.loads(calls[1].params["reply_markup"])
    assert texts(from_bot[1]["buttons"]) == texts(markup["inline_keyboard"])
    assert {b["kind"] for row in from_bot[1]["buttons"] for b in row} == {"callback"}
    # The welcome's reply keyboard stays under the input field: the contact button.
    assert welcome.text is not None and "sign-in bot for Acme" in welcome.text
    assert chat["keyboard"] == [[{"text": SHARE, "request_contact": True}]]
    assert alice.keyboard == [[{"text": SHARE, "request_contact": True}]]
    # A command typed by the user carries its entity, as Telegram sends it.
    assert chat["messages"][0]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]


async def test_outbox_has_the_code_and_typing_it_signs_in(page: Page) -> None:
    alice = page.user("Alice")
    await page.say(alice, EMAIL)
    outbox = (await page.state())["outbox"]
    assert len(outbox) == 1
    entry = outbox[0]
    assert entry["kind"] == "email"
    assert entry["to"] == EMAIL and entry["display"] == EMAIL
    assert entry["masked"] == "a•••@example.com"
    assert entry["channel"] == "log"
    assert re.fullmatch(r"\d{6}", entry["code"])
    assert entry["code"] in entry["text"] and "Acme" in entry["text"]

    typed = await page.send(alice, {"text": entry["code"]})
    done = await alice.next_message()
    assert (done.text or "").startswith(f"✅ You're signed in to Acme as {EMAIL}")
    await alice.wait_for(lambda m: m.message_id == typed["message"]["id"] and m.deleted)

    shown = {m["id"]: m for m in (await page.chat(alice))["messages"]}
    assert shown[typed["message"]["id"]]["deleted"] is True
    assert shown[typed["message"]["id"]]["text"] == entry["code"]
    assert shown[done.message_id]["text"] == done.text
    deleted = [int(c.params["message_id"]) for c in page.sandbox.botapi.calls_to("deleteMessage")]
    assert deleted == [typed["message"]["id"]]


async def test_a_wrong_code_says_how_many_tries_are_left(page: Page) -> None:
    bob = page.user("Bob")
    await page.say(bob, "bob@example.com")
    code = (await page.state())["outbox"][0]["code"]
    wrong = "000000" if code != "000000" else "111111"
    reply = await page.say(bob, wrong)
    assert reply.text == "That code isn't right. 4 tries left."
    last = (await page.chat(bob))["messages"][-1]
    assert last["text"] == "That code isn't right. 4 tries left." and last["from_bot"]


async def test_pressing_a_button_returns_the_answer_and_the_edit_shows(page: Page) -> None:
    alice = page.user("Alice")
    sent = await page.say(alice, EMAIL)
    pressed = await page.send(
        alice, {"press": {"message_id": sent.message_id, "text": "Resend code (in 30 s)"}}
    )
    assert pressed["answer"].startswith("You can ask for a new code in")

    await page.send(alice, {"press": {"message_id": sent.message_id, "text": "Cancel"}})
    cancelled = await alice.next_message()
    assert (cancelled.text or "").startswith("Cancelled")
    edited = await alice.wait_for(lambda m: m.message_id == sent.message_id and m.edited)
    assert edited.buttons == []

    shown = {m["id"]: m for m in (await page.chat(alice))["messages"]}
    assert_shows(shown[sent.message_id], edited)
    assert shown[sent.message_id]["edited"] is True
    assert shown[sent.message_id]["edit_date"] is not None
    assert shown[sent.message_id]["buttons"] == []
    edits = page.sandbox.botapi.calls_to("editMessageReplyMarkup")
    assert [int(c.params["message_id"]) for c in edits] == [sent.message_id]
    # The button is gone from the chat, so pressing it again is refused, not sent.
    gone = await page.send(
        alice, {"press": {"message_id": sent.message_id, "text": "Cancel"}}, status=409
    )
    assert "not shown" in gone["error"]


async def test_the_contact_button_shares_the_users_own_number(page: Page) -> None:
    bob = page.user("Bob")
    await page.say(bob, "/start")
    await page.send(bob, {"tap": SHARE})
    sent = await bob.next_message()
    assert "+1 ••• ••• 0123" in (sent.text or "")

    chat = await page.chat(bob)
    contact = chat["messages"][-2]
    assert contact["kind"] == "contact" and contact["from_bot"] is False
    assert contact["contact"]["user_id"] == bob.id
    assert contact["contact"]["phone_number"] == bob.phone_number == "+12015550123"
    # A one-time keyboard is gone once used, as in Telegram.
    assert chat["keyboard"] is None and bob.keyboard is None
    entry = (await page.state())["outbox"][-1]
    assert (entry["kind"], entry["to"], entry["masked"]) == (
        "phone",
        "+12015550123",
        "+1 ••• ••• 0123",
    )


async def test_someone_elses_contact_is_refused(page: Page) -> None:
    alice = page.user("Alice")
    await page.say(alice, "/start")
    await page.send(alice, {"contact": {"phone_number": "+49 1512 3456789", "first_name": "Sam"}})
    refused = await alice.next_message()
    assert (refused.text or "").startswith("That contact isn't you")
    shown = (await page.chat(alice))["messages"][-2]["contact"]
    assert shown == {
        "phone_number": "+4915123456789",
        "first_name": "Sam",
        "last_name": None,
        "user_id": None,
    }
    assert (await page.state())["outbox"] == []


async def test_a_new_user_can_be_created_and_played(page: Page) -> None:
    body = {"first_name": " Cy ", "username": "@cy_young", "phone_number": "+44 7400 123 457"}
    async with page.http.post("/api/users", json=body) as response:
        assert response.status == 201
        created = await response.json()
    assert created["name"] == "Cy"
    assert created["username"] == "cy_young"
    assert created["phone_number"] == "+447400123457"
    state = await page.state()
    assert created in state["users"]
    cy = page.sandbox.console.users[created["id"]]
    assert any(c["members"] == [cy.id] for c in state["chats"])
    welcome = await page.say(cy, "/start")
    assert "sign-in bot for Acme" in (welcome.text or "")


async def test_events_start_with_the_state_then_carry_every_change(page: Page) -> None:
    alice = page.user("Alice")
    async with page.http.get("/api/events") as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        events = sse(stream)
        first = await anext(events)
        assert first["type"] == "state"
        assert first["users"] == (await page.state())["users"]

        await page.send(alice, {"text": EMAIL})
        seen: list[dict[str, Any]] = []
        while not any(e["type"] == "message" and e["message"]["from_bot"] for e in seen):
            seen.append(await anext(events))
        async with page.http.post("/api/users", json={"first_name": "Di"}) as response:
            assert response.status == 201
        while seen[-1]["type"] != "user":
            seen.append(await anext(events))

    kinds = [e["type"] for e in seen]
    assert kinds.index("outbox") < max(i for i, k in enumerate(kinds) if k == "message")
    assert seen[-1]["user"]["first_name"] == "Di"
    chat = await page.chat(alice)
    messages = [e["message"] for e in seen if e["type"] == "message"]
    assert messages == chat["messages"]
    assert {e["chat"]["key"] for e in seen if e["type"] == "message"} == {chat["key"]}
    outbox = [e["entry"] for e in seen if e["type"] == "outbox"]
    assert outbox == (await page.state())["outbox"]


async def sse(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """The data of each event on a server-sent event stream."""
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("data: "):
            yield json.loads(line.removeprefix("data: "))


async def test_the_page_and_its_files_are_served(page: Page) -> None:
    async with page.http.get("/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        html = await response.text()
        assert "Content-Security-Policy" in response.headers
        assert "script-src" not in response.headers["Content-Security-Policy"]  # default-src
    for asset, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        assert f"/static/{asset}" in html
        async with page.http.get(f"/static/{asset}") as response:
            assert response.status == 200
            assert kind in response.content_type
    async with page.http.get("/static/../server.py") as response:
        assert response.status in (403, 404)


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/api/users", {}, 400, "first_name"),
        ("/api/users", {"first_name": "X" * 65}, 400, "first_name"),
        ("/api/users", {"first_name": "Ed", "username": "e d"}, 400, "username"),
        ("/api/users", {"first_name": "Ed", "phone_number": "call me"}, 400, "phone_number"),
        ("/api/users", [1, 2], 400, "JSON object"),
        ("/api/users/42/send", {"text": "hi"}, 404, "no such user"),
        ("/api/users/{alice}/send", {"text": "   "}, 400, "text"),
        ("/api/users/{alice}/send", {"text": "x" * 4097}, 400, "4096"),
        ("/api/users/{alice}/send", {"shout": "hi"}, 400, "expected one of"),
        ("/api/users/{alice}/send", {"tap": "No such button"}, 409, "not shown"),
        ("/api/users/{alice}/send", {"press": {"text": "Nothing"}}, 409, "not shown"),
        ("/api/users/{alice}/send", {"press": "Cancel"}, 400, "press"),
        ("/api/users/{alice}/send", {"contact": "mine"}, 400, "contact"),
    ],
)
async def test_bad_requests_get_a_reason(
    page: Page, path: str, body: Any, status: int, error: str
) -> None:
    path = path.format(alice=page.user("Alice").id)
    async with page.http.post(path, json=body) as response:
        assert response.status == status
        assert error in (await response.json())["error"]


async def test_only_json_from_this_machine_is_taken(page: Page) -> None:
    alice = page.user("Alice")
    # A form or text/plain post is what another site could make a browser send.
    async with page.http.post(f"/api/users/{alice.id}/send", data="text=hi") as response:
        assert response.status == 415
    async with page.http.post(
        f"/api/users/{alice.id}/send", data="{", headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 400
    # A name that resolves here but isn't this machine's: the DNS rebinding case.
    async with page.http.get("/api/state", headers={"Host": "attacker.example"}) as response:
        assert response.status == 403
    assert alice.history == []


async def test_a_user_without_a_phone_number_is_told_so(page: Page) -> None:
    async with page.http.post("/api/users", json={"first_name": "Nophone"}) as response:
        user = page.sandbox.console.users[(await response.json())["id"]]
    await page.say(user, "/start")
    refused = await page.send(user, {"tap": SHARE}, status=400)
    assert "no phone number" in refused["error"]
    refused = await page.send(user, {"contact": {}}, status=400)
    assert "no phone number" in refused["error"]


async def test_the_developers_own_delivery_settings_are_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Were these honoured, a sandbox code would go to a real inbox (or fail to).
    monkeypatch.setenv("SMTP_URL", "smtp://127.0.0.1:9")
    monkeypatch.setenv("EMAIL_FROM", "someone@example.com")
    monkeypatch.setenv("WEBHOOK_URL", "https://example.com/hook")
    async with Sandbox(SandboxConfig(port=0, data_dir=tmp_path)) as sandbox:
        alice = next(iter(sandbox.console.users.values()))
        await alice.send_text(EMAIL)
        sent = await alice.next_message()
        assert "development log" in (sent.text or "")
        assert [e.to.value for e in sandbox.outbox.entries] == [EMAIL]


async def test_with_the_clerk_double_codes_from_clerk_reach_the_outbox(tmp_path: Path) -> None:
    config = SandboxConfig(port=0, data_dir=tmp_path, backend="clerk-double")
    async with (
        Sandbox(config) as sandbox,
        aiohttp.ClientSession(base_url=sandbox.url) as http,
    ):
        page = Page(sandbox, http)
        alice = page.user("Alice")
        sent = await page.say(alice, EMAIL)
        assert "a•••@example.com" in (sent.text or "")
        assert sandbox.clerk is not None
        entry = (await page.state())["outbox"][-1]
        assert (entry["to"], entry["kind"], entry["channel"]) == (EMAIL, "email", "clerk double")
        assert entry["code"] == sandbox.clerk.last_code(EMAIL)

        done = await page.say(alice, entry["code"])
        assert "signed in to Acme" in (done.text or "")
        assert sandbox.clerk.find_user(EMAIL) is not None


# --- groups and channels ---------------------------------------------------------------------


async def new_chat(page: Page, owner: SimUser, **body: Any) -> dict[str, Any]:
    async with page.http.post(f"/api/users/{owner.id}/chats", json=body) as response:
        assert response.status == 201, await response.text()
        chat: dict[str, Any] = await response.json()
        return chat


async def act(page: Page, user: SimUser, chat_id: int, action: str, status: int = 200) -> Any:
    path = f"/api/users/{user.id}/chats/{chat_id}/{action}"
    async with page.http.post(path, json={}) as response:
        assert response.status == status, await response.text()
        return await response.json()


def standing(chat: dict[str, Any], user: SimUser) -> dict[str, Any]:
    return next(p for p in chat["people"] if p["id"] == user.id)


async def test_a_gated_group_from_the_page(page: Page) -> None:
    alice, bob = page.user("Alice"), page.user("Bob")
    api = page.sandbox.botapi
    made = await new_chat(page, alice, title="Book club", kind="group")
    assert (made["type"], made["title"], made["bot_status"]) == ("supergroup", "Book club", "left")
    assert standing(made, alice)["status"] == "creator"
    group = api.chat(made["id"])

    shown = await act(page, alice, group.id, "bot")
    assert shown["bot_status"] == "administrator"
    rights = group.member(api.bot())
    assert {k for k, v in rights.items() if k.startswith("can_") and v is True} >= {
        "can_invite_users", "can_restrict_members", "can_delete_messages",
    }  # fmt: skip
    assert rights["can_promote_members"] is False  # only what the gate asks for

    await page.send(alice, {"chat": group.id, "text": "/gate mode members"})
    await group.wait_for(lambda m: m.from_bot and "Mode: members" in (m.text or ""))
    await page.send(alice, {"chat": group.id, "text": "/gate on"})
    await group.wait_for(lambda m: m.from_bot and "The gate is on" in (m.text or ""))

    await act(page, bob, group.id, "join")
    await api.wait_for_call("restrictChatMember")
    welcome = await group.wait_for(lambda m: m.from_bot and "Welcome, Bob" in (m.text or ""))
    state = next(c for c in (await page.state())["chats"] if c["id"] == group.id)
    bob_shown = standing(state, bob)
    assert (bob_shown["name"], bob_shown["status"], bob_shown["in_chat"]) == (
        "Bob Baker",
        "restricted",
        True,
    )
    assert bob_shown["can_write"] is False
    refused = await page.send(bob, {"chat": group.id, "text": "Hello?"}, status=403)
    assert "CHAT_WRITE_FORBIDDEN" in refused["error"]
    assert not any(m.text == "Hello?" for m in group.messages)

    shown_welcome = next(m for m in state["messages"] if m["id"] == welcome.message_id)
    assert shown_welcome["sender_name"] == "Acme sign-in"
    joined = [m["text"] for m in state["messages"] if m["kind"] == "service"]
    assert joined == ["Acme sign-in joined the group", "Bob Baker joined the group"]
    opened = await page.send(
        bob,
        {"open": {"chat": group.id, "message_id": welcome.message_id, "text": "Sign in to write"}},
    )
    assert opened["chat"] == chat_key(bob.bot.id, bob.id)
    assert opened["message"]["text"].startswith("/start ")
    assert bob.history[0].text == opened["message"]["text"]
    await bob.next_message()  # the bot asks Bob how to sign in


async def test_a_chat_that_takes_requests_shows_the_request_live(page: Page) -> None:
    alice, bob = page.user("Alice"), page.user("Bob")
    async with page.http.get("/api/events") as stream:
        events = sse(stream)
        assert (await anext(events))["type"] == "state"
        made = await new_chat(page, alice, title="Acme News", kind="channel", join_by_request=True)
        created = await anext(events)
        assert (created["type"], created["chat"]["type"]) == ("chat", "channel")
        shown = await act(page, bob, made["id"], "join")
        assert (standing(shown, bob)["status"], standing(shown, bob)["asked"]) == ("left", True)
        while True:
            event = await anext(events)
            if event["type"] == "chat" and any(p["id"] == bob.id for p in event["chat"]["people"]):
                break
    assert standing(event["chat"], bob)["asked"] is True
    assert event["chat"]["members"] == [alice.id]
    # Asking again while the request waits is the same request, as in the app.
    again = await act(page, bob, made["id"], "join")
    assert standing(again, bob)["asked"] is True


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/api/users/{alice}/chats", {"title": " "}, 400, "title"),
        ("/api/users/{alice}/chats", {"title": "X", "kind": "forum"}, 400, "kind"),
        ("/api/users/{alice}/chats", {"title": "X", "join_by_request": "yes"}, 400, "true"),
        ("/api/users/{alice}/chats/-1/join", {}, 404, "no such group"),
        ("/api/users/{bob}/chats/{chat}/bot", {}, 403, "administrators"),
        ("/api/users/{bob}/chats/{chat}/leave", {}, 403, "USER_NOT_PARTICIPANT"),
        ("/api/users/{alice}/chats/{chat}/dance", {}, 404, "no such action"),
        ("/api/users/{bob}/send", {"chat": "{chat}", "text": "hi"}, 403, "CHAT_WRITE_FORBIDDEN"),
        ("/api/users/{bob}/send", {"open": {"text": "Go"}}, 409, "not shown"),
        ("/api/users/{bob}/send", {"open": "Go"}, 400, "open"),
    ],
)
async def test_bad_chat_requests_get_a_reason(
    page: Page, path: str, body: Any, status: int, error: str
) -> None:
    alice, bob = page.user("Alice"), page.user("Bob")
    chat = await new_chat(page, alice, title="Book club")
    ids = {"alice": alice.id, "bob": bob.id, "chat": chat["id"]}
    if body.get("chat") == "{chat}":
        body = {**body, "chat": chat["id"]}
    async with page.http.post(path.format(**ids), json=body) as response:
        assert response.status == status
        assert error in (await response.json())["error"]
