"""The sandbox's web page: a Telegram-like client for simulated users, and the dev outbox.

`WebConsole` serves the page, its JSON API and a server-sent event stream on top of a running
`BotApiServer`; `Outbox` collects the codes the backend delivered in development mode.
"""

from .outbox import Outbox, OutboxEntry
from .server import WebConsole

__all__ = ["Outbox", "OutboxEntry", "WebConsole"]
