"""Logging setup: one line per event, and secrets scrubbed even if a library prints them."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable


class Redact(logging.Filter):
    """Replaces known secrets (the bot token, API keys) in every record that passes."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 8]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            clean = message
            for secret in self.secrets:
                clean = clean.replace(secret, "[redacted]")
            if clean != message:
                record.msg, record.args = clean, None
        return True


def setup(level: str, secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(Redact(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Per-update INFO lines from aiogram add nothing an operator needs at INFO.
    logging.getLogger("aiogram.event").setLevel(max(logging.WARNING, root.level))
