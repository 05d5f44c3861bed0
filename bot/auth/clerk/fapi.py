"""CLERK_MODE=fapi: Passgram as a native Clerk client, one client per Telegram user.

This is Clerk's custom email/SMS OTP flow with a chat for a form. Sign-in: create a sign-in
with the identifier, pick its `email_code`/`phone_code` factor, prepare (Clerk sends the
code), attempt with what the person typed. When Clerk has no account for the identifier
(`form_identifier_not_found`), the same client signs up instead: create with the identifier,
prepare and attempt its verification, and send the fields Clerk still misses. When Clerk
answers `complete`, the new session is touched, as `setActive` does in Clerk's own SDKs.

Native mode: every request carries `_is_native=1` and, once Clerk has handed one out in the
`Authorization` response header, the client token, sent back exactly as received. The token
lives in the challenge's state and then in the link's, both encrypted at rest by the caller.

An answer can be lost after Clerk acted on it (a crash before the link is stored). Typed again,
the code is refused as already used; the sign-in or sign-up is then read back from the same
client, and if Clerk has it complete, it is finished from there. Only this person's client
(its token is in their own challenge) can have completed it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from bot.auth.base import (
    AuthError,
    BackendUnavailable,
    Challenge,
    LinkRef,
    NeedsMoreFields,
    Refused,
    Requester,
    UnsupportedIdentifier,
)
from bot.auth.clerk.backend_api import BackendAPI
from bot.auth.clerk.errors import (
    MFA_HINT,
    MFA_REQUIRED,
    WRONG_CODE,
    ClerkAPIError,
    describe,
    refuse_requirements,
    to_auth_error,
)
from bot.auth.clerk.flow import FIELDS, STRATEGY, Verified, digits, expiry, new_challenge
from bot.auth.clerk.pace import (
    FAPI,
    SIGN_IN_ATTEMPT,
    SIGN_IN_CREATE,
    SIGN_UP_ATTEMPT,
    SIGN_UP_CREATE,
)
from bot.auth.clerk.transport import Reply, Transport
from bot.identifiers import Identifier, IdentifierKind

log = logging.getLogger("bot.auth.clerk")

# The sign-up parameter, and the sign-in factor's id field, for each kind of identifier.
_SIGN_UP_PARAM: dict[IdentifierKind, str] = {"email": "email_address", "phone": "phone_number"}
_FACTOR_ID: dict[IdentifierKind, str] = {"email": "email_address_id", "phone": "phone_number_id"}
# Refusals of a second try at something Clerk already did: the code was right the first time
# (the error Clerk documents for exactly that), or the client has moved on past it. Which one
# Clerk answers to a repeated attempt is not documented, so each leads to reading it back.
_ALREADY_DONE = frozenset(
    {
        "verification_already_verified",
        "client_state_invalid",
        "session_exists",
        "identifier_already_signed_in",
    }
)


class _NativeClient:
    """One Clerk client, as a native app is one: the token it got, sent back as received."""

    def __init__(self, transport: Transport, token: str | None, who: Requester | None) -> None:
        self._t = transport
        self.token = token
        self._notify = who.notify_wait if who is not None else None

    async def call(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        lane: str = FAPI,
        form: Mapping[str, str] | None = None,
    ) -> Reply:
        reply = await self._t.call(
            method,
            path,
            operation=operation,
            slots=((lane, ""),),
            notify=self._notify,
            params={"_is_native": "1"},
            form=form,
            headers={"Authorization": self.token} if self.token else None,
        )
        # Error answers carry the (possibly new) token too.
        token = reply.headers.get("authorization", "").strip()
        if token and token.lower() != "bearer":
            self.token = token
        return reply


class FapiFlow:
    def __init__(
        self,
        transport: Transport,
        *,
        backend_api: BackendAPI | None = None,
        clock: Callable[[], datetime],
        code_attempts: int = 3,
        resend_after: timedelta = timedelta(seconds=30),
    ) -> None:
        self._t = transport
        self._bapi = backend_api
        self._clock = clock
        self._code_attempts = code_attempts
        self._resend_after = resend_after

    async def start(self, identifier: Identifier, who: Requester) -> Challenge:
        # A new client for every start: whatever an earlier attempt left on one stays there.
        client = _NativeClient(self._t, None, who)
        try:
            sign_in = await self._create_sign_in(client, identifier)
        except ClerkAPIError as err:
            if err.code != "form_identifier_not_found":
                raise self._error(err, identifier) from None
            return await self._start_sign_up(client, identifier)
        return await self._prepare_sign_in(client, identifier, sign_in)

    async def resend(self, challenge: Challenge, who: Requester) -> Challenge:
        client = self._client(challenge, who)
        state = challenge.state
        try:
            if state["flow"] == "sign_in":
                body = await self._prepare_first_factor(
                    client, challenge.identifier, state["attempt_id"], state["factor_id"]
                )
                verification = body["response"].get("first_factor_verification")
            else:
                body = await self._prepare_sign_up(
                    client, challenge.identifier, state["attempt_id"]
                )
                verification = _sign_up_verification(body["response"], challenge.identifier)
        except ClerkAPIError as err:
            raise self._error(err, challenge.identifier) from None
        # A new code is a new verification: the tries counted for the old one are gone.
        renewed = {k: v for k, v in state.items() if k != "failures"}
        return self._challenge(
            challenge.identifier, {**renewed, "client_token": client.token}, verification
        )

    async def verify(self, challenge: Challenge, code: str, who: Requester) -> Verified:
        client = self._client(challenge, who)
        state = challenge.state
        strategy = STRATEGY[challenge.identifier.kind]
        form = {"strategy": strategy, "code": digits(code)}
        if state["flow"] == "sign_in":
            path = f"/v1/client/sign_ins/{state['attempt_id']}/attempt_first_factor"
            operation, lane = "sign_in.attempt_first_factor", SIGN_IN_ATTEMPT
        else:
            path = f"/v1/client/sign_ups/{state['attempt_id']}/attempt_verification"
            operation, lane = "sign_up.attempt_verification", SIGN_UP_ATTEMPT
        reply = await client.call("POST", path, operation=operation, lane=lane, form=form)
        state["client_token"] = client.token
        try:
            body = reply.json()
        except ClerkAPIError as err:
            if err.code in _ALREADY_DONE and (done := await self._read_back(challenge, client)):
                return await self._settle(challenge, client, done)
            tries_left = self._tries_left(err, challenge) if err.code in WRONG_CODE else None
            raise to_auth_error(
                err, identifier=challenge.identifier, now=self._clock(), tries_left=tries_left
            ) from None
        return await self._settle(challenge, client, body)

    async def complete(
        self, challenge: Challenge, fields: Mapping[str, str], who: Requester
    ) -> Verified:
        if challenge.state.get("flow") != "sign_up":
            raise BackendUnavailable("clerk: only a sign-up takes more fields")
        client = self._client(challenge, who)
        form = {name: fields[name].strip() for name in FIELDS if fields.get(name, "").strip()}
        reply = await client.call(
            "PATCH",
            f"/v1/client/sign_ups/{challenge.state['attempt_id']}",
            operation="sign_up.update",
            form=form,
        )
        challenge.state["client_token"] = client.token
        try:
            body = reply.json()
        except ClerkAPIError as err:
            if err.param in FIELDS:
                # Taken, or not in a shape Clerk accepts: that field has to be asked again.
                log.info("%s", describe(err, challenge.identifier))
                raise NeedsMoreFields((err.param,), challenge) from None
            if err.code in _ALREADY_DONE and (done := await self._read_back(challenge, client)):
                return await self._settle(challenge, client, done)
            raise self._error(err, challenge.identifier) from None
        return await self._settle(challenge, client, body)

    async def revoke(self, link: LinkRef) -> None:
        if link.session_id is None:
            return
        token = link.state.get("client_token")
        if not isinstance(token, str) or not token:
            if self._bapi is not None:
                await self._bapi.revoke_session(link.session_id)
            return
        client = _NativeClient(self._t, token, None)
        reply = await client.call(
            "POST", f"/v1/client/sessions/{link.session_id}/end", operation="session.end"
        )
        try:
            reply.json()
        except ClerkAPIError as err:
            if err.status == 404 or err.code == "resource_not_found":
                log.info("%s: the session was already over", describe(err, link.identifier))
                return
            if err.status == 401 and self._bapi is not None:
                # The client is gone or its token no longer works; the secret key still can.
                await self._bapi.revoke_session(link.session_id)
                return
            raise self._error(err, link.identifier) from None

    # -- steps -------------------------------------------------------------------------------

    async def _create_sign_in(self, client: _NativeClient, identifier: Identifier) -> Any:
        reply = await client.call(
            "POST",
            "/v1/client/sign_ins",
            operation="sign_in.create",
            lane=SIGN_IN_CREATE,
            form={"identifier": identifier.value},
        )
        return reply.json()["response"]

    async def _prepare_sign_in(
        self, client: _NativeClient, identifier: Identifier, sign_in: Mapping[str, Any]
    ) -> Challenge:
        strategy = STRATEGY[identifier.kind]
        id_field = _FACTOR_ID[identifier.kind]
        factor = next(
            (
                f
                for f in sign_in.get("supported_first_factors") or ()
                if f.get("strategy") == strategy and f.get(id_field)
            ),
            None,
        )
        if factor is None:
            log.error(
                "clerk sign_in.create: no %s factor for %s; turn on the %s verification code "
                "strategy in the Clerk Dashboard",
                strategy,
                identifier.masked,
                "email" if identifier.kind == "email" else "SMS",
            )
            raise UnsupportedIdentifier(identifier.kind)
        try:
            body = await self._prepare_first_factor(
                client, identifier, sign_in["id"], factor[id_field]
            )
        except ClerkAPIError as err:
            raise self._error(err, identifier) from None
        state = {
            "mode": "fapi",
            "flow": "sign_in",
            "attempt_id": sign_in["id"],
            "factor_id": factor[id_field],
            "client_token": client.token,
        }
        return self._challenge(identifier, state, body["response"].get("first_factor_verification"))

    async def _prepare_first_factor(
        self, client: _NativeClient, identifier: Identifier, sign_in_id: str, factor_id: str
    ) -> dict[str, Any]:
        reply = await client.call(
            "POST",
            f"/v1/client/sign_ins/{sign_in_id}/prepare_first_factor",
            operation="sign_in.prepare_first_factor",
            form={
                "strategy": STRATEGY[identifier.kind],
                _FACTOR_ID[identifier.kind]: factor_id,
            },
        )
        return reply.json()

    async def _start_sign_up(self, client: _NativeClient, identifier: Identifier) -> Challenge:
        reply = await client.call(
            "POST",
            "/v1/client/sign_ups",
            operation="sign_up.create",
            lane=SIGN_UP_CREATE,
            form={_SIGN_UP_PARAM[identifier.kind]: identifier.value},
        )
        try:
            sign_up = reply.json()["response"]
            unmet = [n for n in sign_up.get("missing_fields") or () if n not in FIELDS]
            if unmet:
                # Known before any code is sent: nobody waits for one that leads nowhere.
                raise refuse_requirements(unmet, f"clerk sign_up.create for {identifier.masked}")
            body = await self._prepare_sign_up(client, identifier, sign_up["id"])
        except ClerkAPIError as err:
            if err.code == "form_identifier_exists":
                # Someone finished signing up with it a moment ago: it is a sign-in now.
                return await self._retry_sign_in(client, identifier)
            raise self._error(err, identifier) from None
        state = {
            "mode": "fapi",
            "flow": "sign_up",
            "attempt_id": sign_up["id"],
            "client_token": client.token,
        }
        return self._challenge(
            identifier, state, _sign_up_verification(body["response"], identifier)
        )

    async def _retry_sign_in(self, client: _NativeClient, identifier: Identifier) -> Challenge:
        try:
            sign_in = await self._create_sign_in(client, identifier)
        except ClerkAPIError as err:
            raise self._error(err, identifier) from None
        return await self._prepare_sign_in(client, identifier, sign_in)

    async def _prepare_sign_up(
        self, client: _NativeClient, identifier: Identifier, sign_up_id: str
    ) -> dict[str, Any]:
        reply = await client.call(
            "POST",
            f"/v1/client/sign_ups/{sign_up_id}/prepare_verification",
            operation="sign_up.prepare_verification",
            form={"strategy": STRATEGY[identifier.kind]},
        )
        return reply.json()

    async def _settle(
        self, challenge: Challenge, client: _NativeClient, body: Mapping[str, Any]
    ) -> Verified:
        """After a right code (or more fields): the session, or what Clerk still wants."""
        attempt = body["response"]
        status = attempt.get("status")
        if status == "complete":
            session_id = attempt.get("created_session_id")
            user_id = attempt.get("created_user_id") or _user_of(body.get("client"), session_id)
            if not isinstance(user_id, str):
                log.warning(
                    "clerk %s: complete, but no user in the answer, for %s",
                    challenge.state["flow"],
                    challenge.identifier.masked,
                )
                raise BackendUnavailable("clerk: no user in a complete answer")
            if isinstance(session_id, str):
                await self._touch(client, session_id, challenge.identifier)
            return Verified(
                user_id=user_id,
                created=challenge.state["flow"] == "sign_up",
                session_id=session_id if isinstance(session_id, str) else None,
                state={"mode": "fapi", "client_token": client.token},
            )
        flow = challenge.state["flow"]
        if flow == "sign_up" and status == "missing_requirements":
            missing = tuple(attempt.get("missing_fields") or ())
            unverified = attempt.get("unverified_fields") or ()
            if missing and set(missing) <= set(FIELDS) and not unverified:
                challenge.state["client_token"] = client.token
                raise NeedsMoreFields(missing, challenge)
            where = f"clerk sign_up for {challenge.identifier.masked}"
            raise refuse_requirements([*missing, *unverified], where)
        if status == "needs_second_factor":
            log.error(
                "clerk sign_in: the account of %s signs in with a second factor, which a chat "
                "cannot ask for; %s",
                challenge.identifier.masked,
                MFA_HINT,
            )
            raise Refused(MFA_REQUIRED)
        log.error(
            "clerk %s: status %s after a right code, for %s",
            flow,
            status,
            challenge.identifier.masked,
        )
        raise BackendUnavailable(f"clerk: {flow} ended at {status}")

    async def _read_back(
        self, challenge: Challenge, client: _NativeClient
    ) -> dict[str, Any] | None:
        """The sign-in or sign-up as Clerk has it now, if a right code has gone through it."""
        flow, attempt_id = challenge.state["flow"], challenge.state["attempt_id"]
        noun = "sign_ins" if flow == "sign_in" else "sign_ups"
        try:
            reply = await client.call(
                "GET", f"/v1/client/{noun}/{attempt_id}", operation=f"{flow}.get"
            )
            body = reply.json()
        except (ClerkAPIError, BackendUnavailable) as err:
            log.info(
                "clerk %s.get: could not read it back for %s: %s",
                flow,
                challenge.identifier.masked,
                err,
            )
            return None
        challenge.state["client_token"] = client.token
        attempt = body["response"]
        status = attempt.get("status")
        if flow == "sign_in":
            # Past its first factor: complete, or waiting for a second one.
            done = status in ("complete", "needs_second_factor")
        else:
            # The identifier proven: complete, or waiting only for fields.
            unverified = attempt.get("unverified_fields") or ()
            done = status == "complete" or (status == "missing_requirements" and not unverified)
        if not done:
            return None
        log.info(
            "clerk %s: a right code went through before, for %s; finishing it",
            flow,
            challenge.identifier.masked,
        )
        return body

    async def _touch(self, client: _NativeClient, session_id: str, identifier: Identifier) -> None:
        """Make the new session the client's active one, as setActive does.

        Clerk creates it active already, so a failure here is logged and the sign-in stands:
        the code has been spent, and asking for it again could only fail.
        """
        try:
            reply = await client.call(
                "POST",
                f"/v1/client/sessions/{session_id}/touch",
                operation="session.touch",
                form={"intent": "select_session"},
            )
            reply.json()
        except (ClerkAPIError, BackendUnavailable) as err:
            log.warning("clerk session.touch failed for %s: %s", identifier.masked, err)

    # -- helpers -----------------------------------------------------------------------------

    def _client(self, challenge: Challenge, who: Requester) -> _NativeClient:
        token = challenge.state.get("client_token")
        return _NativeClient(self._t, token if isinstance(token, str) else None, who)

    def _challenge(
        self, identifier: Identifier, state: dict[str, Any], verification: Any
    ) -> Challenge:
        now = self._clock()
        expire_at = verification.get("expire_at") if isinstance(verification, Mapping) else None
        return new_challenge(
            identifier,
            expires_at=expiry(expire_at, now),
            resend_at=now + self._resend_after,
            state=state,
        )

    def _tries_left(self, err: ClerkAPIError, challenge: Challenge) -> int:
        """Tries left on this code, from the attempts Clerk counted (in the error's client)."""
        attempts = _attempts(err.meta.get("client"), challenge)
        if attempts is None:
            # Clerk did not say: count here. The count lives in the state, which the caller
            # keeps with the challenge.
            attempts = int(challenge.state.get("failures", 0)) + 1
        challenge.state["failures"] = attempts
        return self._code_attempts - attempts

    def _error(self, err: ClerkAPIError, identifier: Identifier) -> AuthError:
        return to_auth_error(err, identifier=identifier, now=self._clock())


def _sign_up_verification(sign_up: Mapping[str, Any], identifier: Identifier) -> Any:
    verifications = sign_up.get("verifications") or {}
    return verifications.get(_SIGN_UP_PARAM[identifier.kind])


def _attempts(client: Any, challenge: Challenge) -> int | None:
    if not isinstance(client, Mapping):
        return None
    if challenge.state["flow"] == "sign_in":
        sign_in = client.get("sign_in") or {}
        verification = sign_in.get("first_factor_verification")
    else:
        verification = _sign_up_verification(client.get("sign_up") or {}, challenge.identifier)
    attempts = verification.get("attempts") if isinstance(verification, Mapping) else None
    return attempts if isinstance(attempts, int) else None


def _user_of(client: Any, session_id: Any) -> str | None:
    """The user of a session in the client Clerk piggybacks on every answer."""
    if not isinstance(client, Mapping):
        return None
    for session in client.get("sessions") or ():
        if isinstance(session, Mapping) and session.get("id") == session_id:
            user = session.get("user") or {}
            public = session.get("public_user_data") or {}
            user_id = user.get("id") or public.get("user_id")
            return user_id if isinstance(user_id, str) else None
    return None
