"""PASSGRAM_SECRET: weak ones refused, the kept one written whole, a wrong one refused at start,
and `passgram secret rotate` moving every row to a new one, resumably, while the bot runs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.fernet import InvalidToken
from sqlalchemy import select

from bot.config import SECRET_FILE, ConfigError, kept_secret, load_settings
from bot.secret import open_vault, rotate
from storage import keyring
from storage.engine import Database
from storage.migrate import upgrade
from storage.models import (
    AuditEvent,
    Conversation,
    Link,
    LocalAccount,
    LocalEvent,
    Meta,
    TelegramUser,
)
from storage.repos import Changes, Store, UserInfo
from storage.vault import Vault

OLD = "old-secret-0123456789abcdefghijklmnopqrstuv"
NEW = "new-secret-ZYXWVUTSRQPONMLKJIHGFEDCBA-9876543"
USERS = 7  # with batches of 2: several batches per table, and a short last one


def passgram(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _env(env: dict[str, str]) -> dict[str, str]:
    """The command's environment: only what the test gives, so no PASSGRAM_SECRET leaks in;
    codes to the log, so `check` has no delivery channel to complain about."""
    clean = {k: v for k, v in os.environ.items() if not k.isupper() or k in ("PATH", "HOME")}
    return clean | {"DEV_DELIVERY": "1"} | env


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# -- weak secrets ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "empty"),
        ("x", "only 1 characters long"),
        ("correct-horse-battery-staple-12", "only 31 characters long"),
        ("ab" * 20, "too few different characters"),
    ],
)
def test_a_weak_secret_is_refused_with_one_line(tmp_path: Path, value: str, why: str) -> None:
    result = passgram("check", cwd=tmp_path, PASSGRAM_SECRET=value)
    line = _one_line(result)
    assert line.startswith("passgram: PASSGRAM_SECRET: ")
    assert why in line and "at least 32" in line
    if len(value) > 1:
        assert value not in result.stdout + result.stderr


def test_a_secret_of_32_random_characters_is_accepted(tmp_path: Path) -> None:
    result = passgram("check", cwd=tmp_path, PASSGRAM_SECRET="q7Lx2-Vn9Rk4_Tz8Wb3Hc6Jm1Pd5Fs0G")
    assert result.returncode == 0, result.stderr
    assert "PASSGRAM_SECRET=********" in result.stdout


# -- the kept secret -------------------------------------------------------------------------


def test_a_made_secret_is_kept_whole_and_private(tmp_path: Path) -> None:
    value, created = kept_secret(tmp_path / "data")
    path = tmp_path / "data" / SECRET_FILE
    assert created and len(value) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == value + "\n"
    assert kept_secret(tmp_path / "data") == (value, False)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [SECRET_FILE]


def test_a_full_disk_at_first_start_leaves_no_empty_secret(tmp_path: Path) -> None:
    # A file-size limit of zero makes every write fail, as a full disk does (EFBIG, not ENOSPC).
    crash = subprocess.run(
        [
            sys.executable,
            "-c",
            "import resource, signal, sys\n"
            "from pathlib import Path\n"
            "from bot.config import kept_secret\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))\n"
            "kept_secret(Path(sys.argv[1]))\n",
            str(tmp_path),
        ],
        env=_env({}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert crash.returncode != 0
    assert "File too large" in crash.stderr
    assert list(tmp_path.iterdir()) == []
    value, created = kept_secret(tmp_path)
    assert created and len(value) >= 32


@pytest.mark.parametrize("content", ["", "\n", "short-secret\n"])
def test_an_empty_or_short_kept_secret_is_refused(tmp_path: Path, content: str) -> None:
    (tmp_path / SECRET_FILE).write_text(content)
    url = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    line = _one_line(passgram("links", "list", cwd=tmp_path, DATABASE_URL=url))
    assert line.startswith("passgram: PASSGRAM_SECRET: not set, and the secret kept in ")
    assert SECRET_FILE in line and "restore that file" in line
    assert (tmp_path / SECRET_FILE).read_text() == content  # never replaced behind one's back


# -- the check value -------------------------------------------------------------------------


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    await asyncio.to_thread(upgrade, database_url)
    database = Database(database_url)
    try:
        yield database
    finally:
        await database.dispose()


async def test_the_first_start_records_the_secret_and_another_is_refused(db: Database) -> None:
    await keyring.verify_or_record(db.sessions, Vault(OLD))
    await keyring.verify_or_record(db.sessions, Vault(OLD))  # a restart with the same one
    with pytest.raises(keyring.WrongSecret, match="not the secret this database was written"):
        await keyring.verify_or_record(db.sessions, Vault(NEW))
    async with db.sessions() as session:
        assert (await session.get(Meta, keyring.CHECK)) is not None
        check = await session.scalar(select(Meta.value).where(Meta.name == keyring.CHECK))
    assert check == Vault(OLD).check and OLD not in check


async def test_a_database_from_before_check_values_is_judged_by_its_data(db: Database) -> None:
    await _populate(db, Vault(OLD))
    with pytest.raises(keyring.WrongSecret):
        await keyring.verify_or_record(db.sessions, Vault(NEW))
    await keyring.verify_or_record(db.sessions, Vault(OLD))
    async with db.sessions() as session:
        assert (await session.get(Meta, keyring.CHECK)) is not None


async def test_open_vault_refuses_a_wrong_secret_in_one_line(db: Database) -> None:
    await _populate(db, Vault(OLD))
    wrong = load_settings(_env_file=None, database_url=db.url, passgram_secret=NEW)
    with pytest.raises(ConfigError) as refused:
        await open_vault(wrong, db.sessions)
    assert str(refused.value).startswith("PASSGRAM_SECRET is not the secret")
    assert "\n" not in str(refused.value) and NEW not in str(refused.value)
    right = load_settings(_env_file=None, database_url=db.url, passgram_secret=OLD)
    vault = await open_vault(right, db.sessions)
    assert len(await Store(db.sessions, vault).list_links()) == USERS


def test_links_with_a_wrong_secret_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    asyncio.run(_populated(url, Vault(OLD)))
    line = _one_line(passgram("links", "list", cwd=tmp_path, DATABASE_URL=url, PASSGRAM_SECRET=NEW))
    assert line.startswith("passgram: PASSGRAM_SECRET is not the secret")
    shown = passgram("links", "list", cwd=tmp_path, DATABASE_URL=url, PASSGRAM_SECRET=OLD)
    assert shown.returncode == 0, shown.stderr
    assert len(json.loads(shown.stdout)) == USERS


def test_check_compares_the_secret_with_an_existing_database_only(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    fresh = passgram("check", cwd=tmp_path, DATABASE_URL=url, PASSGRAM_SECRET=NEW)
    assert fresh.returncode == 0, fresh.stderr
    assert not (tmp_path / "p.db").exists()  # checking made no database
    asyncio.run(_populated(url, Vault(OLD)))
    line = _one_line(passgram("check", cwd=tmp_path, DATABASE_URL=url, PASSGRAM_SECRET=NEW))
    assert line.startswith("passgram: PASSGRAM_SECRET is not the secret")
    assert passgram("check", cwd=tmp_path, DATABASE_URL=url, PASSGRAM_SECRET=OLD).returncode == 0


def test_a_lost_kept_secret_is_not_silently_replaced(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    kept, _ = kept_secret(tmp_path)
    asyncio.run(_populated(url, Vault(kept)))
    (tmp_path / SECRET_FILE).unlink()
    for command in (("check",), ("links", "list")):
        line = _one_line(passgram(*command, cwd=tmp_path, DATABASE_URL=url))
        assert "PASSGRAM_SECRET: not set, and" in line and "does not exist" in line
        assert not (tmp_path / SECRET_FILE).exists()


# -- rotation --------------------------------------------------------------------------------


async def test_rotation_leaves_everything_readable_with_the_new_secret_only(db: Database) -> None:
    old = Vault(OLD)
    await _populate(db, old)
    await keyring.verify_or_record(db.sessions, old)
    both = Vault(NEW, old=[OLD])
    seen: list[keyring.Progress] = []
    rotated = await keyring.rotate(db.sessions, both, batch_size=2, progress=seen.append)
    assert rotated.needed and not rotated.resumed
    assert rotated.rewritten == 3 * USERS  # accounts, links, conversations
    assert {p.table for p in seen} == {"local_accounts", "telegram_users", "links", "conversations"}
    assert seen[-1] == keyring.Progress("conversations", USERS, USERS)

    new = Vault(NEW)
    await _assert_readable_by_new_only(db, new, old)
    await keyring.verify_or_record(db.sessions, new)
    with pytest.raises(keyring.WrongSecret):
        await keyring.verify_or_record(db.sessions, old)
    again = await keyring.rotate(db.sessions, both)
    assert not again.needed and again.rewritten == 0


async def test_an_interrupted_rotation_resumes_where_it_stopped(db: Database) -> None:
    old, both, new = Vault(OLD), Vault(NEW, old=[OLD]), Vault(NEW)
    await _populate(db, old)
    await keyring.verify_or_record(db.sessions, old)

    def die_in_links(step: keyring.Progress) -> None:
        if step.table == "links":
            raise Paused

    with pytest.raises(Paused):
        await keyring.rotate(db.sessions, both, batch_size=2, progress=die_in_links)
    # Half moved: a process with only one of the two secrets is refused, with both it runs.
    for one in (new, old):
        with pytest.raises(keyring.RotationUnderway):
            await keyring.verify_or_record(db.sessions, one)
    await keyring.verify_or_record(db.sessions, both)

    seen: list[keyring.Progress] = []
    rotated = await keyring.rotate(db.sessions, both, batch_size=2, progress=seen.append)
    assert rotated.resumed
    # Accounts and the first batch of links were done before the interruption.
    assert rotated.rewritten == 3 * USERS - USERS - 2
    assert seen[0] == keyring.Progress("links", 4, USERS)
    await _assert_readable_by_new_only(db, new, old)


async def test_what_the_bot_writes_during_a_rotation_survives_it(db: Database) -> None:
    old, both, new = Vault(OLD), Vault(NEW, old=[OLD]), Vault(NEW)
    await _populate(db, old)
    await keyring.verify_or_record(db.sessions, old)
    last = 100 + USERS - 1

    def pause_in_links(step: keyring.Progress) -> None:
        if step.table == "links":
            raise Paused

    with pytest.raises(Paused):
        await keyring.rotate(db.sessions, both, batch_size=2, progress=pause_in_links)
    # Meanwhile the bot, holding both secrets, changes a conversation the rotation has not
    # reached, and a link it has passed.
    await _set_conversation(db, both, last, {"typed": "mid-rotation"})
    async with db.sessions.begin() as session:
        link = await session.get(Link, 100)
        assert link is not None
        link.state_enc = both.encrypt({"client": "refreshed"})
    await keyring.rotate(db.sessions, both, batch_size=2)

    async with db.sessions() as session:
        conv = await session.get(Conversation, last)
    assert conv is not None and conv.data_enc is not None
    assert new.decrypt(conv.data_enc) == {"typed": "mid-rotation"}
    refreshed = await Store(db.sessions, new).get_link(100)
    assert refreshed is not None and refreshed.state == {"client": "refreshed"}


class Paused(Exception):
    """Raised from a progress report: the rotation stops there, as a killed process would."""


async def test_a_database_written_with_an_empty_secret_can_be_moved_off_it(db: Database) -> None:
    # What an older version did with `PASSGRAM_SECRET=` copied from the example file.
    await _populate(db, Vault(""))
    settings = load_settings(
        _env_file=None, database_url=db.url, passgram_secret=NEW, passgram_secret_old=""
    )
    rotated = await rotate(settings, batch_size=500)
    assert rotated.needed and rotated.rewritten == 3 * USERS
    await _assert_readable_by_new_only(db, Vault(NEW), Vault(""))


def test_passgram_secret_rotate_killed_midway_and_run_again(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    asyncio.run(_populated(url, Vault(OLD)))
    env = {"DATABASE_URL": url, "PASSGRAM_SECRET": NEW, "PASSGRAM_SECRET_OLD": OLD}
    run = subprocess.Popen(
        [sys.executable, "-m", "bot", "secret", "rotate", "--batch-size", "1"],
        cwd=tmp_path,
        env=_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert run.stderr is not None
    first = run.stderr.readline()
    run.send_signal(signal.SIGKILL)  # a crash right after the first committed batch
    run.wait(timeout=60)
    assert first.startswith("passgram: local_accounts 1/")

    new_only = passgram("links", "list", cwd=tmp_path, DATABASE_URL=url, PASSGRAM_SECRET=NEW)
    assert "PASSGRAM_SECRET_OLD: a change of secret is under way" in _one_line(new_only)

    done = passgram("secret", "rotate", cwd=tmp_path, **env)
    assert done.returncode == 0, done.stderr
    assert "an interrupted rotation, carried on" in done.stdout
    assert "Remove PASSGRAM_SECRET_OLD" in done.stdout
    assert OLD not in done.stdout + done.stderr and NEW not in done.stdout + done.stderr

    shown = passgram("links", "list", cwd=tmp_path, DATABASE_URL=url, PASSGRAM_SECRET=NEW)
    assert shown.returncode == 0, shown.stderr
    assert sorted(link["identifier"] for link in json.loads(shown.stdout)) == sorted(
        f"user{100 + i}@example.com" for i in range(USERS)
    )
    old_only = passgram("links", "list", cwd=tmp_path, DATABASE_URL=url, PASSGRAM_SECRET=OLD)
    assert "not the secret this database was written with" in _one_line(old_only)


def test_rotate_needs_both_secrets(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    asyncio.run(_populated(url, Vault(OLD)))
    line = _one_line(
        passgram("secret", "rotate", cwd=tmp_path, DATABASE_URL=url, PASSGRAM_SECRET=NEW)
    )
    assert line.startswith("passgram: PASSGRAM_SECRET_OLD: set it")
    wrong = passgram(
        "secret",
        "rotate",
        cwd=tmp_path,
        DATABASE_URL=url,
        PASSGRAM_SECRET=NEW,
        PASSGRAM_SECRET_OLD="neither-secret-0123456789abcdefghijklmn",
    )
    assert "not the secret this database was written with" in _one_line(wrong)


# -- helpers ---------------------------------------------------------------------------------


async def _populated(url: str, vault: Vault) -> None:
    await asyncio.to_thread(upgrade, url)
    database = Database(url)
    try:
        await _populate(database, vault)
    finally:
        await database.dispose()


async def _populate(db: Database, vault: Vault) -> None:
    """What a running bot leaves, written as the store and the local backend write it."""
    async with db.sessions.begin() as session:
        for i in range(USERS):
            user_id, address = 100 + i, f"user{100 + i}@example.com"
            session.add(TelegramUser(id=user_id, username=f"user_{i}", first_name="User"))
            session.add(
                LocalAccount(
                    id=f"usr_{i:03d}",
                    identifier_kind="email",
                    identifier_index=vault.index("email", address),
                    identifier_enc=vault.encrypt(address),
                )
            )
            await session.flush()
            session.add(
                Link(
                    telegram_user_id=user_id,
                    backend="local",
                    auth_user_id=f"usr_{i:03d}",
                    identifier_kind="email",
                    identifier_index=vault.index("email", address),
                    identifier_enc=vault.encrypt(address),
                    state_enc=vault.encrypt({"client": f"token-{i}"}) if i % 2 else None,
                )
            )
            session.add(
                Conversation(
                    telegram_user_id=user_id, step="linked", data_enc=vault.encrypt({"n": i})
                )
            )
            session.add(
                LocalEvent(
                    kind="send_id",
                    key=vault.index("email", address),
                    requester=vault.index("telegram", str(user_id)),
                )
            )
            session.add(LocalEvent(kind="send_user", key=vault.index("telegram", str(user_id))))
        session.add(LocalEvent(kind="send_id", key=vault.index("email", "nobody@example.com")))
        session.add(LocalEvent(kind="send_all", key="*"))
        session.add(TelegramUser(id=999, first_name="Erased"))
    await Store(db.sessions, vault).apply(
        Changes(user=UserInfo(999), conversation=None, erase=True)
    )


async def _set_conversation(db: Database, vault: Vault, user_id: int, data: dict[str, str]) -> None:
    async with db.sessions.begin() as session:
        conv = await session.get(Conversation, user_id)
        assert conv is not None
        conv.data_enc = vault.encrypt(data)


async def _assert_readable_by_new_only(db: Database, new: Vault, old: Vault) -> None:
    links = await Store(db.sessions, new).list_links()
    assert sorted(link.identifier_value for link in links) == sorted(
        f"user{100 + i}@example.com" for i in range(USERS)
    )
    assert {link.telegram_user_id: link.state for link in links}[101] == {"client": "token-1"}
    async with db.sessions() as session:
        accounts = (await session.scalars(select(LocalAccount))).all()
        rows = (await session.scalars(select(Link))).all()
        conversations = (await session.scalars(select(Conversation))).all()
        events = (await session.scalars(select(LocalEvent))).all()
        erased = await session.scalars(select(AuditEvent).where(AuditEvent.event == "erased"))
        erased_subjects = [e.detail["subject"] for e in erased]
    tokens = [a.identifier_enc for a in accounts] + [r.identifier_enc for r in rows]
    tokens += [r.state_enc for r in rows if r.state_enc] + [
        c.data_enc for c in conversations if c.data_enc
    ]
    assert len(tokens) == 3 * USERS + USERS // 2
    for token in tokens:
        new.decrypt(token)
        with pytest.raises(InvalidToken):
            old.decrypt(token)
    for account in accounts:
        assert account.identifier_index == new.index("email", new.decrypt(account.identifier_enc))
    for row in rows:
        assert row.identifier_index == new.index("email", new.decrypt(row.identifier_enc))
    # Counts keyed by a known person or address moved with them; one nobody holds could not.
    keys = {(e.kind, e.key) for e in events}
    requesters = {e.key: e.requester for e in events if e.kind == "send_id"}
    for i in range(USERS):
        address = new.index("email", f"user{100 + i}@example.com")
        assert ("send_id", address) in keys
        assert requesters[address] == new.index("telegram", str(100 + i))
        assert ("send_user", new.index("telegram", str(100 + i))) in keys
    assert ("send_id", old.index("email", "nobody@example.com")) in keys
    assert ("send_all", "*") in keys
    # The erased person's pseudonym stays as it was made: nobody holds the id behind it.
    assert erased_subjects == [old.index("telegram", "999")]
