"""The lifecycle every loopback stand-in shares: an aiohttp app on 127.0.0.1, on a free port."""

from __future__ import annotations

import socket
from typing import Self

from aiohttp import web


class LoopbackServer:
    """Subclasses build their app in `make_app`; starting, stopping and `url` live here."""

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    def make_app(self) -> web.Application:
        raise NotImplementedError

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> None:
        runner = web.AppRunner(self.make_app(), access_log=None)
        await runner.setup()
        # Bind first, so the port is known without racing anyone for it.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(runner, sock).start()
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None
        self._port = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
