"""Pushing updates to a bot's webhook the way the official server does."""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp

from .methods import NOT_FROM_WEBHOOK, execute
from .state import BotState, PendingUpdate, Webhook, World
from .wire import ApiError, read_webhook_reply

log = logging.getLogger(__name__)


class WebhookPusher:
    """Delivers one bot's updates: in order within a queue, queues side by side up to
    `max_connections`, failed deliveries retried after a growing pause."""

    def __init__(
        self, world: World, bot: BotState, session: aiohttp.ClientSession, retry_delay: float
    ) -> None:
        self.world = world
        self.bot = bot
        self.session = session
        self.retry_delay = retry_delay
        self.in_flight: dict[int, asyncio.Task[None]] = {}

    def _next(self) -> PendingUpdate | None:
        hook = self.bot.webhook
        if hook is None or len(self.in_flight) >= hook.max_connections:
            return None
        seen: set[int] = set()
        for update in self.bot.pending:
            if update.queue not in seen and update.queue not in self.in_flight:
                return update
            seen.add(update.queue)
        return None

    async def run(self) -> None:
        try:
            while not self.world.closed:
                await self.bot.signal.wait_until(
                    lambda: self.world.closed or self._next() is not None, None
                )
                update = self._next()
                if update is not None and self.bot.webhook is not None:
                    task = asyncio.create_task(self._deliver(update, self.bot.webhook))
                    self.in_flight[update.queue] = task
        finally:
            tasks = list(self.in_flight.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _deliver(self, update: PendingUpdate, hook: Webhook) -> None:
        try:
            delay = self.retry_delay
            while self._current(hook) and not await self._post(update, hook):
                # Pause before retrying, cut short if the webhook is changed or deleted, or the
                # server stops (a cancellation that lands as the signal fires can be lost in
                # wait_for on Python 3.11, so closing is checked, not only cancelled).
                await self.bot.signal.wait_until(lambda: not self._current(hook), delay)
                delay = min(delay * 2, 60 * self.retry_delay)
        finally:
            del self.in_flight[update.queue]
            self.bot.signal.fire()

    def _current(self, hook: Webhook) -> bool:
        return self.bot.webhook is hook and not self.world.closed

    async def _post(self, update: PendingUpdate, hook: Webhook) -> bool:
        headers = {"Content-Type": "application/json"}
        if hook.secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret
        try:
            async with self.session.post(
                hook.url, data=json.dumps(update.data).encode(), headers=headers
            ) as response:
                if 200 <= response.status < 300:
                    reply = await read_webhook_reply(response)
                    error = None
                else:
                    error = f"Wrong response from the webhook: {response.status} {response.reason}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"Connection failed: {exc.__class__.__name__}"
        if error is not None:
            hook.last_error_date = self.world.now()
            hook.last_error_message = error
            return False
        update.delivered = True
        if update in self.bot.pending:
            self.bot.pending.remove(update)
        name = str(reply.pop("method", ""))
        if name and not name.lower().startswith("get") and name.lower() not in NOT_FROM_WEBHOOK:
            try:
                await execute(self.world, self.bot, name, reply, via="webhook")
            except ApiError:
                pass  # recorded in world.calls; the bot never learns about it, as with Telegram
        return True
