"""What the listener answers besides updates: GET /healthz, /readyz and /metrics.

Plain aiohttp routes, mounted by whichever listener receives webhooks (and served on a port of
their own, METRICS_LISTEN, in polling mode): a load balancer sends updates only to replicas whose
/readyz says 200, and Prometheus scrapes /metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot import metrics
from bot.wiring import App

log = logging.getLogger(__name__)

PING_TIMEOUT = 2.0  # seconds a dependency has to answer before it counts as unreachable


async def _reachable(ping: Callable[[], Awaitable[None]]) -> bool:
    try:
        await asyncio.wait_for(ping(), PING_TIMEOUT)
    except Exception as exc:  # any failure to answer is "not ready"; which one goes to the log
        log.warning("readiness check failed: %s", type(exc).__name__)
        return False
    return True


def routes(app: App, stopping: Callable[[], bool] = lambda: False) -> list[web.RouteDef]:
    """`stopping`: true once the replica drains, so /readyz turns traffic away first."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(_: web.Request) -> web.Response:
        if stopping():
            return web.json_response({"ok": False, "failed": ["stopping"]}, status=503)
        checks = {"database": app.db.ping, "redis": app.coordination.ping}
        results = await asyncio.gather(*(_reachable(ping) for ping in checks.values()))
        failed = [name for name, ok in zip(checks, results, strict=True) if not ok]
        status = 503 if failed else 200
        return web.json_response({"ok": not failed, "failed": failed}, status=status)

    async def scrape(_: web.Request) -> web.Response:
        body, content_type = metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": content_type})

    return [web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", scrape)]


async def serve(route_defs: list[web.RouteDef], listen: str) -> web.AppRunner:
    """Serve the routes on HOST:PORT until the returned runner is cleaned up."""
    web_app = web.Application()
    web_app.add_routes(route_defs)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    host, _, port = listen.rpartition(":")
    await web.TCPSite(runner, host.strip("[]"), int(port)).start()
    log.info("health and metrics on %s", listen)
    return runner
