"""CLERK_MODE=bapi: codes sent and checked through the Backend API, with the secret key.

No Frontend API, so no per-IP limit: Clerk limits BAPI per instance (1,000 requests per 10 s
in production). Sign-in: find the user by email address or phone number, then
`prepare_verification` / `attempt_verification` on that identifier. BAPI creates no session;
`VerifiedIdentity.sign_in_url` (a sign-in token) lets the person open the app signed in.

Sign-up needs an identifier to send the code to, and in Clerk an identifier belongs to a user.
So the user is created first, with the identifier *reserved*: unverified, locked so nobody else
can claim it. Only a right code verifies it. The account carries a marker in its private
metadata until the sign-up is finished; accounts whose sign-up was abandoned are deleted (when
their code is failed too often, and by `sweep_abandoned` after `abandon_after`).

Clerk's user settings can require a first or last name, or a username, at creation: Clerk
then refuses the user with `form_data_missing`, naming them (`meta.param_names`). The chat asks
for those only after the code, so the user is created again with `skip_user_requirement` (the
option Clerk documents for creating users with minimal data and asking for the required fields
later), and the names go into the challenge; `complete` writes them to the user. A requirement
the chat cannot meet (a phone number when signing up by email, legal consent) is a lasting
refusal before any code is sent. So is an account that is banned or locked for good, or that
signs in with a second factor: Clerk would ask for it, so one code here must not do instead.

An answer can be lost after Clerk acted on it (a crash before the link is stored). Typed again,
the code is refused as already verified; the identifier is then read back from the user, and
if it is verified, the sign-in finishes from there.
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
    CodeExpired,
    InvalidIdentifier,
    LinkRef,
    NeedsMoreFields,
    Refused,
    Requester,
    TooManyAttempts,
    WrongCode,
)
from bot.auth.clerk.backend_api import BackendAPI
from bot.auth.clerk.errors import (
    BLOCKED,
    MFA_HINT,
    MFA_REQUIRED,
    TAKEN,
    UNLOCK_HINT,
    ClerkAPIError,
    describe,
    refuse_requirements,
    to_auth_error,
)
from bot.auth.clerk.flow import FIELDS, Verified, digits, expiry, new_challenge
from bot.identifiers import Identifier, IdentifierKind

log = logging.getLogger("bot.auth.clerk")

# Private-metadata key on accounts Passgram created whose sign-up is not finished yet.
PENDING_KEY = "passgram_pending"
# How far back `sweep_abandoned` looks: a sweep at least this often finds every abandoned one.
SWEEP_LOOKBACK = timedelta(days=7)

_IDENTIFICATIONS: dict[IdentifierKind, str] = {"email": "email_addresses", "phone": "phone_numbers"}
_VALUE: dict[IdentifierKind, str] = {"email": "email_address", "phone": "phone_number"}
_PAGE = 100


class BapiFlow:
    def __init__(
        self,
        api: BackendAPI,
        *,
        clock: Callable[[], datetime],
        code_attempts: int = 3,
        resend_after: timedelta = timedelta(seconds=30),
        abandon_after: timedelta = timedelta(hours=1),
    ) -> None:
        self._api = api
        self._clock = clock
        self._code_attempts = code_attempts
        self._resend_after = resend_after
        self.abandon_after = abandon_after

    async def start(self, identifier: Identifier, who: Requester) -> Challenge:
        try:
            user, identification, created, missing = await self._account(identifier, who)
            verification = await self._api.prepare_verification(
                identifier.kind, identification["id"], who.notify_wait
            )
        except ClerkAPIError as err:
            raise self._error(err, identifier) from None
        state = {
            "mode": "bapi",
            "user_id": user["id"],
            "identification_id": identification["id"],
            "verification_id": verification["id"],
            "created": created,
            "missing": list(missing),
        }
        return self._challenge(identifier, state, verification)

    async def resend(self, challenge: Challenge, who: Requester) -> Challenge:
        state = challenge.state
        try:
            verification = await self._api.prepare_verification(
                challenge.identifier.kind, state["identification_id"], who.notify_wait
            )
        except ClerkAPIError as err:
            if err.status == 404:
                # The sign-up this code was for was abandoned and deleted: begin again.
                return await self.start(challenge.identifier, who)
            raise self._error(err, challenge.identifier) from None
        return self._challenge(
            challenge.identifier, {**state, "verification_id": verification["id"]}, verification
        )

    async def verify(self, challenge: Challenge, code: str, who: Requester) -> Verified:
        state = challenge.state
        identifier = challenge.identifier
        try:
            verification = await self._api.attempt_verification(
                identifier.kind,
                state["identification_id"],
                state["verification_id"],
                digits(code),
                who.notify_wait,
            )
            status = verification.get("status")
        except ClerkAPIError as err:
            if err.status == 404:
                # Its sign-up was abandoned and deleted (or the code replaced): a new code, then.
                log.info("%s", describe(err, identifier))
                raise CodeExpired() from None
            if err.code != "verification_already_verified":
                raise self._error(err, identifier) from None
            # Sent again after an answer that got lost: what Clerk holds now decides.
            await self._read_back(challenge, err)
            verification, status = {}, "verified"
        if status == "verified":
            state["proven"] = True
            if state["created"] and state["missing"]:
                raise NeedsMoreFields(tuple(state["missing"]), challenge)
            return self._verified(state)
        log.info("clerk attempt_verification: %s for %s", status, identifier.masked)
        if status == "expired":
            raise CodeExpired()
        if status == "failed":
            if state["created"]:
                await self._discard(state["user_id"])
            raise TooManyAttempts(retry_at=self._clock())
        attempts = verification.get("attempts")
        used = attempts if isinstance(attempts, int) else self._code_attempts - 1
        raise WrongCode(max(1, self._code_attempts - used))

    async def complete(
        self, challenge: Challenge, fields: Mapping[str, str], who: Requester
    ) -> Verified:
        state = challenge.state
        if not state.get("proven"):
            raise BackendUnavailable("clerk: fields before the code was verified")
        update = {name: fields[name].strip() for name in FIELDS if fields.get(name, "").strip()}
        try:
            user = await self._api.update_user(state["user_id"], update, who.notify_wait)
        except ClerkAPIError as err:
            if err.param in FIELDS:
                log.info("%s", describe(err, challenge.identifier))
                raise NeedsMoreFields((err.param,), challenge) from None
            raise self._error(err, challenge.identifier) from None
        if not _usable(_identification(user, challenge.identifier), verified_only=True):
            log.warning("clerk users.update: %s is not verified", challenge.identifier.masked)
            raise BackendUnavailable("clerk: identifier not verified")
        state["missing"] = [name for name in state["missing"] if not user.get(name)]
        if state["missing"]:
            raise NeedsMoreFields(tuple(state["missing"]), challenge)
        return self._verified(state)

    async def revoke(self, link: LinkRef) -> None:
        # BAPI sign-in creates no session; one that came from a sign-in token is the app's.
        if link.session_id is not None:
            await self._api.revoke_session(link.session_id)

    async def sweep_abandoned(self) -> int:
        """Delete accounts whose sign-up began here and was never finished. Returns how many.

        Run it now and then (hourly is plenty); it looks back `SWEEP_LOOKBACK`.
        """
        before = self._clock() - self.abandon_after
        after = before - SWEEP_LOOKBACK
        deleted = offset = 0
        while True:
            page = await self._api.users_created_between(
                _ms(after), _ms(before), offset=offset, limit=_PAGE
            )
            gone = 0
            for user in page:
                if _abandoned(user):
                    await self._api.delete_user(user["id"])
                    gone += 1
            deleted += gone
            if len(page) < _PAGE:
                break
            offset += len(page) - gone  # deleting shifts the rest of the list forward
        if deleted:
            log.info("clerk: deleted %d abandoned sign-up(s)", deleted)
        return deleted

    # -- steps -------------------------------------------------------------------------------

    async def _account(
        self, identifier: Identifier, who: Requester
    ) -> tuple[dict[str, Any], dict[str, Any], bool, tuple[str, ...]]:
        """The user holding the identifier (created if nobody does), and the identification."""
        found = await self._find(identifier, who)
        if found is None:
            try:
                return await self._create(identifier, who)
            except ClerkAPIError as err:
                if err.code != "form_identifier_exists":
                    raise
                # Claimed a moment ago (by a sign-up elsewhere): it is a sign-in now.
                found = await self._find(identifier, who)
                if found is None:
                    raise
        user, identification = found
        if not _usable(identification, verified_only=False):
            # Someone else's unproven address: proving it here must not hand over their account.
            log.info("clerk users.list: %s is held unverified", identifier.masked)
            raise InvalidIdentifier(TAKEN)
        self._check_can_sign_in(user, identifier)
        marker = _pending(user)
        missing = tuple(marker.get("missing") or ()) if marker is not None else ()
        return user, identification, marker is not None, missing

    async def _find(
        self, identifier: Identifier, who: Requester
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        for user in await self._api.find_users(identifier, who.notify_wait):
            identification = _identification(user, identifier)
            if identification is not None:
                return user, identification
        return None

    async def _create(
        self, identifier: Identifier, who: Requester
    ) -> tuple[dict[str, Any], dict[str, Any], bool, tuple[str, ...]]:
        marker: dict[str, Any] = {"since": _ms(self._clock())}
        body: dict[str, Any] = {
            _VALUE[identifier.kind]: [identifier.value],
            f"{_VALUE[identifier.kind]}_identification_status": ["reserved"],
            "skip_password_requirement": True,
            "private_metadata": {PENDING_KEY: marker},
        }
        missing: tuple[str, ...] = ()
        try:
            user = await self._api.create_user(body, who.notify_wait)
        except ClerkAPIError as err:
            required = _required(err)
            if required is None:
                raise
            unmet = [name for name in required if name not in FIELDS]
            if unmet:
                raise refuse_requirements(
                    unmet, f"clerk users.create for {identifier.masked}"
                ) from None
            missing = tuple(name for name in FIELDS if name in required)
            marker["missing"] = list(missing)
            body["skip_user_requirement"] = True
            user = await self._api.create_user(body, who.notify_wait)
        identification = _identification(user, identifier)
        if identification is None:
            raise ClerkAPIError("users.create", 200)
        return user, identification, True, missing

    def _check_can_sign_in(self, user: Mapping[str, Any], identifier: Identifier) -> None:
        """Refuse, before any code, an account Clerk would not let sign in with one code."""
        if user.get("banned"):
            log.warning("clerk users.list: the account of %s is banned", identifier.masked)
            raise Refused(BLOCKED)
        if user.get("two_factor_enabled"):
            # Its owner asked for two steps; one code in a chat must not stand in for both.
            log.error(
                "clerk users.list: the account of %s signs in with a second factor, which a "
                "chat cannot ask for; %s",
                identifier.masked,
                MFA_HINT,
            )
            raise Refused(MFA_REQUIRED)
        if not user.get("locked"):
            return
        seconds = user.get("lockout_expires_in_seconds")
        if isinstance(seconds, int | float):
            log.info("clerk users.list: the account of %s is locked for now", identifier.masked)
            raise TooManyAttempts(retry_at=self._clock() + timedelta(seconds=seconds))
        # "A null value for a locked user indicates that lockout never expires."
        log.warning(
            "clerk users.list: the account of %s is locked; %s", identifier.masked, UNLOCK_HINT
        )
        raise Refused(BLOCKED)

    async def _read_back(self, challenge: Challenge, refusal: ClerkAPIError) -> None:
        """After "already verified": make sure the identifier is verified on the user now, and
        see which of the fields sign-up asked for it has since."""
        state = challenge.state
        try:
            user = await self._api.get_user(state["user_id"])
        except ClerkAPIError as err:
            raise self._error(err, challenge.identifier) from None
        if user is None:
            raise CodeExpired()  # the account went (a sweep): a new code starts again
        if not _usable(_identification(user, challenge.identifier), verified_only=True):
            raise self._error(refusal, challenge.identifier)
        log.info(
            "clerk attempt_verification: a right code went through before, for %s; finishing it",
            challenge.identifier.masked,
        )
        state["missing"] = [name for name in state["missing"] if not user.get(name)]

    async def _discard(self, user_id: str) -> None:
        """Delete an account whose sign-up failed, unless it has been used since."""
        try:
            user = await self._api.get_user(user_id)
            if user is not None and _abandoned(user):
                await self._api.delete_user(user_id)
        except (ClerkAPIError, BackendUnavailable) as err:
            # The sweep will find it.
            log.warning("clerk: could not delete an abandoned sign-up now: %s", err)

    def _verified(self, state: Mapping[str, Any]) -> Verified:
        return Verified(
            user_id=state["user_id"],
            created=bool(state["created"]),
            state={"mode": "bapi"},
            # The marker goes with the link, in the same write, or the sign-up is not finished.
            metadata={PENDING_KEY: None} if state["created"] else {},
        )

    def _challenge(
        self, identifier: Identifier, state: dict[str, Any], verification: Mapping[str, Any]
    ) -> Challenge:
        now = self._clock()
        return new_challenge(
            identifier,
            expires_at=expiry(verification.get("expire_at"), now),
            resend_at=now + self._resend_after,
            state=state,
        )

    def _error(self, err: ClerkAPIError, identifier: Identifier) -> AuthError:
        return to_auth_error(err, identifier=identifier, now=self._clock())


def _identification(user: Mapping[str, Any], identifier: Identifier) -> dict[str, Any] | None:
    value_key = _VALUE[identifier.kind]
    for item in user.get(_IDENTIFICATIONS[identifier.kind]) or ():
        value = item.get(value_key)
        if isinstance(value, str) and _same(value, identifier):
            return dict(item)
    return None


def _same(value: str, identifier: Identifier) -> bool:
    if identifier.kind == "email":
        return value.casefold() == identifier.value.casefold()
    return value == identifier.value


def _usable(identification: Mapping[str, Any] | None, *, verified_only: bool) -> bool:
    """Verified, or (for signing in) reserved: Clerk lets reserved identifiers sign in."""
    if identification is None:
        return False
    verification = identification.get("verification") or {}
    if verification.get("status") == "verified":
        return True
    return not verified_only and bool(identification.get("reserved"))


def _pending(user: Mapping[str, Any]) -> dict[str, Any] | None:
    marker = (user.get("private_metadata") or {}).get(PENDING_KEY)
    return marker if isinstance(marker, dict) else None


def _abandoned(user: Mapping[str, Any]) -> bool:
    return _pending(user) is not None and user.get("last_sign_in_at") is None


def _required(err: ClerkAPIError) -> list[str] | None:
    """What a refused user creation says the instance requires, if that is why it was refused:
    `form_data_missing` with the names in `meta.param_names`."""
    if err.code != "form_data_missing":
        return None
    names = err.errors[0].meta.get("param_names")
    if not isinstance(names, list) or not names:
        return None
    return [name for name in names if isinstance(name, str)]


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)
