"""The double's Backend API: the user, verification, metadata, session and sign-in token calls
Passgram makes with the secret key. JSON bodies; routes are named by the spec's operationIds."""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from bot.sandbox.clerk import render
from bot.sandbox.clerk.model import (
    FIELDS,
    PARAM,
    ClerkFail,
    Identification,
    Instance,
    Kind,
    User,
)

_DEFAULT_TOKEN_TTL = 2_592_000  # Clerk's default: 30 days


class BackendAPI:
    def __init__(self, instance: Instance, secret_key: str) -> None:
        self.inst = instance
        self.secret_key = secret_key

    def routes(self, prefix: str) -> list[web.RouteDef]:
        base = f"{prefix}/v1"
        routes = [
            web.get(f"{base}/users", self.list_users, name="GetUserList"),
            web.post(f"{base}/users", self.create_user, name="CreateUser"),
            web.get(f"{base}/users/{{user_id}}", self.get_user, name="GetUser"),
            web.patch(f"{base}/users/{{user_id}}", self.update_user, name="UpdateUser"),
            web.delete(f"{base}/users/{{user_id}}", self.delete_user, name="DeleteUser"),
            web.patch(
                f"{base}/users/{{user_id}}/metadata",
                self.update_metadata,
                name="UpdateUserMetadata",
            ),
            web.post(f"{base}/sign_in_tokens", self.create_sign_in_token, name="CreateSignInToken"),
            web.post(
                f"{base}/sign_in_tokens/{{sign_in_token_id}}/revoke",
                self.revoke_sign_in_token,
                name="RevokeSignInToken",
            ),
            web.post(
                f"{base}/sessions/{{session_id}}/revoke", self.revoke_session, name="RevokeSession"
            ),
        ]
        resources: tuple[tuple[Kind, str, str], ...] = (
            ("email", "email_addresses", "EmailAddress"),
            ("phone", "phone_numbers", "PhoneNumber"),
        )
        for kind, resource, noun in resources:
            path = f"{base}/{resource}/{{{PARAM[kind]}_id}}"
            routes += [
                web.post(
                    f"{path}/prepare_verification",
                    self._prepare(kind),
                    name=f"Prepare{noun}Verification",
                ),
                web.post(
                    f"{path}/attempt_verification",
                    self._attempt(kind),
                    name=f"Attempt{noun}Verification",
                ),
            ]
        return routes

    # -- users ------------------------------------------------------------------------------

    async def list_users(self, request: web.Request) -> web.Response:
        await self._body(request)
        query = request.query
        emails = {v.casefold() for v in query.getall("email_address", [])}
        phones = set(query.getall("phone_number", []))
        after = _int(query.get("created_at_after"), "created_at_after")
        before = _int(query.get("created_at_before"), "created_at_before")
        users = []
        for user in self.inst.users.values():
            values = {
                i.value.casefold() if i.kind == "email" else i.value
                for i in self.inst.user_identifications(user)
            }
            if (emails or phones) and not values & (emails | phones):
                continue
            if after is not None and user.created_at <= after:
                continue
            if before is not None and user.created_at >= before:
                continue
            users.append(user)
        order = query.get("order_by", "-created_at")
        users.sort(key=lambda u: u.created_at, reverse=order.startswith("-"))
        limit = _int(query.get("limit"), "limit") or 10
        offset = _int(query.get("offset"), "offset") or 0
        page = users[offset : offset + min(limit, 500)]
        return web.json_response([render.user(self.inst, u) for u in page])

    async def create_user(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        identifiers: list[tuple[Kind, str, str]] = []
        kinds: tuple[Kind, ...] = ("email", "phone")
        for kind in kinds:
            param = PARAM[kind]
            values = body.get(param) or []
            statuses = body.get(f"{param}_identification_status") or ["verified"] * len(values)
            if len(statuses) != len(values) or not set(statuses) <= {"verified", "reserved"}:
                raise ClerkFail(
                    422, "form_param_value_invalid", param=f"{param}_identification_status"
                )
            identifiers += [
                (kind, value, status) for value, status in zip(values, statuses, strict=True)
            ]
        fields = {name: body.get(name) for name in FIELDS}
        missing = self.inst.unmet_requirements(
            fields,
            [kind for kind, _, _ in identifiers],
            password=bool(body.get("password") or body.get("skip_password_requirement")),
            # How BAPI refuses a user without the legal consent an instance requires is not
            # documented; the double names it with the rest (skip_legal_checks waives it).
            legal_accepted=bool(body.get("legal_accepted_at") or body.get("skip_legal_checks")),
        )
        if body.get("skip_user_requirement"):
            # "Identification types are not enforced", nor the rest of the user model: it is
            # the option for creating a user with minimal data and asking for the rest later.
            # Some way to sign in is still needed.
            missing = [name for name in missing if name in ("password", "legal_accepted")]
            if not identifiers:
                missing.append("email_address")
        if missing:
            # Clerk answers one error for all of them, e.g. `["first_name" "username"] data
            # doesn't match user requirements set for this instance`.
            quoted = " ".join(f'"{name}"' for name in missing)
            raise ClerkFail(
                422,
                "form_data_missing",
                long_message=f"[{quoted}] data doesn't match user requirements set for this "
                "instance",
                param_names=missing,
            )
        user = self.inst.create_user(
            identifiers,
            fields=fields,
            private_metadata=body.get("private_metadata"),
            public_metadata=body.get("public_metadata"),
            unsafe_metadata=body.get("unsafe_metadata"),
        )
        return web.json_response(render.user(self.inst, user))

    async def get_user(self, request: web.Request) -> web.Response:
        await self._body(request)
        return web.json_response(render.user(self.inst, self._user(request)))

    async def update_user(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        unknown = set(body) - set(FIELDS)
        if unknown:
            raise ClerkFail(422, "form_param_unknown", param=sorted(unknown)[0])
        user = self._user(request)
        self.inst.update_user(user, body)
        return web.json_response(render.user(self.inst, user))

    async def delete_user(self, request: web.Request) -> web.Response:
        await self._body(request)
        user = self._user(request)
        self.inst.delete_user(user)
        return web.json_response(render.deleted("user", user.id))

    async def update_metadata(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        user = self._user(request)
        for name in ("public_metadata", "private_metadata", "unsafe_metadata"):
            changes = body.get(name)
            if changes is None:
                continue
            if not isinstance(changes, Mapping):
                raise ClerkFail(422, "form_param_format_invalid", param=name)
            self.inst.merge_metadata(getattr(user, name), changes)
        user.updated_at = self.inst.clock.ms()
        return web.json_response(render.user(self.inst, user))

    # -- verifications ----------------------------------------------------------------------

    def _prepare(self, kind: Kind) -> Any:
        async def prepare(request: web.Request) -> web.Response:
            await self._body(request)
            item = self._identification(request, kind)
            return web.json_response(render.verification(self.inst.prepare_identification(item)))

        return prepare

    def _attempt(self, kind: Kind) -> Any:
        async def attempt(request: web.Request) -> web.Response:
            body = await self._body(request)
            item = self._identification(request, kind)
            verification_id, code = body.get("verification_id"), body.get("code")
            for name, value in (("verification_id", verification_id), ("code", code)):
                if not isinstance(value, str) or not value:
                    raise ClerkFail(422, "form_param_missing", param=name)
            assert isinstance(verification_id, str) and isinstance(code, str)
            verification = self.inst.attempt_identification(item, verification_id, code)
            return web.json_response(render.verification(verification))

        return attempt

    # -- sessions and sign-in tokens ---------------------------------------------------------

    async def revoke_session(self, request: web.Request) -> web.Response:
        await self._body(request)
        session = self.inst.sessions.get(request.match_info["session_id"])
        if session is None:
            raise ClerkFail(404, "resource_not_found", param="session_id")
        if session.status == "active":
            self.inst.end_session(session, "revoked")
        return web.json_response(render.backend_session(session))

    async def create_sign_in_token(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        user = self.inst.users.get(str(body.get("user_id", "")))
        if user is None:
            raise ClerkFail(404, "resource_not_found", param="user_id")
        ttl = body.get("expires_in_seconds", _DEFAULT_TOKEN_TTL)
        if not isinstance(ttl, int) or ttl < 1:
            raise ClerkFail(422, "form_param_value_invalid", param="expires_in_seconds")
        token = self.inst.create_sign_in_token(user, ttl)
        return web.json_response(render.sign_in_token(token, with_token=True))

    async def revoke_sign_in_token(self, request: web.Request) -> web.Response:
        await self._body(request)
        token = self.inst.sign_in_tokens.get(request.match_info["sign_in_token_id"])
        if token is None:
            raise ClerkFail(404, "resource_not_found", param="sign_in_token_id")
        if token.status != "pending":
            raise ClerkFail(400, "sign_in_token_cannot_be_revoked")
        token.status, token.updated_at = "revoked", self.inst.clock.ms()
        return web.json_response(render.sign_in_token(token, with_token=False))

    # -- plumbing ----------------------------------------------------------------------------

    async def _body(self, request: web.Request) -> dict[str, Any]:
        """Checks the secret key; the JSON object the request carries ({} for none)."""
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not hmac.compare_digest(key.encode(), self.secret_key.encode()):
            raise ClerkFail(401, "authentication_invalid")
        if not request.body_exists:
            return {}
        if request.content_type != "application/json":
            raise ClerkFail(400, "form_param_format_invalid", param="body")
        try:
            body = json.loads(await request.read())
        except ValueError:
            raise ClerkFail(400, "form_param_format_invalid", param="body") from None
        if not isinstance(body, dict):
            raise ClerkFail(400, "form_param_format_invalid", param="body")
        return body

    def _user(self, request: web.Request) -> User:
        return self.inst.user(request.match_info["user_id"])

    def _identification(self, request: web.Request, kind: Kind) -> Identification:
        item = self.inst.identifications.get(request.match_info[f"{PARAM[kind]}_id"])
        if item is None or item.kind != kind:
            raise ClerkFail(404, "resource_not_found", param=f"{PARAM[kind]}_id")
        return item


def _int(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ClerkFail(422, "form_param_format_invalid", param=name) from None
