"""`passgram check` and `passgram run` as an operator meets them when something is wrong: a
malformed SMTP_URL or EMAIL_FROM, a database that is not there or not migrated. Each ends with
a non-zero exit and one line on stderr naming the problem, before any update is taken.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from storage.engine import Database
from storage.migrate import NotReady, check_ready, upgrade
from tests.support import unused_port
from tests.support.postgres import fresh_postgres
from tests.test_cli import TOKEN, passgram

GOOD_SMTP = "smtp://mailer:hunter22@mail.example.com:587?starttls=true"
GOOD_SENDER = "Acme <no-reply@acme.example>"


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize(
    ("smtp_url", "problem"),
    [
        ("smtp://", "no host"),
        ("smtp://mailer:hunter22@mail.example.com:notaport", "port"),
        ("smtp://mailer:hunter22@mail.example.com:99999", "port"),
        ("smtp://mailer:hunter22@mail.example.com:587?tls=on", "starttls"),
        ("smtps://mailer:hunter22@mail.example.com?starttls=true", "TLS already"),
        ("mailto://mailer:hunter22@mail.example.com", "smtp://"),
    ],
)
def test_a_malformed_smtp_url_is_named_in_one_line(
    smtp_url: str, problem: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the working directory
    with pytest.raises(ConfigError) as refused:
        load_settings(smtp_url=smtp_url, email_from=GOOD_SENDER)
    line = one_line(str(refused.value))
    assert line.startswith("SMTP_URL: ")
    assert problem in line
    assert "hunter22" not in line


@pytest.mark.parametrize(
    "sender",
    ["not an address", "Acme <bad>", "Acme <no-reply@>", "a@acme.example, b@acme.example"],
)
def test_a_malformed_email_from_is_named_in_one_line(
    sender: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as refused:
        load_settings(smtp_url=GOOD_SMTP, email_from=sender)
    assert one_line(str(refused.value)).startswith("EMAIL_FROM: ")


def test_check_and_run_stop_at_a_malformed_smtp_url_or_email_from(tmp_path: Path) -> None:
    bad_port = "smtp://mailer:hunter22@mail.example.com:notaport"
    checked = passgram("check", cwd=tmp_path, SMTP_URL=bad_port, EMAIL_FROM=GOOD_SENDER)
    assert checked.returncode != 0
    assert one_line(checked.stderr) == (
        "passgram: SMTP_URL: the port must be a number from 1 to 65535"
    )
    assert "hunter22" not in checked.stdout + checked.stderr
    run = passgram(
        "run", cwd=tmp_path, TELEGRAM_BOT_TOKEN=TOKEN, SMTP_URL=GOOD_SMTP, EMAIL_FROM="Acme <bad>"
    )
    assert run.returncode != 0
    assert one_line(run.stderr).startswith("passgram: EMAIL_FROM: expected one address")


def test_well_formed_email_settings_pass_the_check(tmp_path: Path) -> None:
    result = passgram(
        "check",
        cwd=tmp_path,
        TELEGRAM_BOT_TOKEN=TOKEN,
        SMTP_URL="smtps://mailer:p%40ss@mail.example.com",
        EMAIL_FROM="Café Sign-in <no-reply@café.example>",
    )
    assert result.returncode == 0, result.stderr


def run_on(tmp_path: Path, database_url: str) -> str:
    """`passgram run` that must refuse to start: its one stderr line."""
    result = passgram(
        "run", cwd=tmp_path, TELEGRAM_BOT_TOKEN=TOKEN, DEV_DELIVERY="1", DATABASE_URL=database_url
    )
    assert result.returncode != 0, result.stderr
    return one_line(result.stderr)


def test_run_refuses_a_database_on_a_closed_port(tmp_path: Path) -> None:
    port = unused_port()
    line = run_on(tmp_path, f"postgresql+asyncpg://postgres:pa55word@127.0.0.1:{port}/passgram")
    assert (
        line == f"passgram: DATABASE_URL: cannot connect to 127.0.0.1:{port} (connection refused)"
    )


def test_run_refuses_a_missing_database(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:5432/passgram_not_created"
    assert run_on(tmp_path, url) == (
        'passgram: DATABASE_URL: database "passgram_not_created" does not exist on '
        "127.0.0.1:5432; create it, then run passgram db upgrade"
    )


async def test_run_refuses_a_database_without_migrations(tmp_path: Path) -> None:
    async with fresh_postgres() as url:
        line = await asyncio.to_thread(run_on, tmp_path, url)
    assert line == "passgram: database has no tables yet, run passgram db upgrade"


async def test_run_refuses_a_database_behind_the_migrations(tmp_path: Path) -> None:
    async with fresh_postgres() as url:
        await asyncio.to_thread(upgrade, url, "0001")
        line = await asyncio.to_thread(run_on, tmp_path, url)
    assert line == "passgram: database is at revision 0001, run passgram db upgrade"


def test_run_refuses_a_sqlite_file_it_cannot_create(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file where a directory should be")
    line = run_on(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'data' / 'passgram.db'}")
    assert line.startswith(f"passgram: DATABASE_URL: cannot open {tmp_path / 'data'}")


async def test_ready_at_the_head_and_sqlite_brought_there(database_url: str) -> None:
    await asyncio.to_thread(upgrade, database_url, "0001")
    if database_url.startswith("sqlite"):
        await asyncio.to_thread(check_ready, database_url)  # upgraded on the way
    else:
        with pytest.raises(NotReady, match="revision 0001"):
            await asyncio.to_thread(check_ready, database_url)
        await asyncio.to_thread(upgrade, database_url)
    await asyncio.to_thread(check_ready, database_url)


async def test_a_database_newer_than_the_code_is_refused(database_url: str) -> None:
    await asyncio.to_thread(upgrade, database_url)
    db = Database(database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    finally:
        await db.dispose()
    with pytest.raises(NotReady, match="revision 9999, which this version of Passgram does not"):
        await asyncio.to_thread(check_ready, database_url)
