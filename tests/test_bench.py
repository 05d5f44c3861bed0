"""The benchmark's short form, so it cannot rot: every scenario runs end to end in a subprocess
and reports its fields. Timings are printed by the bench, never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.postgres import ADMIN_DSN
from tests.support.redis import REDIS_URL

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = ADMIN_DSN.replace("postgresql://", "postgresql+asyncpg://", 1)
LATENCY = ("p50_ms", "p95_ms", "p99_ms")


def bench(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_every_sign_in_completes_next_to_the_echo_floor() -> None:
    result = bench("signin", "--users", "200", "--concurrency", "50")
    passgram, echo = result["passgram"], result["echo"]
    assert passgram["completed"] == 200
    assert passgram["failed"] == passgram["lost"] == 0
    assert passgram["steps"] == 600  # /start, the address, the code
    assert echo["steps"] == 600 and echo["lost"] == 0
    for key in (*LATENCY, "steps_per_s", "signins_per_s", "cpu_s", "peak_rss_mb", "db_bytes"):
        assert key in passgram
    assert result["ratio"] > 0 and result["database"] == "sqlite"
    assert result["machine"]["nproc"] >= 1


def test_open_loop_in_webhook_mode() -> None:
    result = bench("signin", "--users", "30", "--rate", "30", "--webhook")
    assert result["passgram"]["completed"] == 30
    assert result["mode"] == "webhook" and result["load"] == "30 steps/s"


def test_both_frameworks_and_three_replicas_on_postgresql_and_redis_side_by_side() -> None:
    result = bench(
        "signin",
        *("--users", "30", "--concurrency", "10"),
        *("--framework", "aiogram", "--framework", "ptb", "--replicas", "3"),
        *("--database-url", POSTGRES, "--redis-url", REDIS_URL),
    )
    runs = [result["passgram"], *result["also"]]
    assert [(r["target"], r["database"], r["processes"]) for r in runs] == [
        ("passgram", "sqlite", 1),
        ("passgram-ptb", "sqlite", 1),
        ("passgram-3-replicas", "postgresql", 3),
    ]
    for run in runs:
        assert run["completed"] == 30 and run["failed"] == run["lost"] == 0
        assert run["ratio"] > 0


def test_idle_people_are_counted_and_a_step_still_answers() -> None:
    result = bench("idle", "--users", "500", "--driven", "40")
    assert result["pending"] == 500
    assert result["driven_through_telegram"] == 40
    assert result["seeded_in_database"] == 460
    assert result["step"]["steps"] == 40 and result["step"]["lost"] == 0
    assert "rss_growth_mb" in result


def test_a_burst_of_join_requests_is_decided_within_telegram_limits() -> None:
    result = bench("burst", "--users", "20")
    assert result["requests"] == 20
    assert result["messaged"] == 20
    assert result["declined"] == 20 and result["lost"] == 0 and result["pending"] == 0
    assert result["too_many_requests"] == 0
    assert result["within_telegram_limits"] is True
