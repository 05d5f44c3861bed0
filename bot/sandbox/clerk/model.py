"""The Clerk instance the double pretends to be: users, clients, sign-ins, sign-ups, sessions,
verifications, and the rules Clerk applies to them.

Kept free of HTTP so the rules read as rules: every method either changes the state and returns
the object to render, or raises `ClerkFail` with the status and code Clerk would answer.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Kind = Literal["email", "phone"]

# Clerk's test mode: these identifiers get no email or SMS, and the code is always 424242.
TEST_CODE = "424242"
_TEST_PHONE = re.compile(r"\+1[0-9]{3}55501[0-9]{2}")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
FIELDS = ("first_name", "last_name", "username")
PARAM: dict[Kind, str] = {"email": "email_address", "phone": "phone_number"}
# What an instance's settings can require of a new user (Dashboard → User & authentication).
REQUIREMENTS = (*FIELDS, "email_address", "phone_number", "password", "legal_accepted")
STRATEGY: dict[Kind, str] = {"email": "email_code", "phone": "phone_code"}

_DAY_MS = 86_400_000

_MESSAGES = {
    "form_code_incorrect": ("is incorrect", "Incorrect code"),
    "verification_expired": (
        "expired",
        "This verification has expired. You must create a new one.",
    ),
    "verification_failed": (
        "failed",
        "Too many failed attempts. You have to try again with the same or another method.",
    ),
    "verification_missing": (
        "missing verification",
        "This strategy requires verification preparation before attempting to validate it.",
    ),
    "verification_already_verified": (
        "already verified",
        "This verification has already been verified.",
    ),
    "form_data_missing": (
        "missing data",
        "Supplied data doesn't match user requirements set for this instance",
    ),
    "user_banned": (
        "User banned",
        "You have been banned. If you think this was by mistake, please contact support.",
    ),
    "user_locked": (
        "Account locked",
        "Your account is locked. For more information, please contact support.",
    ),
    "sign_up_mode_restricted": (
        "Sign-ups restricted",
        "Sign-ups are restricted to invited or allowed users for this application.",
    ),
    "verification_code_too_many_requests": (
        "Too many requests",
        "Too many verification code requests. Please wait at least 30 seconds to receive "
        "your code before trying again.",
    ),
    "too_many_requests": ("Too many requests", "Too many requests, retry later"),
    "form_identifier_not_found": ("Couldn't find your account.", "Couldn't find your account."),
    "form_identifier_exists": (
        "That identifier is taken. Please try another.",
        "That identifier is taken. Please try another.",
    ),
    "form_param_format_invalid": ("is invalid", "The value is not in a valid format."),
    "form_param_missing": ("is missing", "This parameter is required."),
    "form_param_unknown": ("is unknown", "This parameter is not recognised."),
    "form_param_value_invalid": ("is invalid", "The value is not valid."),
    "session_exists": ("You're already signed in", "You're already signed in."),
    "native_api_disabled": (
        "Native API disabled",
        "The Native API is disabled for this instance. Visit the Clerk Dashboard to enable it.",
    ),
    "client_not_found": (
        "No client",
        "This request is expecting a client and did not find one.",
    ),
    "authentication_invalid": (
        "Invalid authentication",
        "Unable to authenticate the request, you need to supply an active session",
    ),
    "dev_browser_unauthenticated": (
        "Browser unauthenticated",
        "Unable to authenticate this browser for your development instance.",
    ),
    "resource_not_found": ("not found", "The requested resource was not found."),
    "strategy_for_user_invalid": (
        "Invalid verification strategy",
        "The verification strategy is not valid for this account",
    ),
    "api_version_invalid": ("Invalid API version", "The requested API version is not valid."),
}


class ClerkFail(Exception):
    """What Clerk answers when it says no."""

    def __init__(
        self,
        status: int,
        code: str,
        *,
        param: str | None = None,
        retry_after: int | None = None,
        long_message: str | None = None,
        **meta: Any,
    ) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.long_message = long_message  # where Clerk's message names what it is about
        self.meta = {**({"param_name": param} if param else {}), **meta}

    def items(self) -> list[dict[str, Any]]:
        short, long = _MESSAGES.get(self.code, ("Error", "Something went wrong."))
        long = self.long_message or long
        first = {"message": short, "long_message": long, "code": self.code, "meta": self.meta}
        return [first]


class Clock:
    """Clerk's wall clock, which a test moves instead of sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def ms(self) -> int:
        return int(self.now() * 1000)

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def kind_of(value: str) -> Kind:
    return "email" if "@" in value else "phone"


