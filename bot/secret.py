"""PASSGRAM_SECRET as the commands use it: a vault made from the settings and checked against the
database before anything is read or written with it, and `passgram secret rotate`.

Changing the secret, as an operator does it (the README says the same):
1. restart every running bot with the new secret in PASSGRAM_SECRET and the current one in
   PASSGRAM_SECRET_OLD: it writes under the new one and reads under either;
2. run `passgram secret rotate` with the same two settings: it moves every row to the new
   secret in batches, and can be stopped and run again at any point;
3. remove PASSGRAM_SECRET_OLD and restart.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.config import SECRET_FILE, ConfigError, Settings
from storage import keyring
from storage.engine import Database, SessionFactory, sqlite_file
from storage.vault import Vault

log = logging.getLogger(__name__)

T = TypeVar("T")


def vault_for(settings: Settings) -> Vault:
    """The vault of PASSGRAM_SECRET (or the kept secret), reading PASSGRAM_SECRET_OLD too."""
    old = settings.passgram_secret_old
    return Vault(settings.secret(), old=[old.get_secret_value()] if old is not None else [])


async def open_vault(settings: Settings, sessions: SessionFactory) -> Vault:
    """The vault for a process that reads and writes the database, or ConfigError (one line)
    when its secret is not the one the database was written with. Records the secret's check
    value on first use."""
    if _would_make_a_secret(settings) and await _guarded(settings, keyring.is_written(sessions)):
        # Making a new secret now could only lead to refusing it: say what is missing instead.
        raise _kept_secret_lost(settings)
    vault = vault_for(settings)
    await _guarded(settings, keyring.verify_or_record(sessions, vault))
    if settings.passgram_secret_old is not None:
        log.warning(
            "PASSGRAM_SECRET_OLD is set: data written with it stays readable. Run `passgram "
            "secret rotate`, then remove PASSGRAM_SECRET_OLD and restart"
        )
    return vault


async def check(settings: Settings) -> None:
    """`passgram check`: is the secret the one the database was written with? Reads only, and
    makes neither a database nor a secret; a database that can't be reached or has no tables
    yet has nothing to check against."""
    path = sqlite_file(settings.database_url)
    if path is not None and not path.exists():
        return
    db = Database(settings.database_url)
    try:
        if _would_make_a_secret(settings):
            if await _guarded(settings, keyring.is_written(db.sessions)):
                raise _kept_secret_lost(settings)
            return
        vault = vault_for(settings)
        await _guarded(settings, keyring.verify_or_record(db.sessions, vault, record=False))
    except _Unavailable:
        return
    finally:
        await db.dispose()


async def rotate(
    settings: Settings,
    *,
    batch_size: int,
    progress: Callable[[keyring.Progress], None] | None = None,
) -> keyring.Rotated:
    """`passgram secret rotate`: move the database from PASSGRAM_SECRET_OLD to PASSGRAM_SECRET."""
    if settings.passgram_secret is None:
        raise ConfigError("PASSGRAM_SECRET: set it to the new secret to rotate to")
    if settings.passgram_secret_old is None:
        raise ConfigError(
            "PASSGRAM_SECRET_OLD: set it to the secret the database is written with now"
        )
    db = Database(settings.database_url)
    try:
        return await _guarded(
            settings,
            keyring.rotate(
                db.sessions, vault_for(settings), batch_size=batch_size, progress=progress
            ),
        )
    finally:
        await db.dispose()


class _Unavailable(ConfigError):
    """The database can't be reached or has no tables: nothing to check the secret against."""


async def _guarded(settings: Settings, work: Awaitable[T]) -> T:
    """`work`, with the keyring's refusals turned into ConfigError lines that say where the
    secret came from."""
    try:
        return await work
    except keyring.DatabaseUnavailable as exc:
        raise _Unavailable(str(exc)) from None
    except keyring.WrongSecret as exc:
        if settings.passgram_secret is None:
            raise ConfigError(
                f"PASSGRAM_SECRET: not set, and the secret kept in {_kept_file(settings)} is not "
                "the one this database was written with; set PASSGRAM_SECRET to that one, or "
                "restore the file"
            ) from None
        raise ConfigError(str(exc)) from None
    except keyring.SecretError as exc:
        raise ConfigError(str(exc)) from None


def _would_make_a_secret(settings: Settings) -> bool:
    return (
        settings.passgram_secret is None and not (settings.passgram_data_dir / SECRET_FILE).exists()
    )


def _kept_secret_lost(settings: Settings) -> ConfigError:
    return ConfigError(
        f"PASSGRAM_SECRET: not set, and {_kept_file(settings)} does not exist, but this "
        "database was written with a secret; set PASSGRAM_SECRET, or restore that file"
    )


def _kept_file(settings: Settings) -> str:
    return str(settings.passgram_data_dir / SECRET_FILE)
