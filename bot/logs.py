"""Logging setup: one line per event, and nothing secret or personal in it at any level.

LOG_LEVEL=DEBUG must be safe to turn on in production, so what the libraries underneath print
is held back here rather than trusted:
- a floor per chatty library, below which its records are neither made nor printed;
- tracebacks without the messages of exceptions that quote data;
- known secrets (the bot token, API keys) replaced in every formatted line.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Iterable, Iterator
from types import TracebackType

# Where these libraries print what must not reach a log, and the least level each may log at
# whatever LOG_LEVEL says:
# - httpcore (and hpack, for HTTP/2) print every response header at DEBUG, and Clerk hands a
#   native client its token in an Authorization header. httpx keeps its INFO line per request
#   (method, URL, status: no header).
# - aiosqlite prints every statement with its parameters at DEBUG, SQLAlchemy's engine
#   statements and parameters from INFO: Telegram ids, usernames, first names, blind indexes,
#   code MACs. asyncpg logs no statements today; the floor keeps it so.
# - aiohttp's client carries every Bot API call, and the token is in each URL: nothing it prints
#   below INFO is needed to run the bot, so nothing there can leak.
# - python-telegram-bot prints every call's parameters and every update at DEBUG (a person's
#   message, a code among them). Under it, httpx's INFO line per request has the token in its
#   URL: the token is one of the secrets the formatter replaces.
QUIET_FLOOR = {
    "httpcore": logging.INFO,
    "httpx": logging.INFO,
    "hpack": logging.INFO,
    "aiosqlite": logging.INFO,
    "asyncpg": logging.INFO,
    "sqlalchemy.engine": logging.WARNING,
    "aiohttp.client": logging.INFO,
    "telegram": logging.INFO,
}

# Exceptions from these packages quote data in their messages: a database error its statement's
# parameters and, on PostgreSQL, the row that broke a constraint ("Key (telegram_user_id)=(…)
# already exists"); a validation error the input it refused (a message's text). Their tracebacks
# show the type and the frames, not the message.
QUOTING = frozenset({"sqlalchemy", "asyncpg", "sqlite3", "aiosqlite", "pydantic", "pydantic_core"})

_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


class Formatter(logging.Formatter):
    """`fmt` lines with known secrets replaced, and tracebacks as Python prints them except for
    the messages of exceptions that quote data."""

    def __init__(self, fmt: str, secrets: Iterable[str] = ()) -> None:
        super().__init__(fmt)
        # Short values would replace innocent text and are no real secrets anyway.
        self.secrets = [s for s in secrets if s and len(s) >= 8]

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        for secret in self.secrets:
            line = line.replace(secret, "[redacted]")
        return line

    def formatException(self, ei: ExcInfo) -> str:
        if ei[1] is None:
            return super().formatException(ei)
        return "".join(_traceback(ei[1])).rstrip("\n")


class Quiet(logging.Filter):
    """Drops the chatty libraries' records below their floor. The logger levels set in `setup`
    keep those records from being made at all; this keeps them out of the output even when
    something later lowers one of those loggers (or a child of one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for prefix, floor in QUIET_FLOOR.items():
            if record.name == prefix or record.name.startswith(prefix + "."):
                return record.levelno >= floor
        return True


def _traceback(exc: BaseException) -> Iterator[str]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        if current.__cause__ is not None or current.__suppress_context__:
            current = current.__cause__
        else:
            current = current.__context__
    chain.reverse()
    for earlier, later in zip([None, *chain], chain, strict=False):
        if earlier is not None:
            yield _CAUSE if later.__cause__ is earlier else _CONTEXT
        if later.__traceback__ is not None:
            yield "Traceback (most recent call last):\n"
            yield from traceback.format_tb(later.__traceback__)
        kind = type(later)
        if kind.__module__.split(".")[0] in QUOTING:
            yield f"{kind.__module__}.{kind.__qualname__}: (message withheld: it may quote data)\n"
        else:
            yield from traceback.format_exception_only(kind, later)


def setup(level: str, secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets))
    handler.addFilter(Quiet())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name, floor in QUIET_FLOOR.items():
        logging.getLogger(name).setLevel(max(floor, root.level))
    # Per-update INFO lines from aiogram add nothing an operator needs at INFO.
    logging.getLogger("aiogram.event").setLevel(max(logging.WARNING, root.level))