def is_test_identifier(value: str) -> bool:
    if "@" in value:
        return "+clerk_test" in value.partition("@")[0].lower()
    return _TEST_PHONE.fullmatch(value) is not None


def check_format(kind: Kind, value: str, param: str) -> None:
    pattern = _EMAIL if kind == "email" else _E164
    if not pattern.fullmatch(value):
        raise ClerkFail(422, "form_param_format_invalid", param=param)


@dataclass
class Verification:
    id: str
    kind: Kind
    target: str
    code: str
    expire_at: int  # ms
    sent_at: float  # s
    attempts: int = 0
    status: str = "unverified"  # unverified, verified, failed, expired

    @property
    def strategy(self) -> str:
        return STRATEGY[self.kind]


@dataclass
class Identification:
    id: str
    kind: Kind
    value: str
    user_id: str | None
    status: str  # verified, reserved, unverified
    created_at: int
    updated_at: int
    verification: Verification | None = None
    verified_by_code: bool = False


@dataclass
class User:
    id: str
    created_at: int
    updated_at: int
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    identification_ids: list[str] = field(default_factory=list)
    public_metadata: dict[str, Any] = field(default_factory=dict)
    private_metadata: dict[str, Any] = field(default_factory=dict)
    unsafe_metadata: dict[str, Any] = field(default_factory=dict)
    last_sign_in_at: int | None = None
    last_active_at: int | None = None
    banned: bool = False
    locked: bool = False
    lockout_expire_at: int | None = None  # ms; None while locked: until an admin unlocks
    second_factor: bool = False  # an authenticator app (TOTP) enrolled


@dataclass
class Session:
    id: str
    user_id: str
    client_id: str
    created_at: int
    updated_at: int
    last_active_at: int
    expire_at: int
    abandon_at: int
    status: str = "active"


@dataclass
class SignIn:
    id: str
    client_id: str
    identifier: str
    user_id: str
    abandon_at: int
    status: str = "needs_first_factor"
    verification: Verification | None = None
    created_session_id: str | None = None


@dataclass
class SignUp:
    id: str
    client_id: str
    kind: Kind
    value: str
    abandon_at: int
    fields: dict[str, str] = field(default_factory=dict)
    status: str = "missing_requirements"
    verification: Verification | None = None
    created_user_id: str | None = None
    created_session_id: str | None = None


@dataclass
class Client:
    id: str
    token: str
    created_at: int
    updated_at: int
    sign_in_id: str | None = None
    sign_up_id: str | None = None
    session_ids: list[str] = field(default_factory=list)
    last_active_session_id: str | None = None


@dataclass
class SignInToken:
    id: str
    user_id: str
    token: str
    created_at: int
    updated_at: int
    expire_at: int
    status: str = "pending"


@dataclass(frozen=True, slots=True)
class SentCode:
    """A code the instance "sent": what the sandbox's dev outbox shows."""

    identifier: str
    code: str
    channel: str  # email or sms
    at: datetime


