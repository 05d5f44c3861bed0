"""The real aiogram bot, unmodified, against the Bot API stand-in: polling and webhooks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.filters import CommandStart
from aiogram.methods import TelegramMethod
from aiogram.types import (
    BotCommand,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from bot.sandbox.botapi import BotApiServer, Event, NoAnswer

PHONE = "+15555550123"
SECRET = "hook-Secret_1"
RESEND = InlineKeyboardMarkup(
    inline_keyboard=[[InlineKeyboardButton(text="Resend code", callback_data="resend")]]
)


@pytest.fixture
async def api() -> AsyncIterator[BotApiServer]:
    server = BotApiServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def bot(api: BotApiServer) -> AsyncIterator[Bot]:
    token = api.create_bot(username="passgram_bot", first_name="Passgram")
    session = AiohttpSession(api=TelegramAPIServer.from_base(api.url))
    real = Bot(token, session=session)
    yield real
    await real.session.close()


def sign_in_router(update_ids: list[int]) -> Router:
    """A small sign-in conversation of the kind Passgram has."""
    router = Router()
    share = ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text="Share phone", request_contact=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )

    @router.message(CommandStart())
    async def start(message: Message, event_update: Update) -> None:
        update_ids.append(event_update.update_id)
        await message.answer("Welcome! Share your phone to sign in.", reply_markup=share)

    @router.message(F.contact)
    async def contact(message: Message) -> None:
        assert message.contact is not None and message.from_user is not None
        if message.contact.user_id != message.from_user.id:
            await message.answer("Please share your own number.")
            return
        sent = f"Code sent to <code>{message.contact.phone_number}</code>"
        await message.answer(sent, parse_mode="HTML", reply_markup=ReplyKeyboardRemove())
        await message.answer("Enter the code.", reply_markup=RESEND)

    @router.callback_query(F.data == "resend")
    async def resend(query: CallbackQuery) -> None:
        await query.answer("Code sent again")
        assert isinstance(query.message, Message)
        await query.message.edit_text("Enter the new code.", reply_markup=RESEND)

    @router.message(F.sticker | F.photo)
    async def media(message: Message) -> None:
        kind = "sticker" if message.sticker else f"photo ({len(message.photo or [])} sizes)"
        await message.answer(f"I need the code, not a {kind}.")

    return router


@asynccontextmanager
async def polling(api: BotApiServer, bot: Bot, router: Router) -> AsyncIterator[None]:
    dp = Dispatcher()
    dp.include_router(router)
    task = asyncio.create_task(dp.start_polling(bot, handle_signals=False))
    await api.wait_for_call("getUpdates")
    try:
        yield
    finally:
        await dp.stop_polling()
        await task


@asynccontextmanager
async def webhook(
    api: BotApiServer,
    bot: Bot,
    router: Router,
    *,
    in_background: bool = True,
    seen: list[web.Request] | None = None,
    answer_first: int | None = None,
) -> AsyncIterator[str]:
    """The bot behind aiogram's own webhook handler; `answer_first` replaces its first answer."""
    dp = Dispatcher()
    dp.include_router(router)

    @web.middleware
    async def spy(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if seen is not None:
            seen.append(request)
        if answer_first is not None and len(seen or []) == 1:
            return web.Response(status=answer_first)
        return await handler(request)

    app = web.Application(middlewares=[spy])
    SimpleRequestHandler(
        dispatcher=dp, bot=bot, secret_token=SECRET, handle_in_background=in_background
    ).register(app, path="/hook")
    setup_application(app, dp, bot=bot)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    await bot.set_webhook(url, secret_token=SECRET)
    try:
        yield url
    finally:
        await bot.delete_webhook()
        await runner.cleanup()


# --- polling ----------------------------------------------------------------------------------


async def test_polling_sign_in_with_keyboard_contact_and_button(
    api: BotApiServer, bot: Bot
) -> None:
    alice = api.user("Alice", username="alice", phone_number=PHONE)
    async with polling(api, bot, sign_in_router([])):
        await alice.start()
        welcome = await alice.next_message()
        assert welcome.text == "Welcome! Share your phone to sign in."
        assert alice.keyboard == [[{"text": "Share phone", "request_contact": True}]]

        shared = await alice.tap("Share phone")
        assert shared.payload["contact"] == {
            "phone_number": PHONE,
            "first_name": "Alice",
            "user_id": alice.id,
        }
        assert (await alice.next_message()).text == f"Code sent to {PHONE}"
        assert alice.keyboard is None

        prompt = await alice.next_message()
        assert (prompt.text, prompt.buttons[0][0]["text"]) == ("Enter the code.", "Resend code")
        assert await alice.press("Resend code") == "Code sent again"
        await alice.wait_for(lambda m: m.edited, what="an edited message")
        assert (prompt.text, prompt.edited) == ("Enter the new code.", True)
        assert [m.text for m in alice.history if m.from_bot][-1] == "Enter the new code."


async def test_contacts_of_other_people_and_other_message_kinds(
    api: BotApiServer, bot: Bot
) -> None:
    alice = api.user("Alice", phone_number=PHONE)
    bob = api.user("Bob", phone_number="+15555550199")
    async with polling(api, bot, sign_in_router([])):
        await alice.send_contact(phone_number=bob.phone_number, user_id=bob.id, first_name="Bob")
        assert (await alice.next_message()).text == "Please share your own number."
        await alice.send_contact(phone_number="+15555550100", user_id=None)
        assert (await alice.next_message()).text == "Please share your own number."
        await alice.send_sticker()
        assert (await alice.next_message()).text == "I need the code, not a sticker."
        await alice.send_photo(caption="my code")
        assert (await alice.next_message()).text == "I need the code, not a photo (3 sizes)."


async def test_a_resent_update_keeps_its_update_id(api: BotApiServer, bot: Bot) -> None:
    alice = api.user("Alice")
    update_ids: list[int] = []
    async with polling(api, bot, sign_in_router(update_ids)):
        await alice.start()
        await alice.next_message()
        await alice.resend_last_update()
        await alice.next_message()
        await alice.send_text("/start again")
        await alice.next_message()
    assert update_ids == [1, 1, 2]


async def test_waiting_for_silence_names_what_the_bot_did(api: BotApiServer, bot: Bot) -> None:
    alice = api.user("Alice")
    api.fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user")
    async with polling(api, bot, sign_in_router([])):
        await alice.start()
        with pytest.raises(NoAnswer, match="sendMessage -> Forbidden: bot was blocked"):
            await alice.next_message(timeout=0.5)


# --- direct calls from aiogram's Bot ------------------------------------------------------------


async def test_retry_after_reaches_aiogram(api: BotApiServer, bot: Bot) -> None:
    alice = api.user("Alice")
    await alice.start()
    api.fail_next("sendMessage", 429, retry_after=3)
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(alice.id, "too fast")
    assert caught.value.retry_after == 3
    await bot.send_message(alice.id, "later")
    assert (await alice.next_message()).text == "later"


async def test_edit_and_delete_answer_like_telegram(api: BotApiServer, bot: Bot) -> None:
    alice = api.user("Alice")
    bob = api.user("Bob")
    start = await alice.start()
    sent = await bot.send_message(alice.id, "Code: 1", reply_markup=RESEND)

    with pytest.raises(TelegramBadRequest, match="message is not modified: specified new"):
        await bot.edit_message_text("Code: 1", chat_id=alice.id, message_id=sent.message_id,
                                    reply_markup=RESEND)  # fmt: skip
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=alice.id, message_id=999)
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(bob.id, "hello stranger")

    await bot.edit_message_reply_markup(chat_id=alice.id, message_id=sent.message_id)
    assert (await alice.next_message()).buttons == []
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(chat_id=alice.id, message_id=sent.message_id)

    assert await bot.delete_message(alice.id, start.message_id) is True
    assert await bot.delete_message(alice.id, sent.message_id) is True
    assert [(m.from_bot, m.deleted) for m in alice.history] == [(False, True), (True, True)]
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(alice.id, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="query is too old and response timeout expired"):
        await bot.answer_callback_query("4242")


