"""How the local backend gets a code to a person: email over SMTP, SMS through Twilio, or the log.

Every channel says the same three things: the code and whose it is, when it expires, and that
nobody — not the app, not Telegram — will ever ask for it. The wording must never read like a
Telegram login code, because "send me the code Telegram just sent you" is how Telegram accounts
get stolen.

A code appears in exactly one log line in this module: the development channel's. Everything
else logs the masked identifier.
"""

from __future__ import annotations

import asyncio
import email.policy
import ipaddress
import logging
import ssl
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import quoprimime
from email.headerregistry import AddressHeader
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import aiosmtplib
import httpx
from email_validator import EmailNotValidError, validate_email

from bot.identifiers import Identifier, IdentifierKind

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """The code did not leave. `temporary`: trying again later may work (the server is down,
    busy or rate limiting); otherwise it won't until something changes (credentials, the address,
    the account).

    The message is safe to log: it names the identifier only masked.
    """

    def __init__(
        self,
        message: str,
        *,
        temporary: bool,
        provider_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.temporary = temporary
        self.provider_code = provider_code
        self.retry_after = retry_after


class DeliveryChannel(Protocol):
    name: str  # "email", "sms" or "log": stored with the challenge, shown in the chat
    kinds: frozenset[IdentifierKind]

    async def send_code(
        self, to: Identifier, code: str, *, app_name: str, ttl_minutes: int
    ) -> None:
        """Deliver the code or raise DeliveryError."""
        ...


def code_message(code: str, *, app_name: str, ttl_minutes: int) -> str:
    """The full message, for email and the development outbox."""
    return (
        f"Your {app_name} code is {code}. It expires in {_minutes(ttl_minutes)}. "
        f"Type it only in the {app_name} sign-in chat, and never share it: nobody from "
        f"{app_name} or Telegram will ever ask you for it."
    )


def sms_message(code: str, *, app_name: str, ttl_minutes: int) -> str:
    """The SMS: code first, so the notification preview shows it and phones offer to autofill.

    Plain ASCII on purpose (a straight apostrophe, no dashes): one character outside the GSM
    7-bit alphabet would halve what fits in one SMS, and with a short app name this is one SMS.
    """
    return (
        f"{code} is your {app_name} code. It expires in {_minutes(ttl_minutes)}. "
        f"Don't share it: nobody from {app_name} or Telegram will ever ask for it."
    )


def _minutes(count: int) -> str:
    return "1 minute" if count == 1 else f"{count} minutes"


class LogChannel:
    """Development delivery: the code goes to the log (and the sandbox outbox), nowhere else.

    The only place a code may be logged. The line says so loudly, so nobody mistakes a
    development setup for a working one; `passgram run` refuses to use it outside the sandbox
    unless told to.
    """

    name = "log"
    kinds: frozenset[IdentifierKind] = frozenset({"email", "phone"})

    def __init__(self, sink: Callable[[Identifier, str, str], None] | None = None) -> None:
        self._sink = sink

    async def send_code(
        self, to: Identifier, code: str, *, app_name: str, ttl_minutes: int
    ) -> None:
        text = code_message(code, app_name=app_name, ttl_minutes=ttl_minutes)
        log.warning(
            "DEVELOPMENT DELIVERY, nothing was sent: code for %s (%s): %s",
            to.masked,
            to.kind,
            text,
        )
        if self._sink is not None:
            self._sink(to, self.name, text)


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    implicit_tls: bool  # smtps://: TLS from the first byte
    starttls: bool  # smtp://…?starttls=true: STARTTLS required
    username: str | None
    password: str | None = field(repr=False)


def smtp_server(url: str) -> SmtpServer:
    """SMTP_URL: `smtp://user:pass@host:port` or `smtps://…`, user and password percent-decoded
    (write `@` as `%40`, `:` as `%3A`).
    - `smtps://` (default port 465): TLS from the first byte.
    - `smtp://` (default port 25): plain, with no opportunistic STARTTLS, so a loopback or
      in-cluster relay behaves the same whatever it advertises. Add `?starttls=true` (typically
      with port 587) to require STARTTLS: the connection fails rather than fall back to plain.

    ValueError says in one line what is wrong, never quoting the URL: it holds the password.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("SMTP_URL: must start with smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError("SMTP_URL: no host; expected smtp://user:password@host:port")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0 or parts.netloc.endswith(":"):
        raise ValueError("SMTP_URL: the port must be a number from 1 to 65535")
    if parts.path not in ("", "/") or parts.fragment:
        raise ValueError("SMTP_URL: nothing may follow host:port but ?starttls=true")
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        pairs = [("", "")]
    options = dict(pairs)
    if len(options) != len(pairs):
        options[""] = ""  # an option given twice: which one was meant?
    starttls = options.pop("starttls", "false").lower()
    if options or starttls not in _BOOLEANS:
        raise ValueError("SMTP_URL: the one option is starttls=true or starttls=false")
    implicit_tls = parts.scheme == "smtps"
    if implicit_tls and _BOOLEANS[starttls]:
        raise ValueError("SMTP_URL: smtps:// is TLS already; starttls=true is for smtp://")
    return SmtpServer(
        host=parts.hostname,
        port=port or (465 if implicit_tls else 25),
        implicit_tls=implicit_tls,
        starttls=_BOOLEANS[starttls],
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


_POLICY = email.policy.default
_TEXT_HEADERS = tuple(
    (name, _POLICY.header_factory(name, value))
    for name, value in (
        ("MIME-Version", "1.0"),
        ("Content-Type", 'text/plain; charset="utf-8"'),
        ("Content-Transfer-Encoding", "quoted-printable"),
        # RFC 3834: keeps vacation responders from answering a machine.
        ("Auto-Submitted", "auto-generated"),
    )
)


@dataclass(frozen=True)
class Sender:
    header: str  # the From header as configured, with its display name
    address: str  # the envelope sender, its domain in ASCII where it has an ASCII form
    domain: str


def email_sender(value: str) -> Sender:
    """EMAIL_FROM: `no-reply@example.com` or `Example <no-reply@example.com>`, read by the parser
    that writes the From header, so what passes here is what gets sent.

    Special-use domains (localhost, .local, .invalid) are refused, as receiving servers refuse
    mail from them; `.test` is kept for test setups.
    """
    value = value.strip()
    if "\r" in value or "\n" in value:
        raise ValueError("EMAIL_FROM: must be one line")
    header = _POLICY.header_factory("From", value)
    addresses = header.addresses if isinstance(header, AddressHeader) else ()
    if len(addresses) != 1 or header.defects:
        raise ValueError(
            "EMAIL_FROM: expected one address, optionally with a name, as in "
            "Example <no-reply@example.com>"
        )
    try:
        valid = validate_email(
            addresses[0].addr_spec, check_deliverability=False, test_environment=True
        )
    except EmailNotValidError as exc:
        raise ValueError(f"EMAIL_FROM: {exc}") from None
    address = valid.ascii_email or valid.normalized
    # The parsed header itself, so each email reuses it rather than parsing it again.
    return Sender(header, address, address.rpartition("@")[2])


class SmtpChannel:
    """Email through an SMTP server (`smtp_server` reads its URL).

    Connections are kept open between codes (a TCP and TLS handshake, EHLO and AUTH per code
    cost more than the message), up to `connections` at once, each sending one message at a
    time. One that fails is closed, never reused; a kept one the server has dropped meanwhile
    (idle timeout) is replaced once, before anything was sent on it.
    Certificates are verified against the system's CAs, or `tls_context` when given (a private CA).
    """

    name = "email"
    kinds: frozenset[IdentifierKind] = frozenset({"email"})

    def __init__(
        self,
        url: str,
        sender: str,
        *,
        timeout: float = 15.0,
        tls_context: ssl.SSLContext | None = None,
        connections: int = 4,
    ) -> None:
        self._server = smtp_server(url)
        self._sender = email_sender(sender)
        self._timeout = timeout
        self._tls_context = tls_context
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(connections)
        server = self._server
        encrypted = server.implicit_tls or server.starttls
        if server.username and not encrypted and not _is_loopback(server.host):
            log.warning(
                "SMTP_URL sends the password to %s unencrypted; use smtps:// or ?starttls=true",
                server.host,
            )

    async def send_code(
        self, to: Identifier, code: str, *, app_name: str, ttl_minutes: int
    ) -> None:
        if to.kind != "email":
            raise ValueError("SmtpChannel delivers to email addresses only")
        recipient = _smtp_address(to.value)
        message = EmailMessage()
        # Headers that are the same in every email, or are ASCII this code writes, go in as
        # they are: parsing them again per email cost more than the rest of sending it.
        message.set_raw("From", self._sender.header)
        _set_header(message, "To", recipient)
        # The code in the subject is deliberate: it is what the notification shows.
        _set_header(message, "Subject", f"Your {app_name} code is {code}")
        message.set_raw("Date", format_datetime(datetime.now(UTC)))
        message.set_raw("Message-ID", make_msgid(domain=self._sender.domain))
        for name, value in _TEXT_HEADERS:
            message.set_raw(name, value)
        text = (
            code_message(code, app_name=app_name, ttl_minutes=ttl_minutes)
            + "\n\nIf you didn't ask for this code, you can ignore this email."
            " Nobody can sign in without it.\n"
        )
        # Quoted-printable whatever the text: 7-bit clean, so any server takes it, and
        # readable in the source as long as the app's name is ASCII.
        message.set_payload(quoprimime.body_encode(text.encode().decode("latin-1")))

        try:
            async with self._slots:
                await self._send(message, recipient)
        except (aiosmtplib.SMTPException, OSError) as exc:
            error = _smtp_error(exc, to, recipient)
            log.warning("Email with a code to %s failed: %s", to.masked, error)
            raise error from None
        log.info("Sent a code by email to %s", to.masked)

    async def _send(self, message: EmailMessage, recipient: str) -> None:
        kept = self._idle.pop() if self._idle else None
        if kept is not None and not kept.is_connected:
            kept = None
        smtp = kept or await self._connect()
        try:
            await smtp.send_message(message, sender=self._sender.address, recipients=[recipient])
        except aiosmtplib.SMTPServerDisconnected:
            _close(smtp)
            if kept is None:
                raise
            # The server dropped a kept connection while it sat idle: once more on a new one.
            smtp = await self._connect()
            try:
                await smtp.send_message(
                    message, sender=self._sender.address, recipients=[recipient]
                )
            except BaseException:
                _close(smtp)
                raise
        except BaseException:
            _close(smtp)
            raise
        self._idle.append(smtp)

    async def _connect(self) -> aiosmtplib.SMTP:
        server = self._server
        smtp = aiosmtplib.SMTP(
            hostname=server.host,
            port=server.port,
            username=server.username,
            password=server.password,
            use_tls=server.implicit_tls,
            start_tls=server.starttls,
            tls_context=self._tls_context,
            timeout=self._timeout,
        )
        try:
            await smtp.connect()
        except BaseException:
            _close(smtp)
            raise
        return smtp

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for smtp in idle:
            with suppress(aiosmtplib.SMTPException, OSError):
                await smtp.quit()
            _close(smtp)


def _set_header(message: EmailMessage, name: str, value: str) -> None:
    """A header as it is when it needs no encoding or folding (ASCII, one short line, nothing
    that reads as an encoded word); otherwise parsed, encoded and folded by the email policy,
    which costs more than the rest of the message."""
    limit = _POLICY.max_line_length
    plain = (
        value.isascii()
        and value.isprintable()
        and (limit is None or len(name) + 2 + len(value) <= limit)
        and "=?" not in value
    )
    if plain:
        message.set_raw(name, value)
    else:
        message[name] = value


def _close(smtp: aiosmtplib.SMTP) -> None:
    if smtp.is_connected:
        smtp.close()


class TwilioChannel:
    """SMS through Twilio's Messages API (or anything that speaks it, like the sandbox's)."""

    name = "sms"
    kinds: frozenset[IdentifierKind] = frozenset({"phone"})

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_: str,
        api_url: str = "https://api.twilio.com",
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._url = (
            f"{api_url.rstrip('/')}/2010-04-01/Accounts/{quote(account_sid, safe='')}/Messages.json"
        )
        self._auth = httpx.BasicAuth(account_sid, auth_token)
        self._from = from_
        self._owns_client = client is None
        # Twilio answers in well under a second; waiting long only keeps the user waiting.
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))

    async def aclose(self) -> None:
        """Close the HTTP client, if this channel made it."""
        if self._owns_client:
            await self._client.aclose()

    async def send_code(
        self, to: Identifier, code: str, *, app_name: str, ttl_minutes: int
    ) -> None:
        if to.kind != "phone":
            raise ValueError("TwilioChannel delivers to phone numbers only")
        form = {
            "To": to.value,
            "From": self._from,
            "Body": sms_message(code, app_name=app_name, ttl_minutes=ttl_minutes),
        }
        try:
            response = await self._client.post(self._url, data=form, auth=self._auth)
        except httpx.UnsupportedProtocol as exc:
            error = DeliveryError(f"TWILIO_API_URL is not usable: {exc}", temporary=False)
            log.warning("SMS with a code to %s failed: %s", to.masked, error)
            raise error from None
        except httpx.TransportError as exc:
            error = DeliveryError(
                f"Twilio unreachable: {type(exc).__name__}: {exc}", temporary=True
            )
            log.warning("SMS with a code to %s failed: %s", to.masked, error)
            raise error from None

        payload = _json_object(response)
        if response.is_success:
            log.info("Sent a code by SMS to %s (message %s)", to.masked, payload.get("sid", "?"))
            return
        error = _twilio_error(response, payload, to)
        log.warning("SMS with a code to %s failed: %s", to.masked, error)
        raise error


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _smtp_address(address: str) -> str:
    """The address as SMTP carries it: an internationalised domain in its ASCII (punycode) form,
    so servers without SMTPUTF8 accept it. A non-ASCII local part has no ASCII form and goes as
    is."""
    if address.isascii():
        return address  # already what SMTP carries: the chat stores addresses normalised
    try:
        ascii_form = validate_email(address, check_deliverability=False).ascii_email
    except EmailNotValidError:
        return address
    return ascii_form or address


def _scrub(text: str, to: Identifier, *also: str) -> str:
    """Servers like to quote the recipient back; logs get the masked form instead."""
    for form in (to.value, *also):
        if form:
            text = text.replace(form, to.masked)
    return text


def _smtp_error(
    exc: aiosmtplib.SMTPException | OSError, to: Identifier, recipient: str
) -> DeliveryError:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [refusal.code for refusal in exc.recipients]
        replies = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
        return DeliveryError(
            _scrub(f"the SMTP server refused the recipient: {replies}", to, recipient),
            temporary=all(400 <= code < 500 for code in codes),
            provider_code=codes[0] if codes else None,
        )
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return DeliveryError(
            f"the SMTP server refused the credentials in SMTP_URL: {exc.code} {exc.message}",
            temporary=False,
            provider_code=exc.code,
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        # 4xx: "try again later" (greylisting, a full queue); 5xx: it will say the same next time.
        return DeliveryError(
            _scrub(f"the SMTP server answered {exc.code} {exc.message}", to, recipient),
            temporary=400 <= exc.code < 500,
            provider_code=exc.code,
        )
    untrusted = _cause(exc, ssl.SSLCertVerificationError)
    if untrusted is not None:
        return DeliveryError(
            f"the SMTP server's certificate is not trusted: {untrusted.verify_message}",
            temporary=False,
        )
    if isinstance(exc, OSError):  # refused, reset, timed out, TLS handshake failed
        return DeliveryError(
            f"the SMTP server is unreachable: {type(exc).__name__}: {exc}", temporary=True
        )
    # What remains is a mismatch between SMTP_URL and the server (no AUTH offered, no STARTTLS
    # when it is required): a configuration problem, not a passing one.
    return DeliveryError(f"SMTP: {exc}", temporary=False)


_E = TypeVar("_E", bound=BaseException)


def _cause(exc: BaseException, kind: type[_E]) -> _E | None:
    """`exc` or the first exception in its chain of causes that is a `kind`.

    aiosmtplib wraps the TLS library's errors in its own connection errors; the certificate
    verdict is underneath.
    """
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _twilio_error(
    response: httpx.Response, payload: dict[str, Any], to: Identifier
) -> DeliveryError:
    status = response.status_code
    code = payload.get("code")
    detail = str(payload.get("message") or response.reason_phrase or "no details")
    # 5xx is Twilio's trouble and 429 its rate limit: both pass. Any other 4xx is about this
    # request (the credentials, the number, the account) and will fail the same way again.
    temporary = status >= 500 or status in (408, 429)
    retry_after: float | None = None
    with suppress(KeyError, ValueError):  # absent, or an HTTP date: no hint then
        retry_after = float(response.headers["Retry-After"])
    return DeliveryError(
        _scrub(f"Twilio answered {status} (error {code}): {detail}", to, to.value.lstrip("+")),
        temporary=temporary,
        provider_code=code if isinstance(code, int) else None,
        retry_after=retry_after,
    )
