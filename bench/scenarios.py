"""The scenarios: sign-ins next to the echo floor, idle conversations, a burst of join requests."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import shutil
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from bench import target
from bench.harness import BenchError, Flow, Session, StandIn, Tally, run_cli
from bench.mail import CodeSink
from bot.sandbox.balancer import Balancer

SECRET = "bench-secret-" + "0123456789abcdef" * 2
WEBHOOK_SECRET = "bench-webhook-secret"  # noqa: S105 - a loopback run's throwaway


@dataclass(frozen=True)
class Options:
    users: int
    concurrency: int
    rate: float | None
    database_url: str | None
    webhook: bool
    driven: int | None = None
    gate_timeout: int = 30
    # signin: each framework's single process, and, with replicas > 1, that many webhook
    # replicas of the first on the PostgreSQL of database_url and the Redis of redis_url
    # (the single processes then run on SQLite beside them).
    frameworks: tuple[str, ...] = ("aiogram",)
    replicas: int = 1
    redis_url: str | None = None


# --- where the bot keeps its data ----------------------------------------------------------


class Store:
    """A fresh database for one run: a SQLite file, or a scratch database on the PostgreSQL
    server of --database-url, dropped afterwards."""

    def __init__(self, workdir: Path, server_url: str | None) -> None:
        self.workdir = workdir
        self.server_url = server_url
        self.url = f"sqlite+aiosqlite:///{workdir / 'passgram.db'}"
        self._admin_dsn: str | None = None
        self._name: str | None = None

    @property
    def kind(self) -> str:
        return "postgresql" if self._name else "sqlite"

    def _dsn(self, database: str, scheme: str = "postgresql") -> str:
        assert self.server_url is not None
        return urlsplit(self.server_url)._replace(scheme=scheme, path=f"/{database}").geturl()

    async def create(self) -> None:
        if self.server_url is None:
            return
        self._name = f"passgram_bench_{secrets.token_hex(5)}"
        self._admin_dsn = self._dsn(urlsplit(self.server_url).path.strip("/") or "postgres")
        admin = await asyncpg.connect(self._admin_dsn)
        try:
            await admin.execute(f'CREATE DATABASE "{self._name}"')
        finally:
            await admin.close()
        self.url = self._dsn(self._name, "postgresql+asyncpg")
        done = await asyncio.to_thread(run_cli, ["db", "upgrade"], self.env(), self.workdir)
        if done.returncode != 0:
            raise BenchError(f"passgram db upgrade failed: {done.stderr.strip()[-300:]}")

    def env(self) -> dict[str, str]:
        return {"DATABASE_URL": self.url, "PASSGRAM_SECRET": SECRET}

    async def size(self) -> int:
        if self._name is None:
            files = (self.workdir / name for name in ("passgram.db", "passgram.db-wal"))
            return sum(f.stat().st_size for f in files if f.exists())
        conn = await asyncpg.connect(self._dsn(self._name))
        try:
            return int(await conn.fetchval("SELECT pg_database_size(current_database())"))
        finally:
            await conn.close()

    async def clone_conversations(self, template_user: int, ids: list[int]) -> None:
        """Rows for `ids` as the bot wrote them for `template_user`: people it never saw, stopped
        at the same step. Plain SQL, not through the bot: seeding 100,000 through Telegram would
        take longer than the measurement."""
        user_sql = (
            "INSERT INTO telegram_users (id, username, first_name, language_code, created_at, "
            "updated_at) SELECT {p}, username, first_name, language_code, created_at, updated_at "
            "FROM telegram_users WHERE id = {t}"
        )
        conv_sql = (
            "INSERT INTO conversations (telegram_user_id, step, data_enc, updated_at) "
            "SELECT {p}, step, data_enc, updated_at FROM conversations WHERE telegram_user_id = {t}"
        )
        if self._name is None:
            with contextlib.closing(
                sqlite3.connect(self.workdir / "passgram.db", timeout=30)
            ) as db:
                rows = [(i, template_user) for i in ids]
                with db:
                    db.executemany(user_sql.format(p="?", t="?"), rows)
                    db.executemany(conv_sql.format(p="?", t="?"), rows)
            return
        conn = await asyncpg.connect(self._dsn(self._name))
        try:
            rows = [(i, template_user) for i in ids]
            async with conn.transaction():
                await conn.executemany(user_sql.format(p="$1", t="$2"), rows)
                await conn.executemany(conv_sql.format(p="$1", t="$2"), rows)
        finally:
            await conn.close()

    async def drop(self) -> None:
        if self._name is None or self._admin_dsn is None:
            return
        admin = await asyncpg.connect(self._admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)')
        finally:
            await admin.close()


# --- the targets ---------------------------------------------------------------------------


def passgram_env(
    standin: StandIn, token: str, store: Store, smtp_url: str, opts: Options, *, paced: bool
) -> dict[str, str]:
    env = store.env() | {
        "TELEGRAM_BOT_TOKEN": token,
        "TELEGRAM_API_URL": standin.botapi,
        "SMTP_URL": smtp_url,
        "EMAIL_FROM": "Bench <no-reply@bench.example.com>",
        "APP_NAME": "Bench",
        # One launch signs in more people than the default hourly cap on sends allows.
        "LOCAL_SENDS_TOTAL": "10000000",
    }
    if not paced:
        # Simulated people answer within milliseconds and the stand-in has no limits here; at
        # Telegram's 30 messages/s the bench would measure the limiter's pacing, not the bot.
        # The limiter still runs and costs what it costs per call.
        env |= {"TELEGRAM_RATE_TOTAL": "100000/1", "TELEGRAM_RATE_PRIVATE": "1000/1"}
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def session(
    opts: Options,
    store: Store | None = None,
    *,
    paced: bool = False,
    framework: str = "aiogram",
    replicas: int = 1,
) -> AsyncIterator[Session]:
    """A stand-in, a sink and a target, torn down afterwards: the echo floor without a store,
    Passgram on `framework` with one; several replicas listen behind a round-robin balancer,
    as behind a load balancer, sharing the store and Redis."""
    standin = StandIn()
    sink = CodeSink()
    smtp_url = await sink.start()
    workdir = Path(tempfile.mkdtemp(prefix="passgram-bench-"))
    balancer: Balancer | None = None
    try:
        token = (await standin.call("POST", "/bots", {"username": "bench_bot"}))["token"]
        if store is None:
            env = {"TELEGRAM_BOT_TOKEN": token, "TELEGRAM_API_URL": standin.botapi}
            yield Session(target.echo(env), standin, sink, workdir)
            return
        env = passgram_env(standin, token, store, smtp_url, opts, paced=paced)
        env["TELEGRAM_FRAMEWORK"] = framework
        each: list[dict[str, str]] = [{}]
        if opts.webhook or replicas > 1:
            ports = [_free_port() for _ in range(replicas)]
            each = [{"WEBHOOK_LISTEN": f"127.0.0.1:{port}"} for port in ports]
            url = f"http://127.0.0.1:{ports[0]}"
            if replicas > 1:
                balancer = Balancer([f"http://127.0.0.1:{port}" for port in ports])
                await balancer.start()
                url = balancer.url
                env["REDIS_URL"] = opts.redis_url or ""
            env |= {"WEBHOOK_URL": f"{url}/telegram/webhook", "WEBHOOK_SECRET": WEBHOOK_SECRET}
        yield Session(target.passgram(env, each), standin, sink, store.workdir)
    finally:
        if balancer is not None:
            await balancer.stop()
        await standin.close()
        await sink.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.asynccontextmanager
async def database(opts: Options) -> AsyncIterator[Store]:
    workdir = Path(tempfile.mkdtemp(prefix="passgram-bench-"))
    store = Store(workdir, opts.database_url)
    try:
        await store.create()
        yield store
    finally:
        await store.drop()
        shutil.rmtree(workdir, ignore_errors=True)


# --- what people do ------------------------------------------------------------------------


def email_of(user: int, run: str) -> str:
    return f"user{user}.{run}@bench.example.com"


async def sign_in(s: Session, tally: Tally, user: int, run: str) -> Flow:
    """/start, an email address, the code mailed to it: linked."""
    yield "/start"
    email = email_of(user, run)
    yield email
    done = yield await s.sink.code_for(email)
    if done.startswith("✅"):
        tally.completed += 1
    else:
        tally.failed += 1


async def up_to_code(s: Session, tally: Tally, user: int, run: str) -> Flow:
    """/start and an email address: then the person goes quiet, a code on its way."""
    yield "/start"
    yield email_of(user, run)
    tally.completed += 1


async def echo_steps(tally: Tally) -> Flow:
    for n in range(3):
        yield f"hello {n}"
    tally.completed += 1


async def drive(s: Session, tally: Tally, flows: list[tuple[int, Flow]], opts: Options) -> None:
    label = f"{opts_label(opts)} {s.target.name}"
    if opts.rate is not None:
        await s.open_loop(tally, flows, opts.rate, label)
    else:
        await s.closed_loop(tally, flows, opts.concurrency, label)


def opts_label(opts: Options) -> str:
    return f"{opts.rate:g} steps/s" if opts.rate is not None else f"{opts.concurrency} at a time"


# --- measuring -----------------------------------------------------------------------------


def latency(tally: Tally) -> dict[str, float]:
    return {f"p{p}_ms": round(tally.percentile(p) * 1000, 2) for p in (50, 95, 99)}


def resources(s: Session, cpu_before: float) -> dict[str, float]:
    return {
        "cpu_s": round(s.bot.cpu_seconds() - cpu_before, 2),
        "peak_rss_mb": round(s.bot.memory("VmHWM") / 2**20, 1),
    }


async def run_echo(opts: Options) -> dict[str, Any]:
    async with session(opts) as s:
        await s.start("warm-up")
        try:
            tally = Tally()
            ids = await s.standin.users(opts.users)
            cpu = s.bot.cpu_seconds()
            await drive(s, tally, [(u, echo_steps(tally)) for u in ids], opts)
            used = resources(s, cpu)
        finally:
            s.bot.stop()
    return {
        "steps": tally.steps,
        "lost": tally.lost,
        "seconds": round(tally.seconds, 2),
        "updates_per_s": round(tally.steps / tally.seconds, 1),
        **latency(tally),
        **used,
        "cpu_ms_per_update": round(used["cpu_s"] * 1000 / max(tally.steps, 1), 2),
    }


async def signin(opts: Options) -> dict[str, Any]:
    echo = await run_echo(opts)
    runs = [await sign_ins(opts, echo, framework) for framework in opts.frameworks]
    if opts.replicas > 1:
        runs.append(await sign_ins(opts, echo, opts.frameworks[0], opts.replicas))
    first = runs[0]
    return {
        "scenario": "signin",
        "database": first["database"],
        "echo": echo,
        "passgram": first,
        "ratio": first["ratio"],
        "also": runs[1:],
    }


async def sign_ins(
    opts: Options, echo: dict[str, Any], framework: str, replicas: int = 1
) -> dict[str, Any]:
    """One target's sign-ins; its ratio is to the echo floor of the same invocation."""
    run = secrets.token_hex(3)
    if replicas == 1 and opts.replicas > 1:
        opts = dataclasses.replace(opts, database_url=None)  # the single process on SQLite
    async with (
        database(opts) as store,
        session(opts, store, framework=framework, replicas=replicas) as s,
    ):
        await s.start("/start")
        try:
            tally = Tally()
            ids = await s.standin.users(opts.users)
            cpu = s.bot.cpu_seconds()
            await drive(s, tally, [(u, sign_in(s, tally, u, run)) for u in ids], opts)
            used = resources(s, cpu)
        finally:
            s.bot.stop()
        size = await store.size()
        kind = store.kind
    steps_per_s = tally.steps / tally.seconds
    return {
        "target": s.target.name,
        "database": kind,
        "processes": len(s.target.each),
        "users": opts.users,
        "completed": tally.completed,
        "failed": tally.failed,
        "lost": tally.lost,
        "steps": tally.steps,
        "seconds": round(tally.seconds, 2),
        "steps_per_s": round(steps_per_s, 1),
        "signins_per_s": round(tally.completed / tally.seconds, 1),
        **latency(tally),
        **used,
        "cpu_ms_per_step": round(used["cpu_s"] * 1000 / max(tally.steps, 1), 2),
        "db_bytes": size,
        "ratio": round(steps_per_s / echo["updates_per_s"], 3) if echo["updates_per_s"] else 0,
    }


