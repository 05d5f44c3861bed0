"""The development outbox: every code the auth backend delivered while nothing leaves the machine.

The backend's development channel hands each message to `Outbox.add` (the `dev_sink` of
`bot.wiring.build_app`). The page shows the full address and message, which is the point of a
local tool; the logs keep showing only the masked address.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.identifiers import Identifier

_CODE = re.compile(r"\b(\d{6})\b")

Listener = Callable[["OutboxEntry"], None]


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    at: datetime
    to: Identifier
    channel: str  # the delivery channel's name: "log" for development delivery
    text: str

    @property
    def code(self) -> str | None:
        """The code in the message, so the page can offer it on its own."""
        match = _CODE.search(self.text)
        return match.group(1) if match else None

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "kind": self.to.kind,
            "to": self.to.value,
            "display": self.to.display,
            "masked": self.to.masked,
            "channel": self.channel,
            "text": self.text,
            "code": self.code,
        }


class Outbox:
    """Delivered messages, oldest first, kept for as long as the sandbox runs."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.entries: list[OutboxEntry] = []
        self._clock = clock or (lambda: datetime.now(UTC))
        self._listeners: list[Listener] = []

    def add(self, to: Identifier, channel: str, text: str) -> None:
        entry = OutboxEntry(len(self.entries) + 1, self._clock(), to, channel, text)
        self.entries.append(entry)
        for listener in list(self._listeners):
            listener(entry)

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)