async def test_commands_actions_and_the_event_stream(api: BotApiServer, bot: Bot) -> None:
    events: list[Event] = []
    unsubscribe = api.subscribe(events.append)
    alice = api.user("Alice")
    await alice.start()
    commands = [BotCommand(command="start", description="Sign in")]
    assert await bot.set_my_commands(commands) is True
    assert [c.model_dump() for c in await bot.get_my_commands()] == [
        c.model_dump() for c in commands
    ]
    assert await bot.send_chat_action(alice.id, "typing") is True
    sent = await bot.send_message(alice.id, "<b>Code</b> 123456", parse_mode="HTML")
    assert sent.text == "Code 123456"
    assert sent.entities is not None and sent.entities[0].type == "bold"
    await bot.delete_message(alice.id, sent.message_id)
    unsubscribe()
    await bot.delete_my_commands()
    assert await bot.get_my_commands() == []
    await bot.send_message(alice.id, "unseen by the stream")
    assert [(e["type"], e.get("from_bot")) for e in events] == [
        ("message", False),
        ("chat_action", None),
        ("message", True),
        ("deleted", None),
    ]


# --- webhooks -----------------------------------------------------------------------------------


async def test_webhook_delivery_sends_json_and_the_secret(api: BotApiServer, bot: Bot) -> None:
    alice = api.user("Alice", phone_number=PHONE)
    seen: list[web.Request] = []
    async with webhook(api, bot, sign_in_router([]), seen=seen):
        await alice.start()
        assert (await alice.next_message()).text == "Welcome! Share your phone to sign in."
        await alice.tap("Share phone")
        assert (await alice.next_message()).text == f"Code sent to {PHONE}"
        await alice.next_message()
        assert await alice.press("Resend code") == "Code sent again"
    assert {r.headers["Content-Type"] for r in seen} == {"application/json"}
    assert {r.headers["X-Telegram-Bot-Api-Secret-Token"] for r in seen} == {SECRET}