async def idle(opts: Options) -> dict[str, Any]:
    """N people stopped with a code on its way: memory from none to all, then a step's latency.
    `driven` of them get there through Telegram; the rest are seeded into the database as
    copies of a driven one's rows."""
    driven = min(opts.users, opts.driven if opts.driven is not None else 2000)
    run = secrets.token_hex(3)
    async with database(opts) as store, session(opts, store, framework=opts.frameworks[0]) as s:
        await s.start("/start")
        try:
            rss_before = s.bot.memory("VmRSS")
            ids = await s.standin.users(driven)
            seed = Tally()
            await drive(s, seed, [(u, up_to_code(s, seed, u, run)) for u in ids], opts)
            if seed.completed != driven:
                raise BenchError(f"only {seed.completed} of {driven} reached the code step")
            others = list(range(10**12, 10**12 + opts.users - driven))
            t0 = time.perf_counter()
            await store.clone_conversations(ids[0], others)
            seeded_s = time.perf_counter() - t0
            rss_after = s.bot.memory("VmRSS")
            # One step each for the driven people, now among all the others: their codes.
            probe = Tally()
            probes = ids[: min(len(ids), 500)]
            codes = {u: await s.sink.code_for(email_of(u, run)) for u in probes}
            probe.started_at = time.perf_counter()
            for user in probes:
                await s.step(probe, user, codes[user])
            probe.ended_at = time.perf_counter()
            peak = s.bot.memory("VmHWM")
        finally:
            s.bot.stop()
        size = await store.size()
        kind = store.kind
    return {
        "scenario": "idle",
        "database": kind,
        "pending": opts.users,
        "driven_through_telegram": driven,
        "seeded_in_database": opts.users - driven,
        "seeding_s": round(seeded_s, 1),
        "rss_before_mb": round(rss_before / 2**20, 1),
        "rss_after_mb": round(rss_after / 2**20, 1),
        "rss_growth_mb": round((rss_after - rss_before) / 2**20, 1),
        "peak_rss_mb": round(peak / 2**20, 1),
        "step": {"steps": probe.steps, "lost": probe.lost, **latency(probe)},
        "db_bytes": size,
    }


