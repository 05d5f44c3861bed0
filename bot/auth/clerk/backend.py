"""The Clerk auth backend: one of two flows (fapi, bapi), plus the link kept in Clerk."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from bot.auth.base import (
    BackendUnavailable,
    Challenge,
    LinkRef,
    Requester,
    VerifiedIdentity,
)
from bot.auth.clerk.backend_api import BackendAPI
from bot.auth.clerk.bapi import BapiFlow
from bot.auth.clerk.errors import ClerkAPIError, describe, to_auth_error
from bot.auth.clerk.fapi import FapiFlow
from bot.auth.clerk.flow import BACKEND_NAME, Flow, Verified
from bot.auth.clerk.keys import fapi_url as fapi_url_from_key
from bot.auth.clerk.metadata import TelegramLinks
from bot.auth.clerk.pace import InMemoryPacer, Pacer, PacerFactory, clerk_limits
from bot.auth.clerk.transport import Transport, redact_queries_in_http_log
from bot.identifiers import Identifier, IdentifierKind

log = logging.getLogger("bot.auth.clerk")

DEFAULT_BAPI_URL = "https://api.clerk.com"
# Clerk's prebuilt sign-in page takes a sign-in token in this query parameter.
TICKET_PARAM = "__clerk_ticket"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ClerkBackend:
    name = BACKEND_NAME

    def __init__(
        self,
        flow: Flow,
        *,
        backend_api: BackendAPI | None = None,
        sign_in_url: str | None = None,
        sign_in_token_ttl: timedelta = timedelta(minutes=10),
        clock: Callable[[], datetime] = _utcnow,
        owned_http: httpx.AsyncClient | None = None,
    ) -> None:
        """Prefer `from_config`. `owned_http` is the client `aclose` closes, if any."""
        self._flow = flow
        self._api = backend_api
        self._links = TelegramLinks(backend_api, clock=clock) if backend_api else None
        self._sign_in_url = sign_in_url
        self._sign_in_token_ttl = sign_in_token_ttl
        self._clock = clock
        self._owned_http = owned_http

    @classmethod
    def from_config(
        cls,
        mode: Literal["fapi", "bapi"] = "fapi",
        *,
        publishable_key: str | None = None,
        secret_key: str | None = None,
        fapi_url: str | None = None,
        bapi_url: str = DEFAULT_BAPI_URL,
        sign_in_url: str | None = None,
        http: httpx.AsyncClient | None = None,
        sign_in_create_limit: int = 5,
        sign_up_create_limit: int = 5,
        attempt_limit: int = 3,
        pace_window: float = 10.0,
        pace_margin: float = 0.5,
        bapi_limit: int | None = None,
        metadata_limit: int = 10,
        notify_min_wait: float = 1.0,
        pacer: Pacer | None = None,
        pacer_factory: PacerFactory = InMemoryPacer,
        code_attempts: int = 3,
        sign_in_token_ttl: timedelta = timedelta(minutes=10),
        abandon_after: timedelta = timedelta(hours=1),
        clock: Callable[[], datetime] = _utcnow,
    ) -> ClerkBackend:
        """A backend from plain settings values (CLERK_MODE, CLERK_PUBLISHABLE_KEY, …).

        `fapi` needs the publishable key or `fapi_url`; `bapi` needs the secret key. With a
        secret key, in either mode, the Telegram link is written to the user's private metadata.
        `http`: a shared client (not closed by `aclose`); by default the backend makes its own.
        `pacer`: one to use as it is; by default `pacer_factory` makes one (for this process, or
        shared by several replicas) with the limits given here (Clerk's published ones; the
        BAPI limit follows the key: 1,000 per 10 s for `sk_live_`, 100 for development keys).
        """
        if mode not in ("fapi", "bapi"):
            raise ValueError(f"CLERK_MODE must be fapi or bapi, not {mode!r}")
        if mode == "bapi" and not secret_key:
            raise ValueError("CLERK_MODE=bapi needs CLERK_SECRET_KEY")
        if mode == "fapi" and not (fapi_url or publishable_key):
            raise ValueError("CLERK_MODE=fapi needs CLERK_PUBLISHABLE_KEY or CLERK_FAPI_URL")
        owned = None
        if http is None:
            http = owned = httpx.AsyncClient(timeout=httpx.Timeout(10.0))
        if pacer is None:
            live = bool(secret_key and secret_key.startswith("sk_live_"))
            limits = clerk_limits(
                sign_in_create=sign_in_create_limit,
                sign_up_create=sign_up_create_limit,
                attempt=attempt_limit,
                window=pace_window,
                bapi=bapi_limit or (1000 if live else 100),
                metadata=metadata_limit,
            )
            pacer = pacer_factory(limits, margin=pace_margin, notify_min_wait=notify_min_wait)
        backend_api = None
        if secret_key:
            redact_queries_in_http_log(bapi_url)
            backend_api = BackendAPI(
                Transport(http, bapi_url, pacer, headers={"Authorization": f"Bearer {secret_key}"})
            )
        flow: Flow
        if mode == "bapi":
            assert backend_api is not None
            flow = BapiFlow(
                backend_api, clock=clock, code_attempts=code_attempts, abandon_after=abandon_after
            )
        else:
            base = fapi_url or fapi_url_from_key(publishable_key or "")
            flow = FapiFlow(
                Transport(http, base, pacer),
                backend_api=backend_api,
                clock=clock,
                code_attempts=code_attempts,
            )
        return cls(
            flow,
            backend_api=backend_api,
            sign_in_url=sign_in_url,
            sign_in_token_ttl=sign_in_token_ttl,
            clock=clock,
            owned_http=owned,
        )

    def supports(self, kind: IdentifierKind) -> bool:
        # Clerk sends the codes itself, by email and by SMS.
        return True

    async def start(self, identifier: Identifier, who: Requester) -> Challenge:
        return await self._flow.start(identifier, who)

    async def resend(self, challenge: Challenge, who: Requester) -> Challenge:
        return await self._flow.resend(challenge, who)

    async def verify(self, challenge: Challenge, code: str, who: Requester) -> VerifiedIdentity:
        verified = await self._flow.verify(challenge, code, who)
        return await self._identity(challenge, verified, who)

    async def complete(
        self, challenge: Challenge, fields: Mapping[str, str], who: Requester
    ) -> VerifiedIdentity:
        verified = await self._flow.complete(challenge, fields, who)
        return await self._identity(challenge, verified, who)

    async def revoke(self, link: LinkRef) -> None:
        """End the session, take back the sign-in token, remove the link from Clerk."""
        try:
            await self._flow.revoke(link)
            token_id = link.state.get("sign_in_token_id")
            if self._api is not None and isinstance(token_id, str):
                await self._api.revoke_sign_in_token(token_id)
            if self._links is not None:
                await self._links.unlink(link.auth_user_id, link.telegram_user_id)
        except ClerkAPIError as err:
            raise to_auth_error(err, identifier=link.identifier, now=self._clock()) from None

    async def erase(self, link: LinkRef) -> None:
        """Revoke. The Clerk account itself is the app's, not Passgram's, so it stays."""
        await self.revoke(link)

    async def sweep_abandoned(self) -> int:
        """bapi: delete accounts whose sign-up here was abandoned. fapi: Clerk does it (0)."""
        if isinstance(self._flow, BapiFlow):
            return await self._flow.sweep_abandoned()
        return 0

    async def aclose(self) -> None:
        if self._owned_http is not None:
            await self._owned_http.aclose()

    async def _identity(
        self, challenge: Challenge, verified: Verified, who: Requester
    ) -> VerifiedIdentity:
        state = dict(verified.state)
        if self._links is not None:
            # Without changes that must land (verified.metadata), a failed write is logged
            # and the person is signed in all the same: Passgram's database has the link.
            try:
                await self._links.link(verified.user_id, who, verified.metadata)
            except ClerkAPIError as err:
                if verified.metadata:
                    now = self._clock()
                    raise to_auth_error(err, identifier=challenge.identifier, now=now) from None
                log.warning(
                    "%s: the Telegram link is not in Clerk", describe(err, challenge.identifier)
                )
            except BackendUnavailable:
                if verified.metadata:
                    raise
                log.warning("clerk: no answer, the Telegram link is not in Clerk")
        sign_in_url = None
        if self._api is not None and self._sign_in_url:
            sign_in_url = await self._sign_in_link(verified.user_id, state)
        return VerifiedIdentity(
            auth_user_id=verified.user_id,
            identifier=challenge.identifier,
            created=verified.created,
            session_id=verified.session_id,
            state=state,
            sign_in_url=sign_in_url,
        )

    async def _sign_in_link(self, user_id: str, state: dict[str, Any]) -> str | None:
        """A link that opens the app signed in, or None if Clerk would not mint one now."""
        assert self._api is not None and self._sign_in_url is not None
        try:
            token = await self._api.create_sign_in_token(
                user_id, int(self._sign_in_token_ttl.total_seconds())
            )
        except (ClerkAPIError, BackendUnavailable) as err:
            log.warning("clerk: no sign-in link this time: %s", err)
            return None
        state["sign_in_token_id"] = token["id"]
        return _with_query(self._sign_in_url, TICKET_PARAM, token["token"])


def _with_query(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), (name, value)]
    return urlunsplit(parts._replace(query=urlencode(query)))