class Instance:
    """One Clerk instance's state and rules."""

    def __init__(
        self,
        clock: Clock,
        *,
        max_attempts: int = 3,
        code_ttl: float = 600.0,
        resend_cooldown: float = 30.0,
        required_fields: Iterable[str] = (),
        native_api: bool = True,
    ) -> None:
        self.clock = clock
        self.max_attempts = max_attempts
        self.code_ttl = code_ttl
        self.resend_cooldown = resend_cooldown
        self.required_fields = set(required_fields)
        self.native_api = native_api
        self.sign_up_mode = "public"  # or "restricted": sign-ups by invitation only
        self.users: dict[str, User] = {}
        self.identifications: dict[str, Identification] = {}
        self.sessions: dict[str, Session] = {}
        self.sign_ins: dict[str, SignIn] = {}
        self.sign_ups: dict[str, SignUp] = {}
        self.clients: dict[str, Client] = {}
        self.sign_in_tokens: dict[str, SignInToken] = {}
        self.verifications: dict[str, Verification] = {}
        self.outbox: list[SentCode] = []
        self.last_codes: dict[str, str] = {}
        # Indexes, so a sandbox or benchmark with thousands of users stays quick.
        self._by_value: dict[str, str] = {}  # identifier -> identification id
        self._by_token: dict[str, str] = {}  # client token -> client id

    # -- lookups ----------------------------------------------------------------------------

    def identification_for(self, value: str) -> Identification | None:
        identification_id = self._by_value.get(identifier_key(value))
        return self.identifications[identification_id] if identification_id else None

    def user_identifications(self, user: User, kind: Kind | None = None) -> list[Identification]:
        items = (self.identifications[i] for i in user.identification_ids)
        return [item for item in items if kind is None or item.kind == kind]

    def client_by_token(self, token: str) -> Client | None:
        client_id = self._by_token.get(token)
        return self.clients[client_id] if client_id else None

    def user(self, user_id: str) -> User:
        user = self.users.get(user_id)
        if user is None:
            raise ClerkFail(404, "resource_not_found")
        return user

    def lockout_left(self, user: User) -> int | None:
        """Seconds until a timed lockout ends (0 once it has); None for no end."""
        if user.lockout_expire_at is None:
            return None
        return max(0, -(-(user.lockout_expire_at - self.clock.ms()) // 1000))

    def is_locked(self, user: User) -> bool:
        return user.locked and self.lockout_left(user) != 0

    def check_can_sign_in(self, user: User) -> None:
        if user.banned:
            raise ClerkFail(403, "user_banned")
        if self.is_locked(user):
            left = self.lockout_left(user)
            if left is None:
                raise ClerkFail(403, "user_locked")
            raise ClerkFail(403, "user_locked", lockout_expires_in_seconds=left)

    def unmet_requirements(
        self,
        fields: Mapping[str, Any],
        kinds: Iterable[Kind],
        *,
        password: bool = False,
        legal_accepted: bool = False,
    ) -> list[str]:
        """What the instance's settings require of a new user that it would not have."""
        given = {PARAM[kind] for kind in kinds}
        have = {name for name in FIELDS if fields.get(name)} | given
        if password:
            have.add("password")
        if legal_accepted:
            have.add("legal_accepted")
        missing = [name for name in REQUIREMENTS if name in self.required_fields - have]
        if not given and "email_address" not in missing and "phone_number" not in missing:
            missing.append("email_address")  # a user needs some way to sign in
        return missing

    # -- codes ------------------------------------------------------------------------------

    def send_code(self, kind: Kind, target: str) -> Verification:
        code = TEST_CODE if is_test_identifier(target) else f"{secrets.randbelow(10**6):06d}"
        now = self.clock.now()
        verification = Verification(
            id=new_id("ver"),
            kind=kind,
            target=target,
            code=code,
            expire_at=int((now + self.code_ttl) * 1000),
            sent_at=now,
        )
        self.verifications[verification.id] = verification
        self.last_codes[identifier_key(target)] = code
        self.outbox.append(
            SentCode(target, code, "email" if kind == "email" else "sms", datetime.now(UTC))
        )
        return verification

    def check_resend(self, previous: Verification | None) -> None:
        if previous is None or previous.status != "unverified":
            return
        wait = previous.sent_at + self.resend_cooldown - self.clock.now()
        if wait > 0:
            raise ClerkFail(429, "verification_code_too_many_requests", retry_after=int(wait) + 1)

    def refresh(self, verification: Verification) -> None:
        if verification.status == "unverified" and self.clock.ms() > verification.expire_at:
            verification.status = "expired"

    def attempt(self, verification: Verification, code: str) -> None:
        """Check a code; the outcome is in `verification.status` (Clerk's BAPI style)."""
        self.refresh(verification)
        if verification.status != "unverified":
            return
        verification.attempts += 1
        if hmac.compare_digest(code.encode(), verification.code.encode()):
            verification.status = "verified"
        elif verification.attempts >= self.max_attempts:
            verification.status = "failed"

    def attempt_or_fail(self, verification: Verification | None, code: str) -> None:
        """Check a code; anything but a right one raises (Clerk's FAPI style)."""
        if verification is None:
            raise ClerkFail(400, "verification_missing")
        if verification.status == "verified":
            raise ClerkFail(400, "verification_already_verified")
        self.attempt(verification, code)
        if verification.status == "verified":
            return
        if verification.status == "expired":
            raise ClerkFail(400, "verification_expired")
        if verification.status == "failed":
            raise ClerkFail(400, "verification_failed")
        raise ClerkFail(422, "form_code_incorrect", param="code")

    # -- users ------------------------------------------------------------------------------

    def create_user(
        self,
        identifiers: Iterable[tuple[Kind, str, str]] = (),  # kind, value, verified|reserved
        *,
        fields: Mapping[str, str | None] | None = None,
        private_metadata: Mapping[str, Any] | None = None,
        public_metadata: Mapping[str, Any] | None = None,
        unsafe_metadata: Mapping[str, Any] | None = None,
        verified_by_code: bool = False,
    ) -> User:
        identifiers = list(identifiers)
        for kind, value, _ in identifiers:
            check_format(kind, value, PARAM[kind])
            if self.identification_for(value) is not None:
                raise ClerkFail(422, "form_identifier_exists", param=PARAM[kind])
        fields = dict(fields or {})
        self._check_username(fields.get("username"), None)
        now = self.clock.ms()
        user = User(
            id=new_id("user"),
            created_at=now,
            updated_at=now,
            first_name=fields.get("first_name"),
            last_name=fields.get("last_name"),
            username=fields.get("username"),
            private_metadata=dict(private_metadata or {}),
            public_metadata=dict(public_metadata or {}),
            unsafe_metadata=dict(unsafe_metadata or {}),
        )
        for kind, value, status in identifiers:
            item = Identification(
                id=new_id("idn"),
                kind=kind,
                value=value,
                user_id=user.id,
                status=status,
                created_at=now,
                updated_at=now,
                verified_by_code=verified_by_code,
            )
            self.identifications[item.id] = item
            self._by_value[identifier_key(value)] = item.id
            user.identification_ids.append(item.id)
        self.users[user.id] = user
        return user

    def update_user(self, user: User, fields: Mapping[str, str | None]) -> None:
        self._check_username(fields.get("username"), user.id)
        for name in FIELDS:
            if name in fields:
                setattr(user, name, fields[name] or None)
        user.updated_at = self.clock.ms()

    def delete_user(self, user: User) -> None:
        for item in self.user_identifications(user):
            del self.identifications[item.id]
            del self._by_value[identifier_key(item.value)]
        for session in self.sessions.values():
            if session.user_id == user.id and session.status == "active":
                session.status = "removed"
        del self.users[user.id]

    def merge_metadata(self, target: dict[str, Any], changes: Mapping[str, Any]) -> None:
        """Clerk's deep merge: nested objects merge, a null removes the key."""
        for key, value in changes.items():
            if value is None:
                target.pop(key, None)
            elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
                self.merge_metadata(target[key], value)
            else:
                target[key] = _plain(value)

    def _check_username(self, username: str | None, user_id: str | None) -> None:
        if not username:
            return
        if any(u.username == username and u.id != user_id for u in self.users.values()):
            raise ClerkFail(422, "form_identifier_exists", param="username")

    # -- sessions ---------------------------------------------------------------------------

    def open_session(self, client: Client, user: User) -> Session:
        now = self.clock.ms()
        session = Session(
            id=new_id("sess"),
            user_id=user.id,
            client_id=client.id,
            created_at=now,
            updated_at=now,
            last_active_at=now,
            expire_at=now + 7 * _DAY_MS,
            abandon_at=now + 30 * _DAY_MS,
        )
        self.sessions[session.id] = session
        client.session_ids.append(session.id)
        client.last_active_session_id = session.id
        user.last_sign_in_at = user.last_active_at = now
        return session

    def client_session(self, client: Client, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None or session.client_id != client.id:
            raise ClerkFail(404, "resource_not_found", param="session_id")
        return session

    def end_session(self, session: Session, status: str) -> None:
        session.status = status
        session.updated_at = self.clock.ms()
        client = self.clients.get(session.client_id)
        if client is not None and client.last_active_session_id == session.id:
            client.last_active_session_id = None

    # -- clients, sign-ins, sign-ups (FAPI) ------------------------------------------------

    def new_client(self) -> Client:
        now = self.clock.ms()
        client = Client(
            id=new_id("client"), token=secrets.token_urlsafe(32), created_at=now, updated_at=now
        )
        self.clients[client.id] = client
        self._by_token[client.token] = client.id
        return client

    def _single_session(self, client: Client) -> None:
        if any(self.sessions[s].status == "active" for s in client.session_ids):
            raise ClerkFail(400, "session_exists")

    def create_sign_in(self, client: Client, identifier: str) -> SignIn:
        self._single_session(client)
        kind = kind_of(identifier)
        check_format(kind, identifier, "identifier")
        item = self.identification_for(identifier)
        # Unverified identifiers can't sign in; reserved ones can (that's what reserved means).
        if item is None or item.user_id is None or item.status == "unverified":
            raise ClerkFail(422, "form_identifier_not_found", param="identifier")
        self.check_can_sign_in(self.users[item.user_id])
        sign_in = SignIn(
            id=new_id("sia"),
            client_id=client.id,
            identifier=identifier,
            user_id=item.user_id,
            abandon_at=self.clock.ms() + _DAY_MS,
        )
        self.sign_ins[sign_in.id] = sign_in
        client.sign_in_id = sign_in.id
        return sign_in

    def client_sign_in(self, client: Client, sign_in_id: str) -> SignIn:
        sign_in = self.sign_ins.get(sign_in_id)
        if sign_in is None or sign_in.client_id != client.id or self._gone(sign_in.abandon_at):
            raise ClerkFail(404, "resource_not_found", param="sign_in_id")
        return sign_in

    def _gone(self, abandon_at: int) -> bool:
        return self.clock.ms() > abandon_at

    def first_factors(self, sign_in: SignIn) -> list[Identification]:
        user = self.users[sign_in.user_id]
        return [item for item in self.user_identifications(user) if item.status != "unverified"]

    def prepare_first_factor(self, sign_in: SignIn, strategy: str, factor_id: str | None) -> None:
        item = self.identifications.get(factor_id or "")
        if item is None or item not in self.first_factors(sign_in):
            raise ClerkFail(422, "form_param_value_invalid", param=f"{strategy}_id")
        if STRATEGY[item.kind] != strategy:
            raise ClerkFail(400, "strategy_for_user_invalid", param="strategy")
        self.check_resend(sign_in.verification)
        sign_in.verification = self.send_code(item.kind, item.value)

    def attempt_first_factor(self, client: Client, sign_in: SignIn, code: str) -> None:
        # A second attempt on a sign-in whose code was right (its answer lost on the way):
        # Clerk does not document which error it answers; the double answers the verification's
        # own `verification_already_verified`, the documented error for exactly that state.
        self.attempt_or_fail(sign_in.verification, code)
        assert sign_in.verification is not None
        item = self.identification_for(sign_in.verification.target)
        if item is not None and item.status != "verified":
            item.status, item.verified_by_code = "verified", True
        user = self.users[sign_in.user_id]
        if user.second_factor:
            sign_in.status = "needs_second_factor"
            return
        session = self.open_session(client, user)
        sign_in.status, sign_in.created_session_id = "complete", session.id

    def create_sign_up(self, client: Client, params: Mapping[str, str]) -> SignUp:
        self._single_session(client)
        if self.sign_up_mode == "restricted":
            raise ClerkFail(403, "sign_up_mode_restricted")
        given = [kind for kind in ("email", "phone") if params.get(PARAM[kind])]
        if len(given) != 1:
            raise ClerkFail(422, "form_param_missing", param="email_address")
        kind: Kind = "email" if given[0] == "email" else "phone"
        value = params[PARAM[kind]]
        check_format(kind, value, PARAM[kind])
        if self.identification_for(value) is not None:
            raise ClerkFail(422, "form_identifier_exists", param=PARAM[kind])
        self._check_username(params.get("username"), None)
        sign_up = SignUp(
            id=new_id("sua"),
            client_id=client.id,
            kind=kind,
            value=value,
            abandon_at=self.clock.ms() + _DAY_MS,
            fields={name: params[name] for name in FIELDS if params.get(name)},
        )
        self.sign_ups[sign_up.id] = sign_up
        client.sign_up_id = sign_up.id
        return sign_up

    def client_sign_up(self, client: Client, sign_up_id: str) -> SignUp:
        sign_up = self.sign_ups.get(sign_up_id)
        if sign_up is None or sign_up.client_id != client.id or self._gone(sign_up.abandon_at):
            raise ClerkFail(404, "resource_not_found", param="sign_up_id")
        return sign_up

    def missing_fields(self, sign_up: SignUp) -> list[str]:
        # The identifier is given (unverified until its code), and Passgram never sends a
        # password or a legal acceptance.
        return self.unmet_requirements(sign_up.fields, [sign_up.kind])

    def update_sign_up(self, client: Client, sign_up: SignUp, params: Mapping[str, str]) -> None:
        self._check_username(params.get("username"), None)
        sign_up.fields.update({name: params[name] for name in FIELDS if params.get(name)})
        self._finish_sign_up(client, sign_up)

    def prepare_sign_up(self, sign_up: SignUp, strategy: str) -> None:
        if strategy != STRATEGY[sign_up.kind]:
            raise ClerkFail(400, "strategy_for_user_invalid", param="strategy")
        self.check_resend(sign_up.verification)
        sign_up.verification = self.send_code(sign_up.kind, sign_up.value)

    def attempt_sign_up(self, client: Client, sign_up: SignUp, code: str) -> None:
        self.attempt_or_fail(sign_up.verification, code)
        self._finish_sign_up(client, sign_up)

    def _finish_sign_up(self, client: Client, sign_up: SignUp) -> None:
        verified = sign_up.verification is not None and sign_up.verification.status == "verified"
        if sign_up.status == "complete" or not verified or self.missing_fields(sign_up):
            return
        # Someone else may have signed up with it while this one waited for the fields.
        if self.identification_for(sign_up.value) is not None:
            raise ClerkFail(422, "form_identifier_exists", param=PARAM[sign_up.kind])
        user = self.create_user(
            [(sign_up.kind, sign_up.value, "verified")],
            fields=sign_up.fields,
            verified_by_code=True,
        )
        session = self.open_session(client, user)
        sign_up.status = "complete"
        sign_up.created_user_id, sign_up.created_session_id = user.id, session.id

    # -- BAPI-only ---------------------------------------------------------------------------

    def prepare_identification(self, item: Identification) -> Verification:
        self.check_resend(item.verification)
        item.verification = self.send_code(item.kind, item.value)
        return item.verification

    def attempt_identification(
        self, item: Identification, verification_id: str, code: str
    ) -> Verification:
        verification = self.verifications.get(verification_id)
        if (
            verification is None
            or item.verification is None
            or verification is not item.verification
        ):
            raise ClerkFail(404, "resource_not_found", param="verification_id")
        if verification.status == "verified":
            raise ClerkFail(400, "verification_already_verified")
        self.attempt(verification, code)
        if verification.status == "verified" and item.status != "verified":
            item.status, item.verified_by_code = "verified", True
            item.updated_at = self.clock.ms()
        return verification

    def create_sign_in_token(self, user: User, expires_in: int) -> SignInToken:
        now = self.clock.ms()
        token = SignInToken(
            id=new_id("sit"),
            user_id=user.id,
            token=secrets.token_urlsafe(32),
            created_at=now,
            updated_at=now,
            expire_at=now + expires_in * 1000,
        )
        self.sign_in_tokens[token.id] = token
        return token


def identifier_key(value: str) -> str:
    """Emails compare without case, as Clerk compares them; phone numbers are E.164 already."""
    return value.casefold() if "@" in value else value


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