async def burst(opts: Options) -> dict[str, Any]:
    """N join requests into a gated channel in one tick, the stand-in holding the bot to
    Telegram's limits: time until the bot answered every one, and until every one is decided
    (declined at the gate's timeout, as nobody signs in)."""
    async with (
        database(opts) as store,
        session(opts, store, paced=True, framework=opts.frameworks[0]) as s,
    ):
        await s.start("/start")
        try:
            owner = (await s.standin.users(1))[0]
            chat = (await s.standin.call("POST", "/channel", {"owner": owner, "limits": True}))[
                "chat_id"
            ]
            await _gate(s, store, chat, opts.gate_timeout)
            ids = await s.standin.users(opts.users)
            t0 = time.perf_counter()
            await s.standin.call("POST", "/join", {"chat_id": chat, "users": ids})
            answered_s = decided_s = None
            status: dict[str, int] = {}
            deadline = t0 + opts.gate_timeout + 60 + opts.users / 10
            while time.perf_counter() < deadline:
                status = await s.standin.call("GET", f"/join/{chat}")
                now = time.perf_counter() - t0
                if answered_s is None and status["messaged"] >= opts.users:
                    answered_s = now
                if status["pending"] == 0:
                    decided_s = now
                    break
                if (why := s.bot.exited()) is not None:
                    raise BenchError(why)
                _progress(f"burst: {status}")
                await asyncio.sleep(0.5)
            stats = await s.standin.call("GET", "/stats")
            used = resources(s, 0.0)
        finally:
            s.bot.stop()
    return {
        "scenario": "burst",
        "database": store.kind,
        "requests": opts.users,
        "gate_timeout_s": opts.gate_timeout,
        "answered_all_s": None if answered_s is None else round(answered_s, 1),
        "decided_all_s": None if decided_s is None else round(decided_s, 1),
        **{k: status.get(k, 0) for k in ("approved", "declined", "pending", "messaged")},
        "lost": opts.users - status.get("approved", 0) - status.get("declined", 0),
        **{k: v for k, v in stats.items() if k != "calls"},
        **used,
    }


async def _gate(s: Session, store: Store, chat: int, seconds: int) -> None:
    """`passgram gate set` as an operator runs it, once the bot has learnt the channel."""
    args = ["gate", "set", str(chat), "--enabled", "on", "--mode", "join_requests"]
    args += ["--timeout", str(seconds)]
    for _ in range(100):
        done = await asyncio.to_thread(run_cli, args, s.target.env, store.workdir)
        if done.returncode == 0:
            return
        await asyncio.sleep(0.2)
    raise BenchError(f"passgram gate set failed: {done.stderr.strip()[-300:]}")


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    return {"nproc": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()]}
