"""After /forget, the person's name is gone from the database's files, not only from its tables."""

from __future__ import annotations

import asyncio
from pathlib import Path

from storage.engine import Database
from storage.migrate import upgrade
from storage.models import Conversation, Link, TelegramUser
from storage.repos import Changes, Store, UserInfo
from storage.vault import Vault

VAULT = Vault("erasure-test-secret-0123456789abcdefgh")
ERASED = 4242
NAMES = (b"Zebediah", b"zebediah_quill", b"Zebulon", b"zeb_the_renamed")


async def _written(url: str) -> Database:
    """A real database holding the person (renamed once, as Telegram users do) among others."""
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    async with db.sessions.begin() as session:
        session.add_all(
            TelegramUser(id=1000 + i, username=f"neighbour_{i}", first_name=f"Neighbour {i}")
            for i in range(300)
        )
        session.add(TelegramUser(id=ERASED, username="zebediah_quill", first_name="Zebediah"))
    async with db.sessions.begin() as session:
        user = await session.get(TelegramUser, ERASED)
        assert user is not None
        user.first_name, user.username = "Zebulon", "zeb_the_renamed"
        session.add(Conversation(telegram_user_id=ERASED, step="linked", data_enc=None))
        session.add(
            Link(
                telegram_user_id=ERASED,
                backend="local",
                auth_user_id="usr_zeb",
                identifier_kind="email",
                identifier_index=VAULT.index("email", "zeb@example.com"),
                identifier_enc=VAULT.encrypt("zeb@example.com"),
            )
        )
    return db


def _files(db_path: Path) -> bytes:
    return b"".join(
        path.read_bytes()
        for path in (db_path, db_path.with_name(db_path.name + "-wal"))
        if path.exists()
    )


async def test_erased_names_are_gone_from_the_sqlite_file_and_its_log(tmp_path: Path) -> None:
    db_path = tmp_path / "passgram.db"
    db = await _written(f"sqlite+aiosqlite:///{db_path}")
    try:
        before = _files(db_path)
        assert all(name in before for name in NAMES)  # the scan below sees what is there
        await Store(db.sessions, VAULT).apply(
            Changes(user=UserInfo(ERASED), conversation=None, erase=True)
        )
        assert await db.scrub()
        after = _files(db_path)
    finally:
        await db.dispose()
    assert [name for name in NAMES if name in after] == []
    assert b"Neighbour 299" in after and b"neighbour_0" in after  # only the erased person went
