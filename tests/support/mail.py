"""A real SMTP server for tests: aiosmtpd on loopback, collecting what it receives.

    async with SmtpSink() as sink:
        channel = SmtpChannel(sink.url, "Acme <no-reply@acme.example>")
        ...
        message = await sink.wait_for_message("jane@example.com")

aiosmtpd's Controller runs the server on its own event loop in a thread; received messages are
handed to the test's loop with `call_soon_threadsafe`, so waiting is event-driven.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from bot.sandbox.twilio import Inbox

TlsMode = Literal["implicit", "starttls"]

# aiosmtpd traces every command and every line of DATA, codes and addresses included. That is
# the mail server's log, not Passgram's; while a sink runs it is kept out of the test's log, so a
# check that nothing personal gets logged looks at Passgram alone.
_SERVER_LOG = logging.getLogger("mail.log")


class SmtpSink:
    """Accepts every message (unless told to refuse a recipient) and keeps it, parsed.

    `username`/`password`: require AUTH with exactly these, on plain connections too (aiosmtpd
    warns about that; tests that do it mark the warning as expected).
    `tls="implicit"` with `tls_context`: TLS from the first byte (smtps://).
    `tls="starttls"` with `tls_context`: STARTTLS offered and required before anything else.
    """

    def __init__(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: TlsMode | None = None,
        tls_context: ssl.SSLContext | None = None,
        port: int = 0,
    ) -> None:
        if (tls is None) != (tls_context is None):
            raise ValueError("tls and tls_context go together")
        self.username = username
        self.password = password
        self.tls = tls
        self.tls_context = tls_context
        self._port = port  # 0: any free port; a restart after stop() keeps the one it got
        self.logins: list[tuple[str, str]] = []  # every AUTH attempt, decoded
        self._inbox: Inbox[EmailMessage] = Inbox()
        self._refusals: dict[str, str] = {}
        self.delay = 0.0  # seconds the server takes to accept a message: a slow mail server
        self._controller: _LoopbackController | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server_log_level = logging.NOTSET

    @property
    def port(self) -> int:
        if self._controller is None:
            raise RuntimeError("the SMTP sink is not running")
        return self._controller.port

    @property
    def url(self) -> str:
        scheme = "smtps" if self.tls == "implicit" else "smtp"
        query = "?starttls=true" if self.tls == "starttls" else ""
        return f"{scheme}://127.0.0.1:{self.port}{query}"

    @property
    def messages(self) -> list[EmailMessage]:
        return self._inbox.items

    def refuse(self, address: str, reply: str) -> None:
        """Answer RCPT TO for this address with `reply` (e.g. "550 5.1.1 No such user")."""
        self._refusals[address.lower()] = reply

    async def wait_for_message(self, to: str, timeout: float = 5.0) -> EmailMessage:  # noqa: ASYNC109
        """The next message for `to` not handed out before; TimeoutError if none comes."""
        return await self._inbox.wait_for(to.lower(), timeout)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server_log_level = _SERVER_LOG.level
        _SERVER_LOG.setLevel(logging.WARNING)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        self._port = sock.getsockname()[1]
        options: dict[str, Any] = {}
        if self.username is not None:
            options.update(
                authenticator=self._authenticate, auth_required=True, auth_require_tls=False
            )
        if self.tls == "starttls":
            options.update(tls_context=self.tls_context, require_starttls=True)
        controller = _LoopbackController(
            _Handler(self),
            sock,
            ssl_context=self.tls_context if self.tls == "implicit" else None,
            # Without a name, aiosmtpd asks DNS for this machine's; a test needn't wait for that.
            server_hostname="localhost",
            **options,
        )
        # start() blocks until the server answers; keep the test's loop free meanwhile.
        try:
            await asyncio.to_thread(controller.start)
        except BaseException:
            sock.close()
            raise
        self._controller = controller

    async def stop(self) -> None:
        if self._controller is not None:
            await asyncio.to_thread(self._controller.stop)
            _SERVER_LOG.setLevel(self._server_log_level)
        self._controller = None

    async def __aenter__(self) -> SmtpSink:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # Called on the server's thread.
    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = data.login.decode(), data.password.decode()
        self._on_loop(self.logins.append, (login, password))
        accepted = (login, password) == (self.username, self.password)
        # handled=False: aiosmtpd answers 535 itself when the credentials are refused.
        return AuthResult(success=accepted, handled=False, auth_data=data)

    def _on_loop(self, callback: Any, *args: Any) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(callback, *args)


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refusal = self._sink._refusals.get(address.lower())
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self._sink.delay:
            await asyncio.sleep(self._sink.delay)  # on the server's own loop and thread
        raw = envelope.original_content or b""
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        recipients = [address.lower() for address in envelope.rcpt_tos]
        self._sink._on_loop(lambda: self._sink._inbox.put(message, *recipients))
        return "250 Message accepted for delivery"


class _LoopbackController(Controller):
    """A Controller on a socket bound beforehand, so port 0 works and the port is known."""

    def __init__(self, handler: Any, sock: socket.socket, **kwargs: Any) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=sock.getsockname()[1], **kwargs)
        self._sock = sock

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)
