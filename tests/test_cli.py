"""The `passgram` command as an operator meets it: one clear line on bad configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TOKEN = "123456789:AAEexampleexampleexampleexample12"


def passgram(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.isupper() or k in ("PATH", "HOME")}
    clean |= {"PASSGRAM_SECRET": "cli-test-secret-0123456789abcdef"} | env
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_run_without_a_token_names_the_setting(tmp_path: Path) -> None:
    result = passgram("run", cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("passgram: TELEGRAM_BOT_TOKEN")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TELEGRAM_BOT_TOKEN", "not-a-token"),
        ("DATABASE_URL", "mysql://localhost/passgram"),
        ("DEFAULT_REGION", "Atlantis"),
        ("AUTH_BACKEND", "ldap"),
        ("WEBHOOK_LISTEN", "nowhere"),
        ("METRICS_LISTEN", "nowhere"),
        ("REDIS_URL", "http://cache.example.com"),
        ("REDIS_LOCK_LEASE", "-5"),
        ("DATABASE_POOL_SIZE", "0"),
        ("LOG_LEVEL", "LOUD"),
        ("TELEGRAM_FRAMEWORK", "telebot"),
    ],
)
def test_run_with_a_malformed_setting_names_it(tmp_path: Path, name: str, value: str) -> None:
    env = {"TELEGRAM_BOT_TOKEN": TOKEN, name: value}
    result = passgram("run", cwd=tmp_path, **env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"passgram: {name}:")
    assert value not in lines[0] or name in ("DEFAULT_REGION",)


def test_run_refuses_log_delivery_outside_the_sandbox(tmp_path: Path) -> None:
    result = passgram("run", cwd=tmp_path, TELEGRAM_BOT_TOKEN=TOKEN)
    assert result.returncode != 0
    assert "DEV_DELIVERY=1" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_webhook_url_needs_a_secret(tmp_path: Path) -> None:
    result = passgram(
        "run", cwd=tmp_path, TELEGRAM_BOT_TOKEN=TOKEN, WEBHOOK_URL="https://bot.example.com/hook"
    )
    assert result.returncode != 0
    assert "WEBHOOK_SECRET" in result.stderr


def test_check_masks_secrets(tmp_path: Path) -> None:
    result = passgram(
        "check",
        cwd=tmp_path,
        TELEGRAM_BOT_TOKEN=TOKEN,
        SMTP_URL="smtp://user:hunter22@mail.example.com:587",
        EMAIL_FROM="no-reply@example.com",
        DATABASE_URL="postgresql+asyncpg://app:pa55word@db.example.com/passgram",
        REDIS_URL="redis://:r3dispass@cache.example.com:6379/0",
    )
    assert result.returncode == 0, result.stderr
    assert "REDIS_URL=redis://:***@cache.example.com:6379/0" in result.stdout
    assert "TELEGRAM_BOT_TOKEN=********" in result.stdout
    assert "TELEGRAM_FRAMEWORK=aiogram" in result.stdout
    assert "SMTP_URL=********" in result.stdout
    assert "DATABASE_URL=postgresql+asyncpg://app:***@db.example.com/passgram" in result.stdout
    for secret in ("AAEexample", "hunter22", "pa55word", "r3dispass", "cli-test-secret"):
        assert secret not in result.stdout + result.stderr


def test_db_upgrade_and_links_on_an_empty_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    up = passgram("db", "upgrade", cwd=tmp_path, DATABASE_URL=url)
    assert up.returncode == 0, up.stderr
    assert (tmp_path / "p.db").exists()
    listed = passgram("links", "list", cwd=tmp_path, DATABASE_URL=url)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    shown = passgram("links", "show", "42", cwd=tmp_path, DATABASE_URL=url)
    assert shown.returncode != 0
    assert "no link for Telegram user 42" in shown.stderr
