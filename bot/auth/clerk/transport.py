"""HTTP to Clerk: pacing before each send, 429s waited out and retried, answers parsed.

A 429 whose code says "rate limited" (or that has no code) is Clerk's per-IP or per-instance
limit: it closes the lane for Retry-After seconds and the call is sent again, so the person
only ever sees a wait. Other 429 codes (a resend that comes too soon) are answers about the
person's own request and are returned like any other error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from bot.auth.base import BackendUnavailable, WaitNotifier
from bot.auth.clerk.errors import DEFAULT_RETRY_AFTER, ClerkAPIError, parse_retry_after
from bot.auth.clerk.pace import Pacer

log = logging.getLogger("bot.auth.clerk")

API_VERSION = "2026-05-12"
# The header, not the `__clerk_api_version` query parameter: Clerk refuses requests with both.
API_VERSION_HEADER = "Clerk-API-Version"

_PACING_CODES = frozenset({"too_many_requests"})

# A lane and a key in it: ("bapi.metadata", user id), ("fapi.sign_in.create", "").
Slot = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Reply:
    operation: str
    status: int
    headers: httpx.Headers
    body: Any  # parsed JSON, or None

    def json(self) -> dict[str, Any]:
        """The body of a successful answer; raises ClerkAPIError for an error answer."""
        if self.status >= 400:
            raise ClerkAPIError.from_response(self.operation, self.status, self.body, self.headers)
        if not isinstance(self.body, dict):
            raise ClerkAPIError(self.operation, self.status)
        return self.body

    def items(self) -> list[dict[str, Any]]:
        """The list a successful listing answers with; raises ClerkAPIError otherwise."""
        if self.status >= 400:
            raise ClerkAPIError.from_response(self.operation, self.status, self.body, self.headers)
        if not isinstance(self.body, list):
            raise ClerkAPIError(self.operation, self.status)
        return [item for item in self.body if isinstance(item, dict)]


class Transport:
    """One Clerk API (Frontend or Backend) at `base_url`, sharing a pacer with the others."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        pacer: Pacer,
        *,
        headers: Mapping[str, str] | None = None,
        max_retries: int = 5,
    ) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._pacer = pacer
        self._headers = {API_VERSION_HEADER: API_VERSION, **(headers or {})}
        self._max_retries = max_retries

    async def call(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        slots: Sequence[Slot],
        notify: WaitNotifier | None = None,
        params: Mapping[str, str | Sequence[str]] | None = None,
        form: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Send once a slot is free in every lane of `slots` (most specific first)."""
        for attempt in range(self._max_retries + 1):
            for lane, key in slots:
                await self._pacer.acquire(lane, key, notify)
            reply = await self._send(method, path, operation, params, form, json_body, headers)
            if reply.status != 429 or attempt == self._max_retries or not _is_pacing(reply):
                return reply
            wait = parse_retry_after(reply.headers.get("retry-after"))
            if wait is None:
                wait = DEFAULT_RETRY_AFTER
            log.info(
                "clerk %s: rate limited (429), sending again in %.1f s (clerk_trace_id=%s)",
                operation,
                wait,
                _trace_id(reply.body),
            )
            # The most specific lane is the one Clerk counted against (a user's metadata writes
            # rather than the whole instance), so that is the one to close.
            lane, key = slots[0] if slots else ("", "")
            await self._pacer.penalise(lane, wait, key)
        raise AssertionError("unreachable: the last attempt always returns")

    async def _send(
        self,
        method: str,
        path: str,
        operation: str,
        params: Mapping[str, str | Sequence[str]] | None,
        form: Mapping[str, str] | None,
        json_body: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
    ) -> Reply:
        try:
            response = await self._http.request(
                method,
                self._base + path,
                params=params,
                data=form,
                json=json_body,
                headers={**self._headers, **(headers or {})},
            )
        except httpx.HTTPError as exc:
            log.warning("clerk %s: no answer (%s)", operation, type(exc).__name__)
            raise BackendUnavailable(
                f"clerk {operation}: no answer", retry_after=DEFAULT_RETRY_AFTER
            ) from exc
        body: Any = None
        if response.content:
            try:
                body = response.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                body = None
        return Reply(operation, response.status_code, response.headers, body)


def _is_pacing(reply: Reply) -> bool:
    if not isinstance(reply.body, dict):
        return True
    codes = {item.get("code") for item in reply.body.get("errors") or () if isinstance(item, dict)}
    return not codes or bool(codes & _PACING_CODES)


def _trace_id(body: Any) -> str:
    trace = body.get("clerk_trace_id") if isinstance(body, dict) else None
    return trace if isinstance(trace, str) else "-"


class RedactQueries(logging.Filter):
    """Drops query strings from httpx's request lines for Clerk's hosts.

    httpx logs every request URL at INFO, and looking a user up in Clerk puts their email
    address or phone number in the query string.
    """

    def __init__(self, hosts: Sequence[str]) -> None:
        super().__init__()
        self.hosts = set(hosts)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(arg, httpx.URL) and arg.host in self.hosts and arg.query
            for arg in record.args
        ):
            record.args = tuple(
                arg.copy_with(query=None)
                if isinstance(arg, httpx.URL) and arg.host in self.hosts
                else arg
                for arg in record.args
            )
        return True


def redact_queries_in_http_log(*urls: str) -> None:
    """Install (once per host set) the query redaction on httpx's logger."""
    hosts = {httpx.URL(url).host for url in urls}
    logger = logging.getLogger("httpx")
    for existing in logger.filters:
        if isinstance(existing, RedactQueries):
            existing.hosts |= hosts
            return
    logger.addFilter(RedactQueries(sorted(hosts)))
