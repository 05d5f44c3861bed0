"""`passgram gate …` as an operator runs it: subprocesses on a migrated SQLite file, beside a gate
that keeps running on the same database."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.gate.actions import Approve, Decline
from storage.migrate import upgrade
from tests.gate.conftest import ADA, CHANNEL, CY, GROUP, World, email
from tests.test_cli import passgram


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[World]:
    """A migrated database file with a group and a channel, and a gate running on it."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    await asyncio.to_thread(upgrade, url)
    world = World(url)
    await world.gate.on_bot_status(
        GROUP, "Acme Club", "supergroup", ["can_invite_users", "can_restrict_members"]
    )
    await world.gate.on_bot_status(
        CHANNEL, "Acme News", "channel", ["can_invite_users", "can_restrict_members"]
    )
    try:
        yield world
    finally:
        await world.close()


async def gate(world: World, *args: str) -> tuple[int, str, str]:
    folder = Path(world.url.removeprefix("sqlite+aiosqlite:///")).parent
    result = await asyncio.to_thread(passgram, "gate", *args, cwd=folder, DATABASE_URL=world.url)
    return result.returncode, result.stdout, result.stderr


async def test_show_lists_the_settings(running: World) -> None:
    code, out, err = await gate(running, "show", str(GROUP))
    assert code == 0, err
    shown = json.loads(out)
    assert shown == shown | {
        "chat_id": GROUP,
        "title": "Acme Club",
        "kind": "supergroup",
        "enabled": False,
        "mode": "join_requests",
        "policy": "any",
        "accepts": "anyone who signs in",
        "timeout": 600,
        "require_live_link": True,
        "missing_rights": ["can_delete_messages"],
        "waiting": 0,
    }


async def test_set_changes_what_the_running_gate_decides(running: World) -> None:
    await running.link(CY, email("cy@gmail.com"))
    code, out, err = await gate(
        running,
        "set",
        str(GROUP),
        "--enabled",
        "on",
        "--policy",
        "email-domain:Example.com",
        "--timeout",
        "900",
        "--live-link",
        "off",
    )
    assert code == 0, err
    shown = json.loads(out)
    assert (shown["enabled"], shown["policy"], shown["timeout"], shown["require_live_link"]) == (
        True,
        "email-domain:example.com",
        900,
        False,
    )
    assert shown["accepts"] == "addresses at example.com"
    assert json.loads((await gate(running, "show", str(GROUP)))[1]) == shown
    # The gate that was running all along decides by the new settings.
    assert (await running.gate.on_join_request(GROUP, CY, CY.id))[0] == Decline(GROUP, CY.id)

    code, out, err = await gate(running, "set", str(GROUP), "--mode", "members")
    assert code == 0, err
    assert json.loads(out)["mode"] == "members"
    assert json.loads(out)["policy"] == "email-domain:example.com"  # the rest stays


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--policy", "everyone"], "passgram: --policy: unknown policy 'everyone'"),
        (["--policy", "phone-country:XX"], "passgram: --policy: unknown country 'XX'"),
        (["--timeout", "5"], "passgram: --timeout: timeout is seconds, from 30 to 86400"),
        (["--timeout", "soon"], "passgram: --timeout: timeout is seconds"),
    ],
)
async def test_set_refuses_bad_values_in_one_line(
    running: World, args: list[str], says: str
) -> None:
    before = await running.store.get_chat(GROUP)
    code, out, err = await gate(running, "set", str(GROUP), "--enabled", "on", *args)
    assert code != 0 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith(says), err
    assert await running.store.get_chat(GROUP) == before


async def test_a_channel_cannot_be_set_to_members_mode(running: World) -> None:
    code, _, err = await gate(running, "set", str(CHANNEL), "--mode", "members")
    assert code != 0
    assert err.strip() == "passgram: --mode: channels can't restrict members; use join_requests"


async def test_an_unknown_chat_is_named(running: World) -> None:
    for args in (["show", "-100777"], ["set", "-100777", "--enabled", "on"], ["log", "-100777"]):
        code, _, err = await gate(running, *args)
        assert code != 0
        assert err.startswith("passgram: no chat -100777: the bot learns a chat when"), err


async def test_list(running: World) -> None:
    code, out, err = await gate(running, "list")
    assert code == 0, err
    assert [(c["chat_id"], c["kind"]) for c in json.loads(out)] == [
        (CHANNEL, "channel"),
        (GROUP, "supergroup"),
    ]


async def test_log_as_json_and_csv(running: World) -> None:
    await gate(running, "set", str(GROUP), "--enabled", "on")
    await running.link(ADA, email("ada@example.com"))
    assert await running.gate.on_join_request(GROUP, ADA, ADA.id) == [Approve(GROUP, ADA.id)]

    code, out, err = await gate(running, "log", str(GROUP))
    assert code == 0, err
    entries = json.loads(out)
    assert [(e["user_id"], e["action"], e["rule"]) for e in entries] == [
        (None, "settings", ""),
        (ADA.id, "approved", "any"),
    ]
    assert entries[0]["detail"] == {"enabled": True, "via": "cli"}

    code, out, err = await gate(running, "log", str(GROUP), "--csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == [
        "id",
        "at",
        "chat_id",
        "user_id",
        "action",
        "rule",
        "actor_id",
        "detail",
    ]
    assert [(r["user_id"], r["action"]) for r in rows] == [
        ("", "settings"),
        (str(ADA.id), "approved"),
    ]
    assert rows[1]["chat_id"] == str(GROUP) and rows[1]["at"].startswith("2026-11-30T12:00")
    assert "ada@" not in out
