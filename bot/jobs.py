"""Housekeeping the application runs now and then, whatever framework receives updates."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    every: float  # seconds between runs; the first run comes one period after start
    run: Callable[[], Awaitable[object]]


async def run_every(seconds: float, job: Callable[[], Awaitable[object]], name: str) -> None:
    """Run `job` every `seconds`; a failure is logged and waits for the next round."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except Exception as exc:
            log.warning("housekeeping %r failed: %s", name, type(exc).__name__)


def start_all(jobs: list[Job]) -> list[asyncio.Task[None]]:
    return [asyncio.create_task(run_every(job.every, job.run, job.name)) for job in jobs]


async def stop_all(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
