"""The double's Frontend API: the native-client sign-in and sign-up calls Passgram makes.

Native mode only (`_is_native=1`, the client token in `Authorization`): browser mode needs a
dev-browser token and cookies, which no bot has. Routes are named by the spec's operationIds.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.sandbox.clerk import render
from bot.sandbox.clerk.model import PARAM, ClerkFail, Client, Instance

FORM = "application/x-www-form-urlencoded"
API_VERSIONS = frozenset({"2021-02-05", "2024-10-01", "2025-04-10", "2025-11-10", "2026-05-12"})
# The request's client, for error answers: Clerk piggybacks it on those too.
CLIENT_KEY = web.RequestKey("clerk_client", Client)


class FrontendAPI:
    def __init__(self, instance: Instance) -> None:
        self.inst = instance

    def routes(self, prefix: str) -> list[web.RouteDef]:
        base = f"{prefix}/v1/client"
        return [
            web.get(base, self.get_client, name="getClient"),
            web.post(f"{base}/sign_ins", self.create_sign_in, name="createSignIn"),
            web.get(f"{base}/sign_ins/{{sign_in_id}}", self.get_sign_in, name="getSignIn"),
            web.post(
                f"{base}/sign_ins/{{sign_in_id}}/prepare_first_factor",
                self.prepare_first_factor,
                name="prepareSignInFactorOne",
            ),
            web.post(
                f"{base}/sign_ins/{{sign_in_id}}/attempt_first_factor",
                self.attempt_first_factor,
                name="attemptSignInFactorOne",
            ),
            web.post(f"{base}/sign_ups", self.create_sign_up, name="createSignUps"),
            web.get(f"{base}/sign_ups/{{sign_up_id}}", self.get_sign_up, name="getSignUps"),
            web.patch(f"{base}/sign_ups/{{sign_up_id}}", self.update_sign_up, name="updateSignUps"),
            web.post(
                f"{base}/sign_ups/{{sign_up_id}}/prepare_verification",
                self.prepare_sign_up,
                name="prepareSignUpsVerification",
            ),
            web.post(
                f"{base}/sign_ups/{{sign_up_id}}/attempt_verification",
                self.attempt_sign_up,
                name="attemptSignUpsVerification",
            ),
            web.post(f"{base}/sessions/{{session_id}}/touch", self.touch, name="touchSession"),
            web.post(f"{base}/sessions/{{session_id}}/end", self.end, name="endSession"),
        ]

    # -- handlers ----------------------------------------------------------------------------

    async def get_client(self, request: web.Request) -> web.Response:
        client, _ = await self._context(request, create=False)
        return self._answer(client, render.client(self.inst, client))

    async def create_sign_in(self, request: web.Request) -> web.Response:
        client, form = await self._context(request, create=True)
        identifier = _required(form, "identifier")
        sign_in = self.inst.create_sign_in(client, identifier)
        return self._answer(client, render.sign_in_attempt(self.inst, sign_in))

    async def get_sign_in(self, request: web.Request) -> web.Response:
        client, _ = await self._context(request, create=False)
        sign_in = self.inst.client_sign_in(client, request.match_info["sign_in_id"])
        return self._answer(client, render.sign_in_attempt(self.inst, sign_in))

    async def prepare_first_factor(self, request: web.Request) -> web.Response:
        client, form = await self._context(request, create=False)
        sign_in = self.inst.client_sign_in(client, request.match_info["sign_in_id"])
        strategy = _required(form, "strategy")
        factor_field = {"email_code": "email_address_id", "phone_code": "phone_number_id"}
        if strategy not in factor_field:
            raise ClerkFail(400, "strategy_for_user_invalid", param="strategy")
        self.inst.prepare_first_factor(sign_in, strategy, form.get(factor_field[strategy]))
        return self._answer(client, render.sign_in_attempt(self.inst, sign_in))

    async def attempt_first_factor(self, request: web.Request) -> web.Response:
        client, form = await self._context(request, create=False)
        sign_in = self.inst.client_sign_in(client, request.match_info["sign_in_id"])
        _required(form, "strategy")
        self.inst.attempt_first_factor(client, sign_in, _required(form, "code"))
        return self._answer(client, render.sign_in_attempt(self.inst, sign_in))

    async def create_sign_up(self, request: web.Request) -> web.Response:
        client, form = await self._context(request, create=True)
        sign_up = self.inst.create_sign_up(client, form)
        return self._answer(client, render.sign_up_attempt(self.inst, sign_up))

    async def get_sign_up(self, request: web.Request) -> web.Response:
        client, _ = await self._context(request, create=False)
        sign_up = self.inst.client_sign_up(client, request.match_info["sign_up_id"])
        return self._answer(client, render.sign_up_attempt(self.inst, sign_up))

    async def update_sign_up(self, request: web.Request) -> web.Response:
        client, form = await self._context(request, create=False)
        sign_up = self.inst.client_sign_up(client, request.match_info["sign_up_id"])
        if any(form.get(PARAM[kind]) for kind in ("email", "phone")):
            raise ClerkFail(422, "form_param_unknown", param="email_address")
        self.inst.update_sign_up(client, sign_up, form)
        return self._answer(client, render.sign_up_attempt(self.inst, sign_up))

    async def prepare_sign_up(self, request: web.Request) -> web.Response:
        client, form = await self._context(request, create=False)
        sign_up = self.inst.client_sign_up(client, request.match_info["sign_up_id"])
        self.inst.prepare_sign_up(sign_up, _required(form, "strategy"))
        return self._answer(client, render.sign_up_attempt(self.inst, sign_up))

    async def attempt_sign_up(self, request: web.Request) -> web.Response:
        client, form = await self._context(request, create=False)
        sign_up = self.inst.client_sign_up(client, request.match_info["sign_up_id"])
        _required(form, "strategy")
        self.inst.attempt_sign_up(client, sign_up, _required(form, "code"))
        return self._answer(client, render.sign_up_attempt(self.inst, sign_up))

    async def touch(self, request: web.Request) -> web.Response:
        client, _ = await self._context(request, create=False)
        session = self.inst.client_session(client, request.match_info["session_id"])
        if session.status != "active":
            raise ClerkFail(404, "resource_not_found", param="session_id")
        session.last_active_at = session.updated_at = self.inst.clock.ms()
        client.last_active_session_id = session.id
        return self._answer(client, render.session(self.inst, session))

    async def end(self, request: web.Request) -> web.Response:
        client, _ = await self._context(request, create=False)
        session = self.inst.client_session(client, request.match_info["session_id"])
        if session.status == "active":
            self.inst.end_session(session, "ended")
        return self._answer(client, render.session(self.inst, session))

    # -- plumbing ----------------------------------------------------------------------------

    async def _context(
        self, request: web.Request, *, create: bool
    ) -> tuple[Client, dict[str, str]]:
        """The client a native request speaks for (a new one for a first create), and its form."""
        if request.query.get("_is_native") not in ("1", "true"):
            raise ClerkFail(401, "dev_browser_unauthenticated")
        if not self.inst.native_api:
            raise ClerkFail(400, "native_api_disabled")
        version = request.headers.get("Clerk-API-Version")
        if version is not None and (
            "__clerk_api_version" in request.query or version not in API_VERSIONS
        ):
            raise ClerkFail(400, "api_version_invalid")
        token = request.headers.get("Authorization", "").strip().removeprefix("Bearer ").strip()
        client = self.inst.client_by_token(token) if token else None
        if token and client is None:
            raise ClerkFail(401, "authentication_invalid")
        if client is None:
            if not create:
                raise ClerkFail(400, "client_not_found")
            client = self.inst.new_client()
        request[CLIENT_KEY] = client
        form: dict[str, str] = {}
        if request.body_exists:
            if request.content_type != FORM:
                raise ClerkFail(400, "form_param_format_invalid", param="body")
            form = {key: str(value) for key, value in (await request.post()).items()}
        client.updated_at = self.inst.clock.ms()
        return client, form

    def _answer(self, client: Client, response: dict[str, Any]) -> web.Response:
        body = {"response": response, "client": render.client(self.inst, client)}
        return web.json_response(body, headers={"Authorization": client.token})


def _required(form: dict[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise ClerkFail(422, "form_param_missing", param=name)
    return value
