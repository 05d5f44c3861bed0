"""What the listener answers besides updates (/healthz, /readyz, /metrics), the webhook command
against the Bot API stand-in, and the one-replica warning."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from bot.coordination.redis import namespace
from bot.telegram.runner import AiogramAdapter, aiogram_runner
from bot.webhook import ALLOWED_UPDATES
from bot.wiring import build_app
from storage.migrate import upgrade
from tests.e2e.conftest import World, make_world, remember
from tests.e2e.test_gate import gate, sign_in
from tests.support import unused_port
from tests.support.postgres import fresh_postgres
from tests.support.redis import REDIS_URL, redis_clients


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with make_world(tmp_path, "webhook") as w:
        yield w


def base(w: World) -> str:
    assert w.app is not None
    return f"http://{w.app.settings.webhook_listen}"


async def test_readyz_says_which_dependency_is_unreachable(world: World) -> None:
    world.overrides["redis_url"] = f"redis://127.0.0.1:{unused_port()}/0"
    await world.start_bot()
    async with httpx.AsyncClient() as http:
        health = await http.get(f"{base(world)}/healthz")
        ready = await http.get(f"{base(world)}/readyz")
    assert health.status_code == 200
    assert ready.status_code == 503
    assert ready.json() == {"ok": False, "failed": ["redis"]}


async def test_readyz_is_200_with_the_database_and_redis_reachable(world: World) -> None:
    world.overrides["redis_url"] = REDIS_URL
    async with fresh_postgres() as url:
        world.overrides["database_url"] = url
        await world.start_bot()
        async with httpx.AsyncClient() as http:
            ready = await http.get(f"{base(world)}/readyz")
        await world.stop_bot()
    assert ready.status_code == 200
    assert ready.json() == {"ok": True, "failed": []}


async def test_metrics_count_a_sign_up_without_personal_data(world: World) -> None:
    await world.start_bot()
    email = "metrics.person@example.com"
    remember(world, email)
    user = world.botapi.user(first_name="Mo")
    await user.send_text(email)
    await user.next_message()
    code = await world.email_code(email)
    wrongs = sample(
        "passgram_backend_errors_total", backend="local", call="verify", error="WrongCode"
    )
    await user.send_text(f"{(int(code) + 1) % 10**6:06d}")
    await user.next_message()
    await user.send_text(code)
    await user.wait_for(lambda m: m.from_bot and (m.text or "").startswith("✅"))
    assert (
        sample("passgram_backend_errors_total", backend="local", call="verify", error="WrongCode")
        == wrongs + 1
    )
    async with httpx.AsyncClient() as http:
        scrape = await http.get(f"{base(world)}/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    text = scrape.text
    for line in (
        'passgram_codes_sent_total{channel="email"}',
        "passgram_sign_ups_total",
        'passgram_steps_total{outcome="done",step="code"}',
        "passgram_updates_handled_total",
        'passgram_backend_seconds_count{backend="local",call="verify"}',
        'passgram_limiter_wait_seconds_count{cost="chat"}',
    ):
        assert any(row.startswith(line + " ") for row in text.splitlines()), line
    # Counters are process-wide; what matters is that nothing about a person is a label.
    for private in (email, "example.com", code, str(user.id)):
        assert private not in text


async def test_polling_serves_metrics_on_a_port_of_its_own(tmp_path: Path) -> None:
    async with make_world(tmp_path, "polling") as w:
        listen = f"127.0.0.1:{unused_port()}"
        w.overrides["metrics_listen"] = listen
        await w.start_bot()
        async with httpx.AsyncClient() as http:
            scrape = await http.get(f"http://{listen}/metrics")
            ready = await http.get(f"http://{listen}/readyz")
        assert scrape.status_code == 200 and "passgram_updates_handled" in scrape.text
        assert ready.status_code == 200
        await w.stop_bot()
        with pytest.raises(httpx.TransportError):
            async with httpx.AsyncClient() as http:
                await http.get(f"http://{listen}/metrics")


async def test_replicas_do_not_register_the_webhook_themselves(world: World) -> None:
    settings = world.settings()
    await asyncio.to_thread(upgrade, settings.database_url)
    world.app = await build_app(settings, clock=world.clock)
    world.runner = aiogram_runner(world.app)
    await world.runner.start()
    assert world.botapi.bot(world.token).webhook is None
    assert not world.botapi.calls_to("setWebhook")


async def test_a_server_database_without_redis_warns_that_one_replica_may_run(
    world: World,
) -> None:
    async with fresh_postgres() as url:
        world.overrides["database_url"] = url
        await world.start_bot()
        await world.stop_bot()
    warnings = [line for line in world.log.lines if "only ONE replica may run" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0]


async def test_a_sqlite_database_or_redis_gives_no_such_warning(world: World) -> None:
    world.overrides["redis_url"] = REDIS_URL
    async with fresh_postgres() as url:
        world.overrides["database_url"] = url
        await world.start_bot()
        await world.stop_bot()
    world.overrides.pop("redis_url")
    world.overrides.pop("database_url")
    await world.start_bot()
    assert not [line for line in world.log.lines if "ONE replica" in line]


async def test_the_update_kinds_registered_are_those_the_bot_handles(world: World) -> None:
    await world.start_bot()
    assert world.app is not None
    adapter = AiogramAdapter(world.app)
    try:
        assert sorted(adapter.dp.resolve_used_update_types()) == sorted(ALLOWED_UPDATES)
        assert adapter.allowed_updates == list(ALLOWED_UPDATES)
    finally:
        await adapter.stop()


HOOK_URL = "https://bot.example.com/telegram/webhook"


async def passgram(world: World, *args: str, **env: str) -> tuple[int, str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.isupper() or k in ("PATH", "HOME")}
    clean |= {
        "TELEGRAM_BOT_TOKEN": world.token,
        "TELEGRAM_API_URL": world.botapi.url,
        "PASSGRAM_SECRET": "cli-test-secret-0123456789abcdef",
        "WEBHOOK_URL": HOOK_URL,
        "WEBHOOK_SECRET": "e2e-webhook-secret",
    } | env
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=clean,
        cwd=world.tmp,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_webhook_set_info_and_delete_against_the_stand_in(world: World) -> None:
    code, out, _ = await passgram(world, "webhook", "set")
    assert code == 0, out
    hook = world.botapi.bot(world.token).webhook
    assert hook is not None
    assert hook.url == HOOK_URL
    assert hook.secret == "e2e-webhook-secret"
    assert sorted(world.botapi.bot(world.token).allowed_updates or []) == sorted(ALLOWED_UPDATES)

    code, out, _ = await passgram(world, "webhook", "info")
    assert code == 0
    info = json.loads(out)
    assert info["url"] == HOOK_URL
    assert sorted(info["allowed_updates"]) == sorted(ALLOWED_UPDATES)
    assert "e2e-webhook-secret" not in out and world.token.split(":")[1] not in out

    code, out, _ = await passgram(world, "webhook", "delete")
    assert code == 0
    assert world.botapi.bot(world.token).webhook is None
    assert json.loads((await passgram(world, "webhook", "info"))[1])["url"] == ""


async def test_webhook_set_without_a_url_names_the_setting(world: World) -> None:
    code, out, err = await passgram(world, "webhook", "set", WEBHOOK_URL="")
    assert code != 0 and out == ""
    assert err.strip().splitlines() == [
        "passgram: WEBHOOK_URL and WEBHOOK_SECRET: required to set the webhook"
    ]


async def test_webhook_refused_by_telegram_says_why_without_the_token(world: World) -> None:
    unknown = "1234567:" + "A" * 30
    code, _, err = await passgram(world, "webhook", "info", TELEGRAM_BOT_TOKEN=unknown)
    assert code != 0
    assert err.startswith("passgram: getWebhookInfo: ") and "A" * 30 not in err


async def test_a_persons_lock_is_released_when_their_update_is_done(world: World) -> None:
    prefix = namespace(world.token)
    async with redis_clients(1, prefix) as (redis,):
        world.overrides["redis_url"] = REDIS_URL
        await world.start_bot()
        user = world.botapi.user(first_name="Kim")
        await user.send_text("/help")
        await user.next_message()
        await world.stop_bot()
        locks = [key async for key in redis.scan_iter(match=f"{prefix}:lock:*")]
    assert locks == []  # released by its holder, not left to the lease


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_count_gate_decisions(world: World) -> None:
    await world.start_bot()
    api = world.botapi
    channel = api.create_channel(
        "Acme News", owner=api.user(first_name="Olga"), join_by_request=True
    )
    channel.add_bot()
    await api.wait_for_call("getMe")
    await gate(world, channel.id, mode="join_requests", timeout=600)
    linked = api.user(first_name="Lin")
    await sign_in(world, linked, "lin.metrics@example.com")
    before = sample("passgram_gate_decisions_total", decision="approve")
    await linked.ask_to_join(channel)
    await api.wait_for_call("approveChatJoinRequest")
    async with httpx.AsyncClient() as http:
        scrape = (await http.get(f"{base(world)}/metrics")).text
    assert sample("passgram_gate_decisions_total", decision="approve") == before + 1
    assert 'passgram_gate_decisions_total{decision="approve"}' in scrape
