"""The Bot API stand-in answers raw HTTP exactly as the official server does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web

from bot.sandbox.botapi import BotApiServer


@pytest.fixture
async def api() -> AsyncIterator[BotApiServer]:
    server = BotApiServer(clock=lambda: 1_800_000_000.0)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, url: str, **kwargs: Any
) -> tuple[int, dict[str, Any], Any]:
    async with http.post(url, **kwargs) as response:
        return response.status, dict(response.headers), await response.json()


async def test_bad_or_unknown_token_is_401(api: BotApiServer, http: aiohttp.ClientSession) -> None:
    token = api.create_bot()
    other = token.split(":")[0] + ":not-the-secret"
    for bad in (other, "12345:abc", "no-colon", ":abc"):
        status, _, body = await call(http, f"{api.url}/bot{bad}/getMe")
        assert status == 401
        assert body == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_unknown_method_is_404_and_names_ignore_case(
    api: BotApiServer, http: aiohttp.ClientSession
) -> None:
    token = api.create_bot(username="passgram_bot", first_name="Passgram")
    status, headers, body = await call(http, f"{api.url}/bot{token}/sendTelepathy")
    assert (status, headers["Content-Type"].split(";")[0]) == (404, "application/json")
    assert body == {"ok": False, "error_code": 404, "description": "Not Found: method not found"}

    status, _, body = await call(http, f"{api.url}/bot{token}/GETME")
    assert status == 200
    assert body["ok"] is True
    me = body["result"]
    assert me["id"] == int(token.split(":")[0])
    assert me["is_bot"] is True and me["username"] == "passgram_bot"
    assert me["can_read_all_group_messages"] is False  # getMe keeps its false flags

    status, _, body = await call(http, f"{api.url}/elsewhere")
    assert (status, body["description"]) == (404, "Not Found")


async def test_parameters_arrive_in_every_encoding(
    api: BotApiServer, http: aiohttp.ClientSession
) -> None:
    token = api.create_bot()
    alice = api.user("Alice")
    await alice.send_text("hi")
    url = f"{api.url}/bot{token}/sendMessage"
    keyboard = {"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]}
    form = aiohttp.FormData({"chat_id": str(alice.id), "text": "multipart"})
    form.add_field("reply_markup", json.dumps(keyboard))  # objects travel as JSON strings
    form.add_field("photo", b"\x89PNG", filename="x.png")  # a file field forces multipart
    attempts: list[dict[str, Any]] = [
        {"params": {"chat_id": alice.id, "text": "query"}},
        {"data": {"chat_id": str(alice.id), "text": "form", "reply_markup": json.dumps(keyboard)}},
        {"json": {"chat_id": alice.id, "text": "json", "reply_markup": keyboard}},
        {"data": form},
    ]
    for attempt in attempts:
        status, _, body = await call(http, url, **attempt)
        assert status == 200, body
    texts = [(m.text, m.buttons) for m in alice.history if m.from_bot]
    assert texts == [
        ("query", []),
        ("form", keyboard["inline_keyboard"]),
        ("json", keyboard["inline_keyboard"]),
        ("multipart", keyboard["inline_keyboard"]),
    ]


async def test_objects_leave_out_empty_optional_fields(
    api: BotApiServer, http: aiohttp.ClientSession
) -> None:
    token = api.create_bot()
    alice = api.user("Alice", username=None, language_code=None)
    await alice.send_text("hi")
    url = f"{api.url}/bot{token}/sendMessage"
    _, _, plain = await call(http, url, data={"chat_id": alice.id, "text": "plain"})
    assert plain["result"] == {
        "message_id": 2,
        "from": {
            "id": int(token.split(":")[0]),
            "is_bot": True,
            "first_name": "Passgram",
            "username": "passgram_bot",
        },
        "chat": {"id": alice.id, "type": "private", "first_name": "Alice"},
        "date": 1_800_000_000,
        "text": "plain",
    }
    _, _, guarded = await call(
        http, url, data={"chat_id": alice.id, "text": "secret", "protect_content": "true"}
    )
    assert guarded["result"]["has_protected_content"] is True


async def test_chat_not_found_until_the_user_writes(
    api: BotApiServer, http: aiohttp.ClientSession
) -> None:
    token = api.create_bot()
    alice = api.user("Alice")
    url = f"{api.url}/bot{token}/sendMessage"
    status, _, body = await call(http, url, data={"chat_id": alice.id, "text": "hello?"})
    assert (status, body["description"]) == (400, "Bad Request: chat not found")
    await alice.start()
    status, _, body = await call(http, url, data={"chat_id": alice.id, "text": ""})
    assert (status, body["description"]) == (400, "Bad Request: message text is empty")


async def test_injected_429_carries_retry_after(
    api: BotApiServer, http: aiohttp.ClientSession
) -> None:
    token = api.create_bot()
    api.fail_next("sendMessage", 429, retry_after=7)
    status, headers, body = await call(http, f"{api.url}/bot{token}/sendMessage")
    assert status == 429
    assert headers["Retry-After"] == "7"
    assert body == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7},
    }
    assert api.calls[-1].error is not None and api.calls[-1].error.code == 429


async def test_injected_server_errors_repeat_and_can_be_a_proxy_page(
    api: BotApiServer, http: aiohttp.ClientSession
) -> None:
    url = f"{api.url}/bot{api.create_bot()}/getMe"
    api.fail_next("getMe", 500, times=2)
    api.fail_next("getMe", 502, proxy_page=True)
    for _ in range(2):
        status, _, body = await call(http, url)
        assert (status, body) == (
            500,
            {"ok": False, "error_code": 500, "description": "Internal Server Error"},
        )
    async with http.post(url) as response:
        assert (response.status, response.content_type) == (502, "text/html")
        assert "<title>502 Bad Gateway</title>" in await response.text()
    status, _, body = await call(http, url)
    assert (status, body["ok"]) == (200, True)


async def test_webhook_and_getupdates_exclude_each_other(
    api: BotApiServer, http: aiohttp.ClientSession
) -> None:
    base = f"{api.url}/bot{api.create_bot()}"
    status, _, body = await call(http, f"{base}/deleteWebhook")
    assert body == {"ok": True, "result": True, "description": "Webhook is already deleted"}
    # Nothing listens on port 9; deliveries fail and wait to be retried.
    hook = {"url": "http://127.0.0.1:9/hook", "secret_token": "s3cret_-Token"}
    status, _, body = await call(http, f"{base}/setWebhook", data=hook)
    assert body == {"ok": True, "result": True, "description": "Webhook was set"}

    status, _, body = await call(http, f"{base}/getUpdates")
    assert status == 409
    assert body["description"] == (
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to "
        "delete the webhook first"
    )
    _, _, info = await call(http, f"{base}/getWebhookInfo")
    assert info["result"] == {
        "url": "http://127.0.0.1:9/hook",
        "has_custom_certificate": False,
        "pending_update_count": 0,
        "max_connections": 40,
    }
    await api.user("Alice").send_text("queued while nobody listens")
    _, _, body = await call(http, f"{base}/deleteWebhook", data={"drop_pending_updates": "true"})
    assert body["description"] == "Webhook was deleted"
    status, _, body = await call(http, f"{base}/getUpdates")
    assert (status, body) == (200, {"ok": True, "result": []})


@pytest.mark.parametrize(
    ("secret", "error"),
    [
        ("x" * 257, "secret token is too long"),
        ("no spaces", "secret token contains unallowed characters"),
    ],
)
async def test_webhook_secret_is_validated(
    api: BotApiServer, http: aiohttp.ClientSession, secret: str, error: str
) -> None:
    base = f"{api.url}/bot{api.create_bot()}"
    hook = {"url": "http://127.0.0.1:9/hook", "secret_token": secret}
    status, _, body = await call(http, f"{base}/setWebhook", data=hook)
    assert (status, body["description"]) == (400, f"Bad Request: {error}")


async def test_long_poll_wakes_on_a_new_update_and_offset_confirms(
    api: BotApiServer, http: aiohttp.ClientSession
) -> None:
    base = f"{api.url}/bot{api.create_bot()}"
    alice = api.user("Alice")
    waiting = asyncio.create_task(call(http, f"{base}/getUpdates", data={"timeout": "50"}))
    await api.wait_for_call("getUpdates")  # the poll is waiting before anything is queued
    await alice.send_text("/start hello")
    _, _, body = await asyncio.wait_for(waiting, 10)  # far under the 50 s poll: it was woken
    [update] = body["result"]
    assert update["update_id"] == 1
    assert update["message"]["text"] == "/start hello"
    assert update["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]

    await alice.send_text("two")
    await alice.send_text("three")
    _, _, body = await call(http, f"{base}/getUpdates", data={"offset": "2", "limit": "1"})
    assert [u["message"]["text"] for u in body["result"]] == ["two"]
    _, _, body = await call(http, f"{base}/getUpdates", data={"offset": "3"})
    assert [u["update_id"] for u in body["result"]] == [3]


async def test_allowed_updates_persist_between_polls(
    api: BotApiServer, http: aiohttp.ClientSession
) -> None:
    base = f"{api.url}/bot{api.create_bot()}"
    alice = api.user("Alice")
    only_buttons = {"allowed_updates": json.dumps(["callback_query"])}
    await call(http, f"{base}/getUpdates", data=only_buttons)
    await alice.send_text("ignored")
    _, _, body = await call(http, f"{base}/getUpdates")
    assert body["result"] == []


async def test_a_second_poll_ends_the_first(api: BotApiServer, http: aiohttp.ClientSession) -> None:
    base = f"{api.url}/bot{api.create_bot()}"
    first = asyncio.create_task(call(http, f"{base}/getUpdates", data={"timeout": "50"}))
    await api.wait_for_call("getUpdates")
    status, _, body = await call(http, f"{base}/getUpdates")
    assert (status, body["result"]) == (200, [])
    status, _, body = await asyncio.wait_for(first, 10)
    assert status == 409
    assert body["description"] == (
        "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
        "is running"
    )


async def test_methods_in_json_or_form_webhook_answers_are_run(
    api: BotApiServer, http: aiohttp.ClientSession
) -> None:
    base = f"{api.url}/bot{api.create_bot()}"
    alice = api.user("Alice")
    form = urlencode({"method": "SENDMESSAGE", "chat_id": alice.id, "text": "from a form"})
    answers = [
        web.json_response({"method": "sendMessage", "chat_id": alice.id, "text": "from json"}),
        web.Response(text=form, content_type="application/x-www-form-urlencoded"),
        web.json_response({"method": "getMe"}),  # the server ignores get* methods here
    ]

    async def hook(request: web.Request) -> web.Response:
        return answers.pop(0)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
        await call(http, f"{base}/setWebhook", data={"url": url})
        await alice.send_text("one")
        assert (await alice.next_message()).text == "from json"
        await alice.send_text("two")
        assert (await alice.next_message()).text == "from a form"
        await alice.send_text("three")
        await api.wait_until_delivered()
    finally:
        await runner.cleanup()
    assert [c.method for c in api.calls if c.via == "webhook"] == ["sendMessage", "sendMessage"]
    assert [m.text for m in alice.history if m.from_bot] == ["from json", "from a form"]
