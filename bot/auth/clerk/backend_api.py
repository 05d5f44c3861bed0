"""The few Backend API calls Passgram makes, with the secret key, JSON in and out.

BAPI is limited per instance (100 requests per 10 s in development, 1,000 in production) and
metadata writes per user (10 per 10 s); every call here takes its slots for that first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from bot.auth.base import WaitNotifier
from bot.auth.clerk.pace import BAPI, METADATA
from bot.auth.clerk.transport import Slot, Transport
from bot.identifiers import Identifier, IdentifierKind

_INSTANCE: tuple[Slot, ...] = ((BAPI, ""),)
# Where each kind of identifier lives in BAPI: the user list filter and the resource path.
_FILTER: dict[IdentifierKind, str] = {"email": "email_address", "phone": "phone_number"}
_RESOURCE: dict[IdentifierKind, str] = {"email": "email_addresses", "phone": "phone_numbers"}

Order = Literal["created_at", "-created_at"]


class BackendAPI:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    async def find_users(
        self, identifier: Identifier, notify: WaitNotifier | None = None
    ) -> list[dict[str, Any]]:
        reply = await self._t.call(
            "GET",
            "/v1/users",
            operation="users.list",
            slots=_INSTANCE,
            notify=notify,
            params={_FILTER[identifier.kind]: [identifier.value]},
        )
        return reply.items()

    async def users_created_between(
        self, after_ms: int, before_ms: int, *, offset: int, limit: int = 100
    ) -> list[dict[str, Any]]:
        reply = await self._t.call(
            "GET",
            "/v1/users",
            operation="users.list",
            slots=_INSTANCE,
            params={
                "created_at_after": str(after_ms),
                "created_at_before": str(before_ms),
                "order_by": "created_at",
                "limit": str(limit),
                "offset": str(offset),
            },
        )
        return reply.items()

    async def get_user(self, user_id: str) -> dict[str, Any] | None:
        """The user, or None if there is no such user (any more)."""
        reply = await self._t.call(
            "GET", f"/v1/users/{user_id}", operation="users.get", slots=_INSTANCE
        )
        if reply.status == 404:
            return None
        return reply.json()

    async def create_user(
        self, body: Mapping[str, Any], notify: WaitNotifier | None = None
    ) -> dict[str, Any]:
        reply = await self._t.call(
            "POST",
            "/v1/users",
            operation="users.create",
            slots=_INSTANCE,
            notify=notify,
            json_body=body,
        )
        return reply.json()

    async def update_user(
        self, user_id: str, fields: Mapping[str, str], notify: WaitNotifier | None = None
    ) -> dict[str, Any]:
        reply = await self._t.call(
            "PATCH",
            f"/v1/users/{user_id}",
            operation="users.update",
            slots=((METADATA, user_id), *_INSTANCE),
            notify=notify,
            json_body=fields,
        )
        return reply.json()

    async def delete_user(self, user_id: str) -> None:
        reply = await self._t.call(
            "DELETE", f"/v1/users/{user_id}", operation="users.delete", slots=_INSTANCE
        )
        if reply.status != 404:
            reply.json()

    async def update_private_metadata(
        self, user_id: str, changes: Mapping[str, Any], notify: WaitNotifier | None = None
    ) -> dict[str, Any]:
        """Deep-merges `changes` into the user's private metadata; a None value deletes a key."""
        reply = await self._t.call(
            "PATCH",
            f"/v1/users/{user_id}/metadata",
            operation="users.metadata",
            slots=((METADATA, user_id), *_INSTANCE),
            notify=notify,
            json_body={"private_metadata": changes},
        )
        return reply.json()

    async def prepare_verification(
        self, kind: IdentifierKind, identification_id: str, notify: WaitNotifier | None = None
    ) -> dict[str, Any]:
        reply = await self._t.call(
            "POST",
            f"/v1/{_RESOURCE[kind]}/{identification_id}/prepare_verification",
            operation=f"{_RESOURCE[kind]}.prepare_verification",
            slots=_INSTANCE,
            notify=notify,
        )
        return reply.json()

    async def attempt_verification(
        self,
        kind: IdentifierKind,
        identification_id: str,
        verification_id: str,
        code: str,
        notify: WaitNotifier | None = None,
    ) -> dict[str, Any]:
        reply = await self._t.call(
            "POST",
            f"/v1/{_RESOURCE[kind]}/{identification_id}/attempt_verification",
            operation=f"{_RESOURCE[kind]}.attempt_verification",
            slots=_INSTANCE,
            notify=notify,
            json_body={"verification_id": verification_id, "code": code},
        )
        return reply.json()

    async def create_sign_in_token(self, user_id: str, expires_in_seconds: int) -> dict[str, Any]:
        reply = await self._t.call(
            "POST",
            "/v1/sign_in_tokens",
            operation="sign_in_tokens.create",
            slots=_INSTANCE,
            json_body={"user_id": user_id, "expires_in_seconds": expires_in_seconds},
        )
        return reply.json()

    async def revoke_sign_in_token(self, token_id: str) -> None:
        reply = await self._t.call(
            "POST",
            f"/v1/sign_in_tokens/{token_id}/revoke",
            operation="sign_in_tokens.revoke",
            slots=_INSTANCE,
        )
        # Already used, revoked or gone: nothing is left to take back.
        if reply.status not in (400, 404):
            reply.json()

    async def revoke_session(self, session_id: str) -> None:
        reply = await self._t.call(
            "POST",
            f"/v1/sessions/{session_id}/revoke",
            operation="sessions.revoke",
            slots=_INSTANCE,
        )
        if reply.status not in (400, 404):
            reply.json()
