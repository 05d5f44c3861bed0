"""A loopback stand-in for Twilio's Messages API, so SMS delivery runs for real without an account.

It speaks the one call Passgram makes — `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`,
form-encoded `To`, `From`, `Body`, HTTP basic auth with the account SID and auth token — and
answers the way Twilio does: 201 with a message resource, or Twilio's error JSON
(`code`, `message`, `more_info`, `status`) with the matching HTTP status. Nothing is sent
anywhere; messages are kept for tests and the sandbox to read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import re
import secrets
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Generic, TypeVar

from aiohttp import web

from bot.sandbox.loopback import LoopbackServer

API_VERSION = "2010-04-01"
MAX_BODY_LENGTH = 1600

# Twilio validates numbers more loosely, but Passgram only ever sends E.164, so anything else
# reaching the stand-in is a bug worth a 400.
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")

T = TypeVar("T")


class Inbox(Generic[T]):
    """Messages by recipient, with an awaitable "the next one for this address".

    Each message is handed out once by `wait_for`, in arrival order, so a test that triggers a
    resend and waits again gets the new message, not the first one a second time.
    `put` must run on the event loop that waits (a server thread hands over with
    `loop.call_soon_threadsafe`).
    """

    def __init__(self) -> None:
        self.items: list[T] = []
        self._unclaimed: defaultdict[str, deque[T]] = defaultdict(deque)
        self._waiters: defaultdict[str, deque[asyncio.Future[T]]] = defaultdict(deque)

    def put(self, item: T, *addresses: str) -> None:
        self.items.append(item)
        for address in addresses:
            self._hand_over(address, item)

    def _hand_over(self, address: str, item: T) -> None:
        waiters = self._waiters[address]
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return
        self._unclaimed[address].append(item)

    # A deadline parameter rather than asyncio.timeout() around the call: a message that lands
    # just as the deadline passes must be returned, not dropped, and only this method can tell.
    async def wait_for(self, address: str, timeout: float) -> T:  # noqa: ASYNC109
        unclaimed = self._unclaimed[address]
        if unclaimed:
            return unclaimed.popleft()
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiters[address].append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        except TimeoutError:
            # The message may have landed between the deadline and this task waking up.
            if waiter.done() and not waiter.cancelled():
                return waiter.result()
            raise TimeoutError(f"no message for {address} within {timeout:g} s") from None
        finally:
            with suppress(ValueError):
                self._waiters[address].remove(waiter)


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One message as the stand-in accepted it."""

    sid: str
    account_sid: str
    to: str
    from_: str
    body: str
    num_segments: int
    date_created: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def uri(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"

    def __getitem__(self, key: str) -> Any:
        """Read like the JSON resource too: `message["to"]`, `message["status"]`."""
        return self.to_json()[key]

    def to_json(self) -> dict[str, Any]:
        created = format_datetime(self.date_created, usegmt=True)
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": created,
            "date_sent": None,
            "date_updated": created,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": self.from_,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": str(self.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": "queued",
            "subresource_uris": {"media": self.uri.removesuffix(".json") + "/Media.json"},
            "to": self.to,
            "uri": self.uri,
        }


@dataclass(frozen=True, slots=True)
class _Failure:
    status: int
    code: int
    message: str
    retry_after: int | None


class TwilioStandIn(LoopbackServer):
    """`await start()`, point `TwilioChannel(api_url=stand_in.url)` at it, read `.messages`."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._inbox: Inbox[SentMessage] = Inbox()
        self._failures: deque[_Failure] = deque()

    @property
    def messages(self) -> list[SentMessage]:
        return self._inbox.items

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[_twilio_errors])
        app.router.add_post(
            f"/{API_VERSION}/Accounts/{{account_sid}}/Messages.json", self._create_message
        )
        return app

    async def wait_for_message(self, to: str, timeout: float = 5.0) -> SentMessage:  # noqa: ASYNC109
        """The next message to `to` (E.164) not handed out before; TimeoutError if none comes."""
        return await self._inbox.wait_for(to.strip(), timeout)

    def fail_next(
        self, status: int, code: int, message: str, *, retry_after: int | None = None
    ) -> None:
        """Answer the next request with this Twilio error instead; calls queue up in order."""
        self._failures.append(_Failure(status, code, message, retry_after))

    async def _create_message(self, request: web.Request) -> web.Response:
        if self._failures:
            failure = self._failures.popleft()
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else None
            return _error(failure.status, failure.code, failure.message, headers=headers)
        if not self._authorised(request):
            return _error(
                401, 20003, "Authenticate", headers={"WWW-Authenticate": 'Basic realm="Twilio API"'}
            )

        form = await request.post()
        to = str(form.get("To", "")).strip()
        from_ = str(form.get("From", "")).strip()
        body = str(form.get("Body", ""))
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not _E164.fullmatch(to):
            return _error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not from_:
            return _error(400, 21603, "A 'From' phone number is required.")
        if not body.strip():
            return _error(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY_LENGTH:
            return _error(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )

        message = SentMessage(
            sid="SM" + secrets.token_hex(16),
            account_sid=self.account_sid,
            to=to,
            from_=from_,
            body=body,
            num_segments=sms_segments(body),
        )
        self._inbox.put(message, to)
        return web.json_response(message.to_json(), status=201)

    def _authorised(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).partition(b":")
        except binascii.Error:
            return False
        # Credentials for another account don't open this one, even when they are right.
        return (
            hmac.compare_digest(user, self.account_sid.encode())
            and hmac.compare_digest(password, self.auth_token.encode())
            and request.match_info["account_sid"] == self.account_sid
        )


def _error(
    status: int, code: int, message: str, *, headers: dict[str, str] | None = None
) -> web.Response:
    payload = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(payload, status=status, headers=headers)


@web.middleware
async def _twilio_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Unknown paths and methods get Twilio's JSON too, not aiohttp's plain-text pages."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return _error(404, 20404, f"The requested resource {request.path} was not found")
    except web.HTTPMethodNotAllowed:
        return _error(405, 20004, "Method not allowed")


# GSM 03.38, the 7-bit alphabet every handset decodes. A message in it fits 160 characters per
# SMS (153 per part when split); one character outside it (a curly apostrophe, an emoji) switches
# the whole message to UCS-2 and 70 (67) per part, so the wording of a code message matters.
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")  # two septets each: an escape, then the character


def sms_segments(body: str) -> int:
    """How many SMS a carrier bills for this body."""
    if all(char in _GSM7_BASIC or char in _GSM7_EXTENDED for char in body):
        length = sum(2 if char in _GSM7_EXTENDED else 1 for char in body)
        single, part = 160, 153
    else:
        length = len(body.encode("utf-16-le")) // 2
        single, part = 70, 67
    if length <= single:
        return 1
    return -(-length // part)
