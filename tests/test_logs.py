"""LOG_LEVEL=DEBUG is safe in production: with the bot's own logging set up at DEBUG, what the
libraries underneath print carries no tokens and no personal data.

Real parts: an httpx request to a loopback server that answers with an `Authorization` header,
as Clerk's Frontend API hands a native client its token; real SQLite and PostgreSQL statements
whose parameter is a person's first name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from bot import logs
from bot.sandbox.loopback import LoopbackServer
from storage.engine import Database

CLIENT_TOKEN = "eyJhbGciOiJSUzI1NiJ9.client-token-of-a-person.c2lnbmF0dXJl"
FIRST_NAME = "Zebulonia"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """`logs.setup` configures the process; give the next test the logging it had."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)


class TokenHandingServer(LoopbackServer):
    def make_app(self) -> web.Application:
        async def client(_: web.Request) -> web.Response:
            return web.json_response({"response": {}}, headers={"Authorization": CLIENT_TOKEN})

        app = web.Application()
        app.router.add_get("/v1/client", client)
        return app


async def test_http_headers_stay_out_of_debug_logs(capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup("DEBUG")
    async with TokenHandingServer() as server, httpx.AsyncClient() as http:
        response = await http.get(f"{server.url}/v1/client")
    assert response.headers["Authorization"] == CLIENT_TOKEN
    logging.getLogger("bot.test").debug("debug lines are on")

    err = capsys.readouterr().err
    assert "debug lines are on" in err
    assert "HTTP Request: GET" in err  # httpx's one line per request stays, at INFO
    assert CLIENT_TOKEN not in err
    assert "client-token-of-a-person" not in err


async def test_statements_and_their_parameters_stay_out_of_debug_logs(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.setup("DEBUG")
    db = Database(database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE people (first_name VARCHAR(64) UNIQUE)"))
            await conn.execute(text("INSERT INTO people VALUES (:name)"), {"name": FIRST_NAME})
            selected = await conn.scalar(
                text("SELECT first_name FROM people WHERE first_name = :name"),
                {"name": FIRST_NAME},
            )
        assert selected == FIRST_NAME
        # A failing statement, logged with its traceback as the bot logs failures at DEBUG.
        with pytest.raises(IntegrityError) as failed:
            async with db.engine.begin() as conn:
                await conn.execute(text("INSERT INTO people VALUES (:name)"), {"name": FIRST_NAME})
        logging.getLogger("bot.test").debug("update failed", exc_info=failed.value)
    finally:
        await db.dispose()

    err = capsys.readouterr().err
    assert "update failed" in err and "IntegrityError" in err
    assert "test_logs.py" in err  # the frames are still there to debug with
    assert FIRST_NAME not in err
    # Nor does the error's own text carry the statement's parameters, wherever it is printed.
    assert "[SQL parameters hidden" in str(failed.value)


def test_secrets_are_replaced_in_tracebacks_too(capsys: pytest.CaptureFixture[str]) -> None:
    token = "123456789:AAEexampleexampleexampleexample12"
    logs.setup("DEBUG", [token])
    try:
        raise ValueError(f"invalid URL https://api.telegram.org/bot{token}/getMe")
    except ValueError:
        logging.getLogger("bot.test").exception("call failed for %s", token)
    err = capsys.readouterr().err
    assert "call failed for [redacted]" in err
    assert "ValueError: invalid URL https://api.telegram.org/bot[redacted]/getMe" in err
    assert token not in err


def test_debug_does_not_make_quiet_libraries_louder_than_the_level() -> None:
    logs.setup("WARNING")
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert not logging.getLogger("aiosqlite").isEnabledFor(logging.INFO)
