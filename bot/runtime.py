"""Runs the bot over any Telegram framework: long polling, or a webhook server when WEBHOOK_URL
is set, plus the background jobs and the gate's reconciliation at start.

Either way an update counts as received only once it is handled: polling confirms offsets up to
the oldest update still in flight, and the webhook answers Telegram after handling, so an update
cut off by a crash is delivered again. Stopping stops taking updates and lets those in flight
finish first.

A framework takes part through an `Adapter`: it fetches and parses updates in its own types
and handles one. Nothing here imports a Telegram framework.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any, Generic, NamedTuple, Protocol, TypeVar
from urllib.parse import urlsplit

from aiohttp import web

from bot import health, metrics
from bot.coordination.setup import warn_if_unshared
from bot.jobs import Job, start_all, stop_all
from bot.updates import Lanes
from bot.wiring import App

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
# When updates are in flight, poll again once this share of them finished, or after this long
# per update (at most REPOLL_MAX), whichever comes first (see _poll).
REPOLL_SHARE = 0.125
REPOLL_EACH = 0.002
REPOLL_MAX = 0.5
POLL_TIMEOUT = 20  # seconds a getUpdates long poll waits for news
DRAIN_TIMEOUT = 25.0  # seconds a stop waits for updates in flight (container stops allow ~30)
GATE_EVERY = 5.0  # seconds between looks at the gate's deadlines and missed decisions


TOKEN_REFUSED = "Telegram refused the bot token (401): check TELEGRAM_BOT_TOKEN"  # noqa: S105


class TokenRefused(Exception):
    """Telegram answered 401: no retry will help."""


class FetchFailed(Exception):
    """Telegram or the way to it failed a getUpdates (after the framework's own retries)."""


class Numbered(Protocol):
    @property
    def update_id(self) -> int: ...


U = TypeVar("U", bound=Numbered)


class Fetched(NamedTuple, Generic[U]):
    """A poll's new updates, and how many came back that were known already."""

    fresh: Sequence[U]
    repeated: int


class Reconciler(Protocol):
    async def reconcile(self) -> None: ...


def person_of(update: Any) -> int | None:
    """Whose update this is (None: nobody's): its person's updates keep their order, across
    messages, presses, join requests and membership changes (a join request and the /start that
    follows it), and run under the person's lock, which replicas sharing a Redis share. Both
    frameworks name an update's parts as the Bot API does, so one reading serves both."""
    if update.chat_member is not None:
        return int(update.chat_member.new_chat_member.user.id)
    for part in (update.message, update.callback_query, update.chat_join_request):
        user = getattr(part, "from_user", None)
        if user is not None:
            return int(user.id)
    return None


def gate_job(gate: Reconciler) -> Job:
    """The gate's deadlines and the decisions a crash cut off, looked at now and then."""
    return Job("gate deadlines", GATE_EVERY, gate.reconcile)


class Adapter(Protocol[U]):
    """What a Telegram framework supplies: its updates, and what to do with one."""

    @property
    def allowed_updates(self) -> list[str]: ...

    @property
    def gate(self) -> Reconciler: ...

    async def start(self) -> str:
        """Set the command list; return the bot's username."""
        ...

    async def stop(self) -> None:
        """Close the framework's connections."""
        ...

    async def fetch(
        self, offset: int | None, wait: int, allowed: list[str], known: Callable[[int], bool]
    ) -> Fetched[U]:
        """One getUpdates long poll of up to `wait` seconds, leaving out the updates `known`
        names (those in flight come back until confirmed; best left out before parsing);
        raises TokenRefused, FetchFailed, OSError or TimeoutError."""
        ...

    def parse(self, body: dict[str, Any]) -> U:
        """A webhook body as an update; ValueError when it is not one."""
        ...

    async def handle(self, update: U) -> None: ...

    async def delete_webhook(self) -> None: ...


class Runner(Generic[U]):
    """The bot, embeddable: `start()` returns once it is receiving updates, `stop()` ends it."""

    def __init__(
        self, app: App, adapter: Adapter[U], *, drain_timeout: float = DRAIN_TIMEOUT
    ) -> None:
        self.app = app
        self.adapter = adapter
        self.gate = adapter.gate
        self.drain_timeout = drain_timeout
        self.lanes = Lanes()
        self.failed: str | None = None  # why polling gave up, for the command's exit status
        self._poller: asyncio.Task[None] | None = None
        self._jobs: list[asyncio.Task[None]] = []
        self._web: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._metrics: web.AppRunner | None = None
        self._secret = ""
        self._stopping = False

    @property
    def webhook(self) -> bool:
        return self.app.settings.webhook_url is not None

    async def start(self) -> None:
        allowed = self.adapter.allowed_updates
        try:
            self.app.gate.deeplinks.bot_username = await self.adapter.start()
        except TokenRefused:
            self.failed = TOKEN_REFUSED
            raise
        # Deadlines that passed while the bot was down, and decisions a crash cut off.
        await self.gate.reconcile()
        self._jobs = start_all([*self.app.jobs, gate_job(self.gate)])
        if self.webhook:
            warn_if_unshared(self.app.settings, self.app.coordination)
            await self._start_webhook()
        else:
            await self.adapter.delete_webhook()
            self._poller = asyncio.create_task(self._poll(allowed))
            if self.app.settings.metrics_listen:
                routes = health.routes(self.app, lambda: self._stopping)
                self._metrics = await health.serve(routes, self.app.settings.metrics_listen)

    def _submit(self, update: U) -> asyncio.Task[None]:
        user = person_of(update)

        async def handle() -> None:
            # The person's lock for the whole update (the gate's part too), across replicas.
            person = self.app.service.serial(user) if user is not None else contextlib.nullcontext()
            async with person:
                await self.adapter.handle(update)
            metrics.UPDATES.inc()

        return self.lanes.submit(user, update.update_id, handle)

    async def _poll(self, allowed: list[str]) -> None:
        offset: int | None = None
        delay = 1.0
        while not self._stopping:
            try:
                fetched = await self.adapter.fetch(offset, POLL_TIMEOUT, allowed, self.lanes.known)
            except TokenRefused:
                self.failed = TOKEN_REFUSED
                log.error("%s", self.failed)
                return
            except (FetchFailed, OSError, TimeoutError) as exc:
                # The framework's retries already waited out 429s and passing 5xx; this is longer.
                log.warning(
                    "fetching updates failed (%s); trying again in %.0f s",
                    exc if isinstance(exc, FetchFailed) else type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
                continue
            delay = 1.0
            for update in fetched.fresh:
                self._submit(update)
            if back := fetched.repeated + len(fetched.fresh):
                # Telegram hands back every update not yet confirmed, and an update is confirmed
                # only once handled, so the next poll returns at once with these `back` in it:
                # long polling turns into short polling while they run. Poll again after a
                # share of them finish (few polls, each costing all of them, when many run) or
                # after a pause that grows with them (new updates wait little when few run).
                await self.lanes.progress(
                    within=min(REPOLL_MAX, REPOLL_EACH * back), share=REPOLL_SHARE
                )
            offset = self.lanes.confirm_point()

    async def _start_webhook(self) -> None:
        settings = self.app.settings
        assert settings.webhook_url and settings.webhook_secret
        self._secret = settings.webhook_secret.get_secret_value()
        web_app = web.Application(client_max_size=1024**2)
        path = urlsplit(settings.webhook_url).path or "/"
        web_app.router.add_post(path, self._on_webhook)
        web_app.add_routes(health.routes(self.app, lambda: self._stopping))
        # Telegram waits for the answer; let handlers in flight finish when stopping.
        self._web = web.AppRunner(web_app, access_log=None, shutdown_timeout=self.drain_timeout)
        await self._web.setup()
        host, _, port = settings.webhook_listen.rpartition(":")
        self._site = web.TCPSite(self._web, host.strip("[]"), int(port))
        await self._site.start()
        # Registering is the operator's (`passgram webhook set`): replicas only listen.
        log.info("webhook mode: listening on %s", settings.webhook_listen)

    async def _on_webhook(self, request: web.Request) -> web.Response:
        if not secrets.compare_digest(request.headers.get(SECRET_HEADER, ""), self._secret):
            return web.json_response({"ok": False, "error": "unauthorized"}, status=401)
        if self._stopping:
            return web.json_response({"ok": False, "error": "stopping"}, status=503)
        try:
            body = json.loads(await request.read())
            if not isinstance(body, dict):
                raise ValueError("not an object")
            update = self.adapter.parse(body)
        except ValueError:
            log.warning("webhook request with a body that is not an update")
            return web.json_response({"ok": False, "error": "not an update"}, status=400)
        if not self.lanes.known(update.update_id):
            task = self._submit(update)
            # Answered only once handled, so Telegram delivers it again if we die meanwhile;
            # shielded, so a dropped connection does not cut the handling short.
            await asyncio.shield(task)
        return web.json_response({})

    async def wait(self) -> None:
        if self._poller is not None:
            await self._poller
        else:
            await asyncio.Event().wait()

    async def stop(self) -> None:
        self._stopping = True
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self._site is not None:
            await self._site.stop()  # no new requests; those in flight go on
            self._site = None
        left = await self.lanes.drain(self.drain_timeout)
        if left:
            log.warning(
                "stopped with %d updates unfinished; Telegram will deliver them again", left
            )
        if self._web is not None:
            await self._web.cleanup()
            self._web = None
        if self._metrics is not None:
            await self._metrics.cleanup()
            self._metrics = None
        await stop_all(self._jobs)
        self._jobs = []
        await self.adapter.stop()
