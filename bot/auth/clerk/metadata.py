"""The Telegram link in the Clerk user's private metadata, where the app developer reads it.

    private_metadata.telegram = {"id": 123456789, "username": "jane", "linked_at": "2026-…Z"}

Written through the metadata endpoint, which deep-merges, so whatever else the app keeps in
private metadata stays as it is; removed by setting the key to null. Private metadata is
readable only with the secret key, never by the browser or the user.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from bot.auth.base import Requester
from bot.auth.clerk.backend_api import BackendAPI

LINK_KEY = "telegram"


class TelegramLinks:
    def __init__(self, api: BackendAPI, *, clock: Callable[[], datetime]) -> None:
        self._api = api
        self._clock = clock

    async def link(
        self, user_id: str, who: Requester, also: Mapping[str, Any] | None = None
    ) -> None:
        """Write the link, together with any other changes that must land in the same write."""
        link = {
            "id": who.telegram_user_id,
            "username": who.username,
            "linked_at": _iso(self._clock()),
        }
        await self._api.update_private_metadata(
            user_id, {LINK_KEY: link, **(also or {})}, who.notify_wait
        )

    async def unlink(self, user_id: str, telegram_user_id: int) -> None:
        """Remove the link, if it is this Telegram user's (another may have linked since)."""
        user = await self._api.get_user(user_id)
        if user is None:
            return
        current = (user.get("private_metadata") or {}).get(LINK_KEY)
        if isinstance(current, Mapping) and current.get("id") == telegram_user_id:
            await self._api.update_private_metadata(user_id, {LINK_KEY: None})


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