async def test_webhook_failure_is_retried_and_reported(api: BotApiServer, bot: Bot) -> None:
    alice = api.user("Alice")
    seen: list[web.Request] = []
    async with webhook(api, bot, sign_in_router([]), seen=seen, answer_first=500):
        await alice.start()
        assert (await alice.next_message()).text == "Welcome! Share your phone to sign in."
        info = await bot.get_webhook_info()
    assert len(seen) == 2
    assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
    assert info.last_error_date is not None and info.pending_update_count == 0


async def test_webhook_answer_carries_a_method_the_server_runs(api: BotApiServer, bot: Bot) -> None:
    router = Router()

    @router.message()
    async def echo(message: Message) -> TelegramMethod[Any]:
        return message.answer(f"echo: {message.text}", reply_markup=RESEND)

    @router.callback_query()
    async def pressed(query: CallbackQuery) -> TelegramMethod[Any]:
        return query.answer("answered in the webhook reply")

    alice = api.user("Alice")
    async with webhook(api, bot, router, in_background=False):
        await alice.send_text("hello")
        assert (await alice.next_message()).text == "echo: hello"
        assert await alice.press("resend") == "answered in the webhook reply"
    assert [c.method for c in api.calls if c.via == "webhook"] == [
        "sendMessage",
        "answerCallbackQuery",
    ]


async def test_webhook_keeps_order_per_chat_and_runs_chats_side_by_side(
    api: BotApiServer, bot: Bot
) -> None:
    bob_handled = asyncio.Event()
    log: list[str] = []
    router = Router()

    @router.message()
    async def handle(message: Message) -> None:
        log.append(f"start {message.text}")
        if message.text == "alice 1":
            # Blocks alice's queue until bob's update has been handled on another connection.
            await asyncio.wait_for(bob_handled.wait(), 5)
        if message.text == "bob":
            bob_handled.set()
        log.append(f"end {message.text}")

    alice, bob = api.user("Alice"), api.user("Bob")
    async with webhook(api, bot, router, in_background=False):
        await alice.send_text("alice 1")
        await alice.send_text("alice 2")
        await bob.send_text("bob")
        await api.wait_until_delivered()
    assert log.index("end alice 1") < log.index("start alice 2")
    assert log.index("end bob") < log.index("end alice 1")
