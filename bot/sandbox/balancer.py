"""A round-robin HTTP balancer on loopback, in front of several webhook listeners.

What a load balancer does for replicas, reduced to what tests and the benchmark need: each
request goes to the next listener in turn; one that refuses the connection or answers 503 (it is
stopping) is skipped for that request, as a balancer's passive health check would, so updates
meant for a dead replica reach a live one. Counts what each listener took, for inspection.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter

import aiohttp
from aiohttp import web

log = logging.getLogger(__name__)

# Hop-by-hop headers, and the ones aiohttp sets itself: never forwarded.
_SKIPPED = frozenset({"host", "connection", "content-length", "transfer-encoding", "keep-alive"})


class Balancer:
    def __init__(self, backends: list[str], *, port: int = 0) -> None:
        """`backends`: base URLs such as http://127.0.0.1:8081."""
        if not backends:
            raise ValueError("a balancer needs at least one backend")
        self.backends = [url.rstrip("/") for url in backends]
        self.port = port
        self.served: Counter[str] = Counter()  # requests each backend answered
        self.in_flight = 0  # requests taken and not yet answered
        self._turn = itertools.count()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=1024**2)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Balancer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        try:
            return await self._pass_on(request)
        finally:
            self.in_flight -= 1

    async def _pass_on(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _SKIPPED}
        first = next(self._turn)
        for i in range(len(self.backends)):
            backend = self.backends[(first + i) % len(self.backends)]
            try:
                async with self._session.request(
                    request.method, backend + request.rel_url.path_qs, data=body, headers=headers
                ) as answer:
                    if answer.status == 503:
                        continue
                    content = await answer.read()
                    self.served[backend] += 1
                    return web.Response(
                        status=answer.status,
                        body=content,
                        content_type=answer.content_type,
                    )
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                log.info("balancer: %s failed (%s), trying the next", backend, type(exc).__name__)
        return web.json_response({"ok": False, "error": "no backend answered"}, status=502)
