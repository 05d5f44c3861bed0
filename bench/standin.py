"""The Bot API stand-in in a process of its own, with a loopback driver endpoint for the bench.

The bot under test talks to the stand-in's Bot API port as it would to Telegram; the bench plays
the people through the driver port (JSON over HTTP), so neither shares a process or an event
loop with the bot. Started as `python -m bench.standin`; prints one JSON line with both URLs.

POST /bots    {username}                       -> {token}
POST /users   {count}                          -> {ids}: new accounts talking to the first bot
POST /send    {user, text, timeout}            -> {text}: the bot's next new message in that chat
POST /channel {owner, limits}                  -> {chat_id}: a channel taking join requests, the
                                                  bot an admin; `limits` makes the stand-in answer
                                                  429 past Telegram's limits
POST /join    {chat_id, users}                 -> {asked}: each asks to join, all in one tick
GET  /join/{chat_id}                           -> {pending, approved, declined, messaged}
GET  /stats                                    -> calls made, 429s answered, busiest rate windows
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from aiohttp import web

from bot.sandbox.botapi import TELEGRAM_LIMITS, BotApiServer, NoAnswer, SimChat, SimUser


class Driver:
    def __init__(self, api: BotApiServer) -> None:
        self.api = api
        self.users: dict[int, SimUser] = {}
        self.channels: dict[int, SimChat] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/bots", self.bots)
        app.router.add_post("/users", self.create_users)
        app.router.add_post("/send", self.send)
        app.router.add_post("/channel", self.channel)
        app.router.add_post("/join", self.join)
        app.router.add_get("/join/{chat_id}", self.join_status)
        app.router.add_get("/stats", self.stats)

    async def bots(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"token": self.api.create_bot(username=body["username"])})

    async def create_users(self, request: web.Request) -> web.Response:
        body = await request.json()
        made = [self.api.user(first_name=f"User{n}") for n in range(int(body["count"]))]
        self.users.update((u.id, u) for u in made)
        return web.json_response({"ids": [u.id for u in made]})

    async def send(self, request: web.Request) -> web.Response:
        body = await request.json()
        user = self.users[int(body["user"])]
        await user.send_text(body["text"])
        try:
            reply = await user.next_message(timeout=float(body.get("timeout", 30)))
        except NoAnswer:
            return web.json_response({"error": "no answer"}, status=504)
        return web.json_response({"text": reply.text or ""})

    async def channel(self, request: web.Request) -> web.Response:
        body = await request.json()
        owner = self.users[int(body["owner"])]
        channel = self.api.create_channel("Launch", owner=owner, join_by_request=True)
        channel.add_bot()
        if body.get("limits"):
            self.api.limit_rates(TELEGRAM_LIMITS)
        self.channels[channel.id] = channel
        return web.json_response({"chat_id": channel.id})

    async def join(self, request: web.Request) -> web.Response:
        body = await request.json()
        channel = self.channels[int(body["chat_id"])]
        for user_id in body["users"]:
            await self.users[int(user_id)].ask_to_join(channel)
        return web.json_response({"asked": len(body["users"])})

    async def join_status(self, request: web.Request) -> web.Response:
        channel = self.channels[int(request.match_info["chat_id"])]
        asked = channel.group.asked.values()
        counts = {"pending": 0, "approved": 0, "declined": 0}
        for join_request in asked:
            counts[join_request.state] += 1
        messaged = sum(1 for r in asked if any(m.from_bot for m in self.users[r.user_id].history))
        return web.json_response(counts | {"messaged": messaged})

    async def stats(self, _: web.Request) -> web.Response:
        calls = self.api.calls
        windows = self.api.rate_windows()
        limits = TELEGRAM_LIMITS
        body: dict[str, Any] = {
            "calls": len(calls),
            "too_many_requests": sum(1 for c in calls if c.error and c.error.code == 429),
            "busiest_second_overall": windows.overall,
            "busiest_second_private_chat": windows.private,
            "busiest_minute_group": windows.group,
            "within_telegram_limits": windows.within(limits),
        }
        return web.json_response(body)


async def main() -> None:
    api = BotApiServer()
    await api.start()
    app = web.Application()
    Driver(api).routes(app)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(json.dumps({"botapi": api.url, "driver": f"http://127.0.0.1:{port}"}), flush=True)
    # Runs until the bench closes our stdin.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()
    await api.stop()


if __name__ == "__main__":
    asyncio.run(main())
