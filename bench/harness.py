"""One measured run of one target: the stand-in process, the SMTP sink, the target's processes,
and the load driver playing people over the stand-in's driver endpoint."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.mail import CodeSink
from bench.target import Launched, Target, base_env

STEP_TIMEOUT = 30.0  # seconds a person waits for the bot's answer before counting it lost
START_TIMEOUT = 60.0

# A person's side of the conversation: yields what they type, is sent the bot's answer.
Flow = AsyncGenerator[str, str]


class BenchError(Exception):
    """The run could not be measured; the message says why."""


@dataclass
class Tally:
    """What the people saw: one latency per step answered, and how many flows finished."""

    latencies: list[float] = field(default_factory=list)
    lost: int = 0
    completed: int = 0
    failed: int = 0
    started_at: float = 0.0
    ended_at: float = 0.0

    @property
    def steps(self) -> int:
        return len(self.latencies)

    @property
    def seconds(self) -> float:
        return max(self.ended_at - self.started_at, 1e-9)

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class StandIn:
    """The Bot API stand-in in its own process (bench/standin.py), and a client of its driver."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.standin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise BenchError("the Bot API stand-in did not start")
        urls = json.loads(line)
        self.botapi: str = urls["botapi"]
        self.driver: str = urls["driver"]
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=STEP_TIMEOUT + 30),
        )

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, self.driver + path, json=body) as response:
            data = await response.json()
            if response.status == 504:
                return None
            if response.status != 200:
                raise BenchError(f"driver {path}: {response.status} {data}")
            return data

    async def send(self, user: int, text: str) -> str | None:
        """What the person typed, and the bot's next message; None when none came in time."""
        answer = await self.call("POST", "/send", {"user": user, "text": text})
        return None if answer is None else str(answer["text"])

    async def users(self, count: int) -> list[int]:
        ids: list[int] = []
        while len(ids) < count:  # in chunks, so no request body grows without bound
            made = await self.call("POST", "/users", {"count": min(5000, count - len(ids))})
            ids += made["ids"]
        return ids

    async def close(self) -> None:
        await self.http.close()
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Progress:
    """A line on stderr while a phase runs: what it is, steps done, steps/s."""

    def __init__(self, label: str, tally: Tally, total: int) -> None:
        self.label, self.tally, self.total = label, tally, total
        self.tty = sys.stderr.isatty()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        every = 0.5 if self.tty else 5.0
        while True:
            await asyncio.sleep(every)
            self.show()

    def show(self, end: str = "") -> None:
        elapsed = max(time.perf_counter() - self.tally.started_at, 1e-9)
        line = (
            f"{self.label}: {self.tally.steps}/{self.total} steps, "
            f"{self.tally.steps / elapsed:.0f} steps/s, {self.tally.lost} lost"
        )
        if self.tty:
            print(f"\r{line:<78}", end=end, file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    def __enter__(self) -> Progress:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.show(end="\n")


class Session:
    """A target running against its own stand-in and SMTP sink, for one scenario."""

    def __init__(self, target: Target, standin: StandIn, sink: CodeSink, workdir: Path) -> None:
        self.target = target
        self.standin = standin
        self.sink = sink
        self.workdir = workdir
        self.launched: Launched | None = None

    @property
    def bot(self) -> Launched:
        assert self.launched is not None
        return self.launched

    async def start(self, first_text: str) -> None:
        """Launch the target and wait until it answers a first message."""
        self.launched = Launched(self.target, self.workdir, self.workdir)
        deadline = time.monotonic() + START_TIMEOUT
        if self.target.listeners:
            await self._register(deadline)
        probe = (await self.standin.users(1))[0]
        answer = self.standin.send(probe, first_text)
        task = asyncio.ensure_future(answer)
        while not task.done():
            if (why := self.bot.exited()) is not None:
                task.cancel()
                raise BenchError(why)
            if time.monotonic() > deadline:
                task.cancel()
                raise BenchError(f"{self.target.name} did not answer within {START_TIMEOUT} s")
            await asyncio.sleep(0.1)
        if task.result() is None:
            raise BenchError(f"{self.target.name} did not answer its first message")

    async def _register(self, deadline: float) -> None:
        """Webhook mode: once every listener is up, `passgram webhook set`, as an operator
        registers the webhook once for all replicas (they never do it themselves)."""
        for listener in self.target.listeners:
            while True:
                if (why := self.bot.exited()) is not None:
                    raise BenchError(why)
                if time.monotonic() > deadline:
                    raise BenchError(f"{listener} did not start within {START_TIMEOUT} s")
                try:
                    async with self.standin.http.get(listener + "/healthz") as answer:
                        if answer.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        done = await asyncio.to_thread(run_cli, ["webhook", "set"], self.target.env, self.workdir)
        if done.returncode != 0:
            raise BenchError(f"passgram webhook set failed: {done.stderr.strip()[-300:]}")

    async def step(self, tally: Tally, user: int, text: str) -> str | None:
        t0 = time.perf_counter()
        reply = await self.standin.send(user, text)
        if reply is None:
            tally.lost += 1
        else:
            tally.latencies.append(time.perf_counter() - t0)
        return reply

    async def closed_loop(
        self, tally: Tally, flows: list[tuple[int, Flow]], concurrency: int, label: str
    ) -> None:
        """`concurrency` people at a time, each waiting for every answer before going on."""
        queue = list(reversed(flows))

        async def person() -> None:
            while queue:
                user, flow = queue.pop()
                try:
                    text = await flow.__anext__()
                    while True:
                        reply = await self.step(tally, user, text)
                        if reply is None:
                            tally.failed += 1
                            break
                        text = await flow.asend(reply)
                except StopAsyncIteration:
                    pass

        tally.started_at = time.perf_counter()
        with Progress(label, tally, 3 * len(flows)):
            await asyncio.gather(*(person() for _ in range(min(concurrency, len(flows)))))
        tally.ended_at = time.perf_counter()

    async def open_loop(
        self, tally: Tally, flows: list[tuple[int, Flow]], rate: float, label: str
    ) -> None:
        """A step started every 1/rate s whoever is ready, not waiting for earlier answers; a
        new person starts when nobody is ready."""
        fresh = list(reversed(flows))
        ready: asyncio.Queue[tuple[int, Flow, str]] = asyncio.Queue()
        running: set[asyncio.Task[None]] = set()

        async def advance(user: int, flow: Flow, reply: str | None) -> None:
            try:
                text = await (flow.__anext__() if reply is None else flow.asend(reply))
            except StopAsyncIteration:
                return
            ready.put_nowait((user, flow, text))

        async def run_step(user: int, flow: Flow, text: str) -> None:
            reply = await self.step(tally, user, text)
            if reply is None:
                tally.failed += 1
                return
            await advance(user, flow, reply)

        def spawn(coro: Any) -> None:
            task = asyncio.ensure_future(coro)
            running.add(task)
            task.add_done_callback(running.discard)

        tally.started_at = time.perf_counter()
        with Progress(label, tally, 3 * len(flows)):
            tick = 0
            while fresh or not ready.empty() or running:
                await asyncio.sleep(max(0.0, tally.started_at + tick / rate - time.perf_counter()))
                tick += 1
                if ready.empty() and fresh:
                    user, flow = fresh.pop()
                    await advance(user, flow, None)
                if not ready.empty():
                    spawn(run_step(*ready.get_nowait()))
        tally.ended_at = time.perf_counter()


def scratch_name() -> str:
    return f"passgram_bench_{secrets.token_hex(5)}"


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A `passgram` command (db upgrade, gate set) beside the running bot."""
    return subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "bot", *args],
        env=base_env() | env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
