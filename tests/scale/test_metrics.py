"""The counters behind /metrics, each where it is counted: a 429 by either limiter, a code by
its channel, a backend refusal by its kind."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from bot.auth.delivery import DeliveryError
from bot.coordination.limiter import RedisLimiter
from bot.identifiers import parse_email
from bot.limits_out import LocalLimiter
from bot.metered import MeteredChannel
from tests.auth.conftest import RecordingChannel
from tests.support.redis import fresh_prefix, redis_clients


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_429_is_counted_by_what_it_paused_on_either_limiter() -> None:
    prefix = fresh_prefix()
    async with redis_clients(1, prefix) as (client,):
        for limiter in (LocalLimiter(), RedisLimiter(client, prefix)):
            before = {
                s: sample("passgram_telegram_429_total", scope=s)
                for s in ("private", "group", "bot")
            }
            await limiter.penalise(42, 1.0)
            await limiter.penalise(-100123, 1.0)
            await limiter.penalise("@acme_news", 1.0)
            await limiter.penalise(None, 0.0)
            after = {s: sample("passgram_telegram_429_total", scope=s) for s in before}
            assert {s: after[s] - before[s] for s in before} == {"private": 1, "group": 2, "bot": 1}


async def test_codes_are_counted_by_channel_sent_or_failed() -> None:
    inner = RecordingChannel("email", frozenset({"email"}))
    channel = MeteredChannel(inner)
    to = parse_email("metered@example.com")
    sent = sample("passgram_codes_sent_total", channel="email")
    failed = sample("passgram_codes_failed_total", channel="email")
    await channel.send_code(to, "123456", app_name="Acme", ttl_minutes=10)
    inner.failure = DeliveryError("mailbox unavailable", temporary=False)
    with pytest.raises(DeliveryError):
        await channel.send_code(to, "654321", app_name="Acme", ttl_minutes=10)
    assert sample("passgram_codes_sent_total", channel="email") == sent + 1
    assert sample("passgram_codes_failed_total", channel="email") == failed + 1
    assert [code for _, code in inner.sent] == ["123456"]
