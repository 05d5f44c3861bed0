"""Alembic migrations, run programmatically (`passgram db upgrade`, and on start for SQLite), and
the check `passgram run` makes before it takes updates: the database answers and is at the head.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError

from storage.engine import create_engine

MIGRATIONS = Path(__file__).parent / "migrations"
# A database that answers at all accepts a connection well within this; a dropped packet
# (a firewall) would otherwise hold the start for the driver's minute.
CONNECT_TIMEOUT = 10.0


class NotReady(Exception):
    """The database cannot serve the bot; the message is one line naming the problem."""


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would eat the "%" of percent-encoded passwords.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database to `revision`. Blocking: call it outside the event loop (or a thread)."""
    _make_room(make_url(url))
    command.upgrade(alembic_config(url), revision)


def check_ready(url: str) -> None:
    """What `passgram run` makes sure of before it takes updates: the database answers and its
    schema is at the migration head. SQLite is brought there first (one process owns the file);
    PostgreSQL must have had `passgram db upgrade`, which replicas must not race to run.

    NotReady with one line otherwise. Blocking: call it outside the event loop (or a thread).
    """
    parsed = make_url(url)
    _make_room(parsed)
    current = asyncio.run(_applied(url))
    scripts = ScriptDirectory.from_config(alembic_config(url))
    head = scripts.get_current_head()
    known = {script.revision for script in scripts.walk_revisions()}
    if current == head:
        return
    if current is not None and current not in known:
        raise NotReady(
            f"database is at revision {current}, which this version of Passgram does not know "
            f"(it knows up to {head}); run the newer version"
        )
    if parsed.get_backend_name() == "sqlite":
        command.upgrade(alembic_config(url), "head")
    elif current is None:
        raise NotReady("database has no tables yet, run passgram db upgrade")
    else:
        raise NotReady(f"database is at revision {current}, run passgram db upgrade")


async def _applied(raw_url: str) -> str | None:
    """The revision the database is at (None: no migration applied yet); NotReady when the
    database does not answer."""
    url = make_url(raw_url)
    engine = create_engine(raw_url)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT), engine.connect() as conn:
            return await conn.run_sync(_revision)
    except TimeoutError:
        raise NotReady(
            f"DATABASE_URL: no answer from {_where(url)} within {CONNECT_TIMEOUT:.0f} s"
        ) from None
    except OSError as exc:
        raise NotReady(_unreachable(url, exc)) from None
    except DBAPIError as exc:
        raise NotReady(_refused(url, exc)) from None
    finally:
        await engine.dispose()


def _revision(conn: Connection) -> str | None:
    # Read directly: Alembic's MigrationContext would log at INFO before the one-line refusal.
    if not inspect(conn).has_table("alembic_version"):
        return None
    version: str | None = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return version


def _make_room(url: URL) -> None:
    """A SQLite file's directory, made if missing."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    try:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NotReady(_cannot_open(url, exc.strerror or type(exc).__name__)) from None


def _where(url: URL) -> str:
    return f"{url.host or 'localhost'}:{url.port or 5432}"


def _cannot_open(url: URL, reason: str) -> str:
    return f"DATABASE_URL: cannot open {url.database} ({reason.lower()})"


def _unreachable(url: URL, exc: OSError) -> str:
    if url.get_backend_name() == "sqlite":
        return _cannot_open(url, exc.strerror or type(exc).__name__)
    if exc.errno is None:
        # Several addresses tried (localhost: ::1 and 127.0.0.1): asyncio joins their errors.
        found = re.search(r"\[Errno (\d+)\]", str(exc))
        errno = int(found.group(1)) if found else None
    else:
        errno = exc.errno
    reason = os.strerror(errno) if errno is not None else type(exc).__name__
    if isinstance(exc, socket.gaierror):
        return f"DATABASE_URL: cannot find the host {url.host} ({exc.strerror or reason})"
    return f"DATABASE_URL: cannot connect to {_where(url)} ({reason.lower()})"


def _refused(url: URL, exc: DBAPIError) -> str:
    reason = str(exc.orig).splitlines()[0] if exc.orig is not None else type(exc).__name__
    if url.get_backend_name() == "sqlite":
        return _cannot_open(url, reason)
    if getattr(exc.orig, "sqlstate", None) == "3D000":  # invalid_catalog_name
        return (
            f'DATABASE_URL: database "{url.database}" does not exist on {_where(url)}; '
            "create it, then run passgram db upgrade"
        )
    return f"DATABASE_URL: {_where(url)} refused the connection ({reason})"
