"""The loopback Bot API server and the handle tests hold."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Callable

import aiohttp
from aiohttp import web

from . import (
    chat_methods,  # noqa: F401 - registers the group and channel methods
    groups,
)
from .chats import SimChat
from .methods import execute
from .rates import TELEGRAM_LIMITS, RateLimits, RateWindows, rate_windows
from .state import BotState, CallRecord, Clock, Person, Subscriber, World
from .users import SimUser
from .webhook import WebhookPusher
from .wire import ApiError, error_response, ok_response, read_params

_TOKEN = re.compile(r"(\d+):[A-Za-z0-9_-]+")


class BotApiServer:
    """Speaks the Telegram Bot API over HTTP on 127.0.0.1, with every user simulated.

    Several bots may live on one server; users talk to the first bot unless told otherwise.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        port: int = 0,
        webhook_retry_delay: float = 0.05,
        callback_ttl: float = 15.0,
    ) -> None:
        self.world = World(clock, callback_ttl)
        self.port = port
        self.webhook_retry_delay = webhook_retry_delay
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._pushers: dict[int, asyncio.Task[None]] = {}
        self._next_bot_id = 7_000_000_001
        self._next_user_id = 100_000_001
        self._next_supergroup_id = -1_001_000_000_001  # supergroups and channels: -100…
        self._next_group_id = -4_000_000_001

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        # Cancel a request's handler when its client goes away, as with an abandoned long poll.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        for bot in self.world.bots.values():
            self._start_pusher(bot)

    async def stop(self) -> None:
        self.world.closed = True
        for bot in self.world.bots.values():
            bot.signal.fire()
        await asyncio.gather(*self._pushers.values(), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> BotApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        if self._runner is None:
            raise RuntimeError("the server is not started")
        return f"http://127.0.0.1:{self.port}"

    # --- the world -------------------------------------------------------------------------

    def create_bot(
        self,
        username: str = "passgram_bot",
        first_name: str = "Passgram",
        *,
        bot_id: int | None = None,
    ) -> str:
        """Register a bot and return its token, `<id>:<secret>`."""
        if bot_id is None:
            bot_id = self._next_bot_id
            self._next_bot_id += 1
        if bot_id in self.world.bots:
            raise ValueError(f"bot {bot_id} exists")
        token = f"{bot_id}:{secrets.token_urlsafe(26)}"
        bot = self.world.bots[bot_id] = BotState(bot_id, token, username, first_name)
        if self._session is not None:
            self._start_pusher(bot)
        return token

    def user(
        self,
        first_name: str = "Alice",
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "en",
        phone_number: str | None = None,
        is_premium: bool = False,
        bot: str | None = None,
    ) -> SimUser:
        """A new Telegram account with a unique id, talking to `bot` (default: the first)."""
        person = Person(
            self._next_user_id,
            first_name,
            last_name,
            username,
            language_code,
            phone_number,
            is_premium,
        )
        self._next_user_id += 1
        self.world.people[person.id] = person
        sim = SimUser(self.world, person)
        return sim.with_bot(bot) if bot else sim

    def create_group(
        self,
        title: str = "Book club",
        *,
        owner: SimUser | Person,
        kind: groups.Kind = "supergroup",
        username: str | None = None,
        join_by_request: bool = False,
    ) -> SimChat:
        """A new group (a supergroup unless `kind="group"`) owned by `owner`; public when it has
        a `username`. Add the bot with `.add_bot()`."""
        if kind == "group":
            chat_id = self._next_group_id
            self._next_group_id -= 1
        else:
            chat_id = self._next_supergroup_id
            self._next_supergroup_id -= 1
        person = owner.person if isinstance(owner, SimUser) else owner
        group = groups.create(
            self.world,
            chat_id,
            kind,
            title,
            person,
            username=username,
            join_by_request=join_by_request,
        )
        return SimChat(self.world, group)

    def create_channel(
        self,
        title: str = "News",
        *,
        owner: SimUser | Person,
        username: str | None = None,
        join_by_request: bool = False,
    ) -> SimChat:
        return self.create_group(
            title, owner=owner, kind="channel", username=username, join_by_request=join_by_request
        )

    def chat(self, chat_id: int) -> SimChat:
        """The handle of a group or channel made earlier."""
        return SimChat(self.world, self.world.groups[chat_id])

    def rate_windows(self, token: str | None = None) -> RateWindows:
        """The most messages the bot (default: every bot) sent in any one second overall and
        into one private chat, and in any one minute into one group or channel."""
        bot_id = None if token is None else self.bot(token).id
        return rate_windows(self.world.calls, bot_id)

    def limit_rates(self, limits: RateLimits | None = TELEGRAM_LIMITS) -> None:
        """Answer messages past Telegram's limits with 429 and retry_after, as Telegram does
        (None: stop). Off until called."""
        self.world.rates.enforce(limits)

    def bot(self, token: str | None = None) -> BotState:
        """A bot's state (default: the first bot), for inspection."""
        if token is None:
            return self.world.default_bot()
        found = self._bot_for(token)
        if found is None:
            raise LookupError("unknown token")
        return found

    @property
    def calls(self) -> list[CallRecord]:
        """Every method call a bot made, oldest first."""
        return self.world.calls

    def calls_to(self, method: str) -> list[CallRecord]:
        return list(self.world.calls_by_method.get(method.lower(), []))

    async def wait_for_call(
        self,
        method: str,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 - reads better in tests than a timeout block
    ) -> CallRecord:
        """The `count`-th call of `method`, once a bot has made it (it may still be running)."""
        by_method = self.world.calls_by_method
        if not await self.world.call_signal.wait_until(
            lambda: len(by_method.get(method.lower(), [])) >= count, timeout
        ):
            made = sorted({c.method for c in self.world.calls})
            raise TimeoutError(f"no call #{count} of {method} within {timeout} s; calls: {made}")
        return self.calls_to(method)[count - 1]

    async def wait_until_delivered(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Until every queued update is confirmed by getUpdates or accepted by the webhook
        (a 2xx answer; with handle_in_background=False that means handled)."""
        for bot in self.world.bots.values():
            if not await bot.signal.wait_until(bot.idle, timeout):
                raise TimeoutError(f"{len(bot.pending)} updates of {bot.username} undelivered")

    def fail_next(
        self,
        method: str,
        error_code: int,
        description: str | None = None,
        retry_after: int | None = None,
        *,
        times: int = 1,
        proxy_page: bool = False,
    ) -> None:
        """Answer the next `times` calls of `method` (any bot) with this error instead of running
        them. Without a description the server's usual prefix is used ("Too Many Requests: ...").
        `proxy_page`: an HTML page as Telegram's front proxy serves it ("502 Bad Gateway" from
        nginx), where clients find no JSON to read."""
        error = (
            ApiError(error_code, description, retry_after)
            if description
            else ApiError.make(error_code, None, retry_after)
        )
        error.proxy_page = proxy_page
        self.world.faults.setdefault(method.lower(), []).extend([error] * times)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(event)` (sync or async) for every change a client would show;
        returns the function that unsubscribes. Events: message, edited, deleted, keyboard,
        callback_answered, chat_action, each with bot_id and chat_id; in groups and channels
        (bot_id None) also member, join_request and join_request_settled."""
        return self.world.subscribe(callback)

    # --- HTTP ------------------------------------------------------------------------------

    def _bot_for(self, token: str) -> BotState | None:
        match = _TOKEN.fullmatch(token)
        bot = self.world.bots.get(int(match.group(1))) if match else None
        return bot if bot is not None and secrets.compare_digest(bot.token, token) else None

    def _start_pusher(self, bot: BotState) -> None:
        assert self._session is not None
        pusher = WebhookPusher(self.world, bot, self._session, self.webhook_retry_delay)
        self._pushers[bot.id] = asyncio.create_task(pusher.run())

    async def _handle(self, request: web.Request) -> web.Response:
        bot = self._bot_for(request.match_info["token"])
        if bot is None:
            return error_response(ApiError.make(401))
        try:
            params = await read_params(request)
            result, description = await execute(
                self.world, bot, request.match_info["method"], params
            )
        except ApiError as error:
            return error_response(error)
        return ok_response(result, description)

    async def _not_found(self, request: web.Request) -> web.Response:
        return error_response(ApiError.make(404))
