"""aiogram's aiohttp session without two costs it pays on every Bot API call.

- aiogram parses each answer as `Response[<the method's result type>]`. pydantic keeps such
  parametrised classes only weakly: once the last answer of a kind is garbage-collected the
  class goes too, and the next call builds it again from scratch (a schema build per call, a
  tenth of the bot's CPU under load). The classes are kept here, one per method.
- A getUpdates answer repeats every update still in flight: polling confirms only what is
  handled, so that a crash loses nothing. `FreshUpdates` leaves those out before they are parsed,
  so a poll costs what is new, not what is running.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods import GetUpdates, Response, TelegramMethod
from aiogram.methods.base import TelegramType
from pydantic import PrivateAttr

if TYPE_CHECKING:
    from aiogram import Bot

_RESPONSE_TYPES: dict[type[TelegramMethod[Any]], type[Response[Any]]] = {}


class FreshUpdates(GetUpdates):
    """getUpdates whose answer leaves out the updates `skip` names (the caller has them);
    `dropped` then says how many it left out."""

    _skip: Callable[[int], bool] | None = PrivateAttr(default=None)
    _dropped: int = PrivateAttr(default=0)

    @property
    def dropped(self) -> int:
        return self._dropped

    def skipping(self, skip: Callable[[int], bool]) -> FreshUpdates:
        self._skip = skip
        return self

    def loads(self, content: str) -> Any:
        """The answer parsed, with the known updates left out of its result."""
        data = json.loads(content)
        result = data.get("result") if isinstance(data, dict) else None
        if self._skip is not None and isinstance(result, list):
            fresh = [u for u in result if not self._skip(u.get("update_id"))]
            self._dropped = len(result) - len(fresh)
            data["result"] = fresh
        return data


class BotSession(AiohttpSession):
    def check_response(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        status_code: int,
        content: str,
    ) -> Response[TelegramType]:
        kind = type(method)
        if kind not in _RESPONSE_TYPES:
            # Held for good: from now on pydantic's weak cache finds it.
            _RESPONSE_TYPES[kind] = Response[method.__returning__]  # type: ignore[name-defined]
        reader = method.loads if isinstance(method, FreshUpdates) else None
        if reader is None:
            return super().check_response(bot, method, status_code, content)
        # The answer is parsed once, by the poll's own reader; `check_response` is synchronous,
        # so no other call can meet the reader swapped in.
        loads, self.json_loads = self.json_loads, reader
        try:
            return super().check_response(bot, method, status_code, content)
        finally:
            self.json_loads = loads
