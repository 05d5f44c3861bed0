"""Three webhook replicas end to end: separate `passgram run` processes sharing one PostgreSQL
database and one Redis, behind a round-robin balancer that the Bot API stand-in pushes updates
to, as Telegram and a load balancer would. People sign in by email (codes from a real SMTP
server); one replica is killed on the way, another is stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from bot.coordination.redis import namespace
from bot.sandbox.balancer import Balancer
from bot.sandbox.botapi import BotApiServer
from bot.sandbox.botapi.rates import RateLimits
from storage.migrate import upgrade
from storage.models import Link
from tests.support import unused_port
from tests.support.mail import SmtpSink
from tests.support.postgres import fresh_postgres
from tests.support.redis import REDIS_URL, forget, redis_clients

SECRET = "replicas-secret-0123456789abcdefghijkl"
HOOK_SECRET = "replicas-webhook-secret"
CODE = re.compile(r"\b(\d{6})\b")
# Lower than Telegram's 30/s, so three replicas each keeping it alone would show: together they
# could send three times as many.
LIMITS = RateLimits(total=4, private=1, group=20)


@dataclass
class Replica:
    port: int
    log: Path
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Cluster:
    botapi: BotApiServer
    token: str
    smtp: SmtpSink
    database_url: str
    balancer: Balancer
    replicas: list[Replica] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.isupper() or k in ("PATH", "HOME")}
        return (
            clean
            | {
                "TELEGRAM_BOT_TOKEN": self.token,
                "TELEGRAM_API_URL": self.botapi.url,
                "TELEGRAM_RATE_TOTAL": str(LIMITS.total),
                "DATABASE_URL": self.database_url,
                "REDIS_URL": REDIS_URL,
                "REDIS_LOCK_LEASE": "2",
                "PASSGRAM_SECRET": SECRET,
                "SMTP_URL": self.smtp.url,
                "EMAIL_FROM": "Acme <no-reply@acme.test>",
                "APP_NAME": "Acme",
                "WEBHOOK_URL": f"{self.balancer.url}/telegram/webhook",
                "WEBHOOK_SECRET": HOOK_SECRET,
            }
            | extra
        )

    async def start(self, replica: Replica) -> None:
        with replica.log.open("ab") as log:
            replica.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                env=self.env(WEBHOOK_LISTEN=f"127.0.0.1:{replica.port}"),
                stdout=log,
                stderr=log,
            )
        async with httpx.AsyncClient() as http, asyncio.timeout(60):
            while True:
                assert replica.process.returncode is None, replica.log.read_text()
                try:
                    if (await http.get(f"{replica.url}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)  # a process starting up signals nothing

    async def passgram(self, *args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            *args,
            env=self.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, out.decode()

    async def links(self, telegram_user_id: int) -> int:
        engine = create_async_engine(self.database_url)
        try:
            async with engine.connect() as conn:
                query = select(func.count()).select_from(Link)
                query = query.where(Link.telegram_user_id == telegram_user_id)
                return int(await conn.scalar(query) or 0)
        finally:
            await engine.dispose()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    botapi = BotApiServer()
    smtp = SmtpSink()
    await botapi.start()
    await smtp.start()
    # A bot id of its own: replicas meet in Redis under it, apart from any other test's.
    token = botapi.create_bot(username="acme_sign_in_bot", bot_id=secrets.randbelow(10**9) + 10**9)
    botapi.limit_rates(LIMITS)
    ports = [unused_port() for _ in range(3)]
    async with fresh_postgres() as url, Balancer([f"http://127.0.0.1:{p}" for p in ports]) as lb:
        await asyncio.to_thread(upgrade, url)
        c = Cluster(botapi, token, smtp, url, lb)
        c.replicas = [Replica(port, tmp_path / f"replica{i}.log") for i, port in enumerate(ports)]
        try:
            await asyncio.gather(*(c.start(replica) for replica in c.replicas))
            yield c
        finally:
            for replica in c.replicas:
                if replica.process is not None and replica.process.returncode is None:
                    replica.process.kill()
                    await replica.process.wait()
            async with redis_clients(1, namespace(token)) as (redis,):
                await forget(redis, namespace(token))
    await smtp.stop()
    await botapi.stop()


async def sign_in_starts(c: Cluster, name: str) -> tuple[object, str, str]:
    """A person types their email; returns them, the email and the code mailed."""
    email = f"{name.lower()}.{secrets.token_hex(3)}@example.com"
    user = c.botapi.user(first_name=name)
    await user.send_text(email)
    sent = await user.next_message(timeout=60)
    assert "I've sent a 6-digit code" in (sent.text or "")
    mail = await c.smtp.wait_for_message(email, timeout=30)
    body = mail.get_body(("plain",))
    assert body is not None
    match = CODE.search(body.get_content())
    assert match is not None
    return user, email, match.group(1)


async def test_three_replicas_sign_people_in_once_each_and_survive_losing_one(
    cluster: Cluster,
) -> None:
    c = cluster
    code, out = await c.passgram("webhook", "set")
    assert code == 0, out
    assert c.botapi.bot(c.token).webhook is not None

    names = ["Ann", "Ben", "Cat", "Dan", "Eve", "Fay", "Gus", "Hal", "Ida"]
    started = await asyncio.gather(*(sign_in_starts(c, name) for name in names))
    assert len(c.balancer.served) == 3  # round robin: every replica took some

    # One replica dies without a word; what the balancer sends it next goes to the others.
    doomed = c.replicas[1].process
    assert doomed is not None
    doomed.send_signal(signal.SIGKILL)
    await doomed.wait()

    async def finish(user: object, code: str) -> None:
        await user.send_text(code)  # type: ignore[attr-defined]
        await user.wait_for(  # type: ignore[attr-defined]
            lambda m: m.from_bot and (m.text or "").startswith("✅"), timeout=60
        )

    await asyncio.gather(*(finish(user, code) for user, _, code in started))

    for user, email, _ in started:
        # Signed in exactly once, and mailed exactly one code for the one request.
        assert await c.links(user.id) == 1  # type: ignore[attr-defined]
        assert sum(1 for m in c.smtp.messages if m["To"] == email) == 1
        # The person's replies, in order, none twice.
        texts = [m.text or "" for m in user.history if m.from_bot]  # type: ignore[attr-defined]
        assert len(texts) == 2, texts
        assert "I've sent a 6-digit code" in texts[0] and texts[1].startswith("✅")
    # The three replicas together stayed within the limits (and Telegram never had to say so).
    assert c.botapi.rate_windows(c.token).within(LIMITS)
    assert not [call for call in c.botapi.calls if call.error and call.error.code == 429]

    # SIGTERM while an update is in flight (a slow mail server holds it): the survivors stop
    # taking updates, finish what they hold, and exit cleanly.
    c.smtp.delay = 1.5
    late, email = c.botapi.user(first_name="Jo"), f"jo.{secrets.token_hex(3)}@example.com"
    await late.send_text(email)
    async with asyncio.timeout(10):
        while c.balancer.in_flight == 0:  # noqa: ASYNC110 - nothing signals a request taken
            await asyncio.sleep(0.01)
    survivors = [r.process for r in (c.replicas[0], c.replicas[2]) if r.process is not None]
    for process in survivors:
        process.send_signal(signal.SIGTERM)
    assert [await asyncio.wait_for(p.wait(), 40) for p in survivors] == [0, 0]
    assert "I've sent a 6-digit code" in ((await late.next_message()).text or "")
    assert sum(1 for m in c.smtp.messages if m["To"] == email) == 1
    logs = "\n".join(replica.log.read_text() for replica in c.replicas)
    secret_part = c.token.split(":", 1)[1]
    leaks = [s for _, email, code in started for s in (email, code) if s in logs]
    assert not leaks and secret_part not in logs
