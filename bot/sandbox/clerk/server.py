"""The loopback Clerk: both APIs on one port, Clerk's limits, and a record of every exchange."""

from __future__ import annotations

import json
import math
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.identifiers import Identifier
from bot.sandbox.clerk import render
from bot.sandbox.clerk.backend import BackendAPI
from bot.sandbox.clerk.frontend import CLIENT_KEY, FrontendAPI
from bot.sandbox.clerk.model import (
    REQUIREMENTS,
    ClerkFail,
    Clock,
    Instance,
    Kind,
    SentCode,
    identifier_key,
)
from bot.sandbox.loopback import LoopbackServer

FAPI_PREFIX = "/fapi"
BAPI_PREFIX = "/bapi"

# Clerk's published per-IP Frontend API limits: (calls, window in seconds) per lane.
FAPI_LIMITS: dict[str, tuple[int, float]] = {
    "sign_in_create": (5, 10.0),
    "sign_up_create": (5, 10.0),
    "sign_in_attempt": (3, 10.0),
    "sign_up_attempt": (3, 10.0),
}
_FAPI_LANES = {
    "createSignIn": "sign_in_create",
    "createSignUps": "sign_up_create",
    "attemptSignInFactorOne": "sign_in_attempt",
    "attemptSignUpsVerification": "sign_up_attempt",
}
_PER_USER_WRITES = frozenset({"UpdateUser", "UpdateUserMetadata"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request as it arrived and the answer the double gave."""

    api: str  # "fapi" or "bapi"
    operation: str | None  # the spec's operationId, None for an unknown route
    method: str
    path: str  # as the spec writes it: /v1/... for FAPI, /... (after /v1) for BAPI
    query: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]
    body: bytes
    status: int
    response_headers: Mapping[str, str]
    response_body: bytes
    at: float  # time.monotonic() at arrival
    lane: str | None  # the rate-limit lane it counted against
    remote: str

    def json(self) -> Any:
        return json.loads(self.response_body) if self.response_body else None


@dataclass
class _Injected:
    status: int
    code: str | None
    operation: str | None
    retry_after: int | None


class SlidingWindow:
    """At most `calls` requests per `window` seconds per key, counted at arrival."""

    def __init__(self, calls: int, window: float) -> None:
        self.calls = calls
        self.window = window
        self._log: defaultdict[str, deque[float]] = defaultdict(deque)

    def wait(self, key: str, now: float) -> float | None:
        """None if a request may pass now, else the seconds until one may."""
        log = self._log[key]
        while log and log[0] <= now - self.window:
            log.popleft()
        return log[0] + self.window - now if len(log) >= self.calls else None

    def record(self, key: str, now: float) -> None:
        self._log[key].append(now)


@dataclass
class _Limits:
    fapi: dict[str, SlidingWindow] = field(default_factory=dict)
    bapi: SlidingWindow | None = None
    per_user: SlidingWindow | None = None


class ClerkDouble(LoopbackServer):
    """A Clerk instance on 127.0.0.1: `fapi_url` and `bapi_url` for CLERK_FAPI_URL/CLERK_BAPI_URL.

    Test mode as in Clerk: `+clerk_test` emails and +1 XXX 555-0100…0199 take 424242; other
    identifiers get a random code, read with `last_code(identifier)` (or the `outbox`).
    `fapi_limits`: {lane: (calls, window s)} per client IP; `bapi_limit` per secret key and
    `user_write_limit` per user, as Clerk's; a request over a limit gets 429 with Retry-After.
    Time for codes and sessions is `clock`, which `advance(seconds)` moves.
    """

    def __init__(
        self,
        *,
        secret_key: str | None = None,
        clock: Clock | None = None,
        required_fields: Iterable[str] = (),
        max_attempts: int = 3,
        code_ttl: float = 600.0,
        resend_cooldown: float = 30.0,
        native_api: bool = True,
        fapi_limits: Mapping[str, tuple[int, float]] | None = None,
        bapi_limit: tuple[int, float] | None = (100, 10.0),
        user_write_limit: tuple[int, float] | None = (10, 10.0),
    ) -> None:
        super().__init__()
        self.clock = clock or Clock()
        self.instance = Instance(
            self.clock,
            max_attempts=max_attempts,
            code_ttl=code_ttl,
            resend_cooldown=resend_cooldown,
            required_fields=required_fields,
            native_api=native_api,
        )
        self.secret_key = secret_key or "sk_test_" + secrets.token_urlsafe(24)
        self.exchanges: list[Exchange] = []
        limits = FAPI_LIMITS if fapi_limits is None else fapi_limits
        if unknown := set(limits) - set(FAPI_LIMITS):
            # A misspelt lane would silently leave the real one unlimited.
            raise ValueError(f"no such FAPI limit: {', '.join(sorted(unknown))}")
        self._limits = _Limits(
            fapi={lane: SlidingWindow(*limit) for lane, limit in limits.items()},
            bapi=SlidingWindow(*bapi_limit) if bapi_limit else None,
            per_user=SlidingWindow(*user_write_limit) if user_write_limit else None,
        )
        self._injected: deque[_Injected] = deque()
        self._frontend = FrontendAPI(self.instance)
        self._backend = BackendAPI(self.instance, self.secret_key)

    # -- lifecycle ---------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.add_routes(self._frontend.routes(FAPI_PREFIX))
        app.add_routes(self._backend.routes(BAPI_PREFIX))
        return app

    @property
    def fapi_url(self) -> str:
        return self.url + FAPI_PREFIX

    @property
    def bapi_url(self) -> str:
        return self.url + BAPI_PREFIX

    # -- for tests and the sandbox -----------------------------------------------------------

    @property
    def outbox(self) -> list[SentCode]:
        return self.instance.outbox

    def last_code(self, identifier: Identifier | str) -> str | None:
        """The last code sent to this email address or phone number (E.164)."""
        value = identifier.value if isinstance(identifier, Identifier) else identifier
        return self.instance.last_codes.get(identifier_key(value))

    def create_user(
        self,
        *,
        email: str | None = None,
        phone: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        username: str | None = None,
        reserved: bool = False,
        private_metadata: Mapping[str, Any] | None = None,
        second_factor: bool = False,
    ) -> str:
        """A user as if created in the Dashboard (identifiers verified, or reserved);
        `second_factor`: with an authenticator app enrolled, so signing in takes two steps."""
        status = "reserved" if reserved else "verified"
        given: tuple[tuple[Kind, str | None], ...] = (("email", email), ("phone", phone))
        identifiers = [(kind, value, status) for kind, value in given if value is not None]
        fields = {"first_name": first_name, "last_name": last_name, "username": username}
        user = self.instance.create_user(
            identifiers, fields=fields, private_metadata=private_metadata
        )
        user.second_factor = second_factor
        return user.id

    def ban(self, user_id: str) -> None:
        """Ban the user, as the Dashboard does: no more sign-ins."""
        self.instance.user(user_id).banned = True

    def lock(self, user_id: str, seconds: float | None = None) -> None:
        """Lock the user for `seconds` (Clerk's clock), or until unlocked (None)."""
        user = self.instance.user(user_id)
        user.locked = True
        user.lockout_expire_at = None if seconds is None else self.clock.ms() + int(seconds * 1000)

    def restrict_sign_ups(self) -> None:
        """Restricted sign-up mode: only invited or allowlisted people may sign up."""
        self.instance.sign_up_mode = "restricted"

    def user(self, user_id: str) -> dict[str, Any] | None:
        """The user as BAPI shows it, or None."""
        user = self.instance.users.get(user_id)
        return render.user(self.instance, user) if user else None

    def find_user(self, identifier: Identifier | str) -> dict[str, Any] | None:
        value = identifier.value if isinstance(identifier, Identifier) else identifier
        item = self.instance.identification_for(value)
        return self.user(item.user_id) if item and item.user_id else None

    def users(self) -> list[dict[str, Any]]:
        return [render.user(self.instance, u) for u in self.instance.users.values()]

    def sessions(self, user_id: str | None = None) -> list[dict[str, Any]]:
        """Sessions as BAPI shows them (every status), of one user or of all."""
        return [
            render.backend_session(s)
            for s in self.instance.sessions.values()
            if user_id is None or s.user_id == user_id
        ]

    def metadata(self, user_id: str) -> dict[str, Any]:
        """The user's private metadata."""
        return dict(self.instance.user(user_id).private_metadata)

    def require_fields(self, *names: str) -> None:
        """What sign-up requires besides the identifier: first_name, last_name, username,
        email_address, phone_number, password, legal_accepted."""
        unknown = set(names) - set(REQUIREMENTS)
        if unknown:
            raise ValueError(f"not a sign-up field: {', '.join(sorted(unknown))}")
        self.instance.required_fields = set(names)

    def advance(self, seconds: float) -> None:
        """Move Clerk's clock (code expiry, resend cooldown); rate limits keep real time."""
        self.clock.advance(seconds)

    def fail_next(
        self,
        status: int,
        code: str | None = None,
        *,
        operation: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next request (for `operation`, an operationId, if given) with an error."""
        self._injected.append(_Injected(status, code, operation, retry_after))

    def calls(self, operation: str) -> list[Exchange]:
        return [e for e in self.exchanges if e.operation == operation]

    # -- the server --------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        arrived = time.monotonic()
        body = await request.read()
        api = "fapi" if request.path.startswith(FAPI_PREFIX) else "bapi"
        route = request.match_info.route
        operation = route.name if route.resource is not None else None
        lane: str | None = None
        response: web.StreamResponse | None
        try:
            response = self._injected_answer(request, api, operation)
            if response is None:
                lane = self._count(request, api, operation, arrived)
                if operation is None:
                    raise ClerkFail(404, "resource_not_found")
                response = await handler(request)
        except ClerkFail as fail:
            response = self._error(request, api, fail)
        except web.HTTPException as exc:  # 405 and the like, answered the way Clerk would
            response = self._error(request, api, ClerkFail(exc.status, "resource_not_found"))
        assert isinstance(response, web.Response)
        path = request.path.removeprefix(FAPI_PREFIX if api == "fapi" else BAPI_PREFIX + "/v1")
        self.exchanges.append(
            Exchange(
                api=api,
                operation=operation,
                method=request.method,
                path=path,
                query=tuple(request.query.items()),
                headers=dict(request.headers),
                body=body,
                status=response.status,
                response_headers=dict(response.headers),
                response_body=response.body if isinstance(response.body, bytes) else b"",
                at=arrived,
                lane=lane,
                remote=request.remote or "",
            )
        )
        return response

    def _count(
        self, request: web.Request, api: str, operation: str | None, now: float
    ) -> str | None:
        """Counts the request against its limits; raises the 429 when it is over one."""
        checks: list[tuple[str, SlidingWindow, str]] = []
        if api == "fapi" and operation in _FAPI_LANES:
            lane = _FAPI_LANES[operation]
            if lane in self._limits.fapi:
                # Clerk counts the Frontend API per client IP.
                checks.append((lane, self._limits.fapi[lane], request.remote or ""))
        if api == "bapi":
            if operation in _PER_USER_WRITES and self._limits.per_user is not None:
                checks.append(("user_write", self._limits.per_user, request.match_info["user_id"]))
            if self._limits.bapi is not None:
                checks.append(("bapi", self._limits.bapi, "instance"))
        waits = [w for _, window, key in checks if (w := window.wait(key, now)) is not None]
        if waits:
            # Clerk counts what it serves, so a refused request takes no slot.
            raise ClerkFail(429, "too_many_requests", retry_after=max(1, math.ceil(max(waits))))
        for _, window, key in checks:
            window.record(key, now)
        return checks[0][0] if checks else None

    def _injected_answer(
        self, request: web.Request, api: str, operation: str | None
    ) -> web.Response | None:
        for injected in self._injected:
            if injected.operation in (None, operation):
                self._injected.remove(injected)
                if injected.code is None:  # an outage: no Clerk body, maybe a Retry-After
                    headers = {}
                    if injected.retry_after is not None:
                        headers["Retry-After"] = str(injected.retry_after)
                    return web.Response(status=injected.status, text="unavailable", headers=headers)
                fail = ClerkFail(injected.status, injected.code, retry_after=injected.retry_after)
                return self._error(request, api, fail)
        return None

    def _error(self, request: web.Request, api: str, fail: ClerkFail) -> web.Response:
        body: dict[str, Any] = {"errors": fail.items(), "clerk_trace_id": secrets.token_hex(16)}
        headers = {}
        if fail.retry_after is not None:
            headers["Retry-After"] = str(fail.retry_after)
        client = request.get(CLIENT_KEY)
        if api == "fapi" and client is not None:
            # Clerk piggybacks the client on errors too, and keeps handing out its token.
            body["meta"] = {"client": render.client(self.instance, client)}
            headers["Authorization"] = client.token
        return web.json_response(body, status=fail.status, headers=headers)
