"""The Telegram calls the shared parts make, as a protocol each framework's adapter implements.

The conversation's and the gate's answers are carried out once, over these calls, instead of
once per framework; an adapter only turns each call into its framework's method and each of
its framework's refusals into `CallFailed`.
"""

from __future__ import annotations

from typing import Protocol

from bot.conversation.events import Reply


class CallFailed(Exception):
    """Telegram refused a call, or could not be reached, after the framework's retries."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message  # Telegram's description: no codes or personal data in it


class Calls(Protocol):
    async def send(self, chat_id: int, reply: Reply) -> int:
        """Send a message; returns its id."""
        ...

    async def delete(self, chat_id: int, message_id: int) -> None: ...

    async def answer_press(self, query_id: str, text: str | None) -> None:
        """Answer a button press (its spinner stops; `text` shows as a toast)."""
        ...

    async def clear_buttons(self, chat_id: int, message_id: int) -> None:
        """Take the inline buttons off a message."""
        ...
