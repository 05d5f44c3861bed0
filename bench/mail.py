"""The SMTP sink the bot mails its codes to: aiosmtpd on loopback, on the bench's own loop."""

from __future__ import annotations

import asyncio
import logging
import re
from email import policy
from email.parser import BytesParser

from aiosmtpd.smtp import SMTP, Envelope, Session

CODE = re.compile(r"\b(\d{6})\b")
_PARSER = BytesParser(policy=policy.default)


class CodeSink:
    """Keeps the one-time code of each message, by recipient, for whoever waits for it."""

    def __init__(self) -> None:
        self._codes: dict[str, asyncio.Future[str]] = {}
        self._server: asyncio.Server | None = None
        self.received = 0
        # The mail server traces every line of every message; that is not what is measured.
        logging.getLogger("mail.log").setLevel(logging.WARNING)

    def _future(self, address: str) -> asyncio.Future[str]:
        return self._codes.setdefault(address.lower(), asyncio.get_running_loop().create_future())

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        message = _PARSER.parsebytes(envelope.original_content or b"")
        body = message.get_body(("plain",))
        found = CODE.search(body.get_content() if body is not None else "")  # type: ignore[attr-defined]
        for rcpt in envelope.rcpt_tos:
            future = self._future(rcpt)
            if found and not future.done():
                future.set_result(found.group(1))
        self.received += 1
        return "250 OK"

    async def start(self) -> str:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: SMTP(self), "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"smtp://127.0.0.1:{port}"

    async def code_for(self, address: str, timeout: float = 30.0) -> str:  # noqa: ASYNC109
        code = await asyncio.wait_for(asyncio.shield(self._future(address)), timeout)
        del self._codes[address.lower()]
        return code

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
