"""`passgram gate show|set|list|log`: gated chats for operators, straight from the database, so
they work while the bot runs (it reads the settings at each decision)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
from collections.abc import Callable
from typing import Any

from bot.gate.model import (
    MODES,
    Policy,
    PolicyError,
    missing_rights,
    parse_mode,
    parse_timeout,
)
from storage.gate import LOG_FIELDS, ChatRecord, GateStore, LogEntry


def add_parser(commands: Any) -> None:
    """The `gate` command and its subcommands, on the `passgram` parser's subparsers."""
    gate = commands.add_parser("gate", help="gated groups and channels: settings and decisions")
    actions = gate.add_subparsers(dest="action", required=True)
    show = actions.add_parser("show", help="one chat's gate settings, as JSON")
    show.add_argument("chat_id", type=int)
    change = actions.add_parser("set", help="change a chat's gate settings (each flag optional)")
    change.add_argument("chat_id", type=int)
    change.add_argument("--enabled", choices=["on", "off"], help="turn the gate on or off")
    change.add_argument("--mode", choices=MODES, help="decide join requests, or restrict newcomers")
    change.add_argument(
        "--policy", help="any | email-domain:DOMAIN[,DOMAIN…] | phone-country:CC[,CC…]"
    )
    change.add_argument("--timeout", help="seconds someone has to sign in (30 to 86400)")
    change.add_argument(
        "--live-link", choices=["on", "off"], help="whether signing out removes members"
    )
    actions.add_parser("list", help="every chat the bot knows, as JSON")
    show_log = actions.add_parser("log", help="a chat's decision log, as JSON or CSV")
    show_log.add_argument("chat_id", type=int)
    show_log.add_argument("--csv", action="store_true", help="CSV with a header row")


def run(database_url: str, args: argparse.Namespace, fail: Callable[[str], int]) -> int:
    """Carry out `args`; `fail` prints a one-line refusal and gives the exit status."""
    from storage.migrate import NotReady, check_ready

    try:
        check_ready(database_url)
    except NotReady as exc:
        return fail(str(exc))
    changes: dict[str, Any] = {}
    if args.action == "set":
        try:
            changes = _changes(args)
        except ValueError as exc:
            return fail(str(exc))
    try:
        output = asyncio.run(_run(database_url, args, changes))
    except _Refused as exc:
        return fail(str(exc))
    print(output)
    return 0


class _Refused(Exception):
    pass


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if args.enabled is not None:
        changes["enabled"] = args.enabled == "on"
    if args.mode is not None:
        changes["mode"] = parse_mode(args.mode)
    if args.policy is not None:
        try:
            changes["policy"] = str(Policy.parse(args.policy))
        except PolicyError as exc:
            raise ValueError(f"--policy: {exc}") from None
    if args.timeout is not None:
        try:
            changes["timeout"] = parse_timeout(args.timeout)
        except ValueError as exc:
            raise ValueError(f"--timeout: {exc}") from None
    if args.live_link is not None:
        changes["require_live_link"] = args.live_link == "on"
    return changes


async def _run(database_url: str, args: argparse.Namespace, changes: dict[str, Any]) -> str:
    from storage.engine import Database

    db = Database(database_url)
    try:
        store = GateStore(db.sessions)
        if args.action == "list":
            return _json([await _view(store, chat) for chat in await store.list_chats()])
        chat = await store.get_chat(args.chat_id)
        if chat is None:
            raise _Refused(
                f"no chat {args.chat_id}: the bot learns a chat when it is made an admin there"
            )
        if args.action == "log":
            entries = await store.read_log(args.chat_id)
            return _csv(entries) if args.csv else _json([_entry(e) for e in entries])
        if args.action == "set" and changes:
            if changes.get("mode") == "members" and chat.kind == "channel":
                raise _Refused("--mode: channels can't restrict members; use join_requests")
            detail = {**changes, "via": "cli"}
            updated = await store.update_chat(
                args.chat_id,
                log=[LogEntry(args.chat_id, None, "settings", detail=detail)],
                **changes,
            )
            assert updated is not None
            chat = updated
        return _json(await _view(store, chat))
    finally:
        await db.dispose()


async def _view(store: GateStore, chat: ChatRecord) -> dict[str, Any]:
    try:
        accepts = Policy.parse(chat.policy).describe()
    except PolicyError:
        accepts = None
    return {
        "chat_id": chat.chat_id,
        "title": chat.title,
        "kind": chat.kind,
        "enabled": chat.enabled,
        "mode": chat.mode,
        "policy": chat.policy,
        "accepts": accepts,
        "timeout": chat.timeout,
        "require_live_link": chat.require_live_link,
        "bot_rights": list(chat.bot_rights) if chat.bot_rights is not None else None,
        "missing_rights": (
            list(missing_rights(chat.kind, chat.bot_rights))
            if chat.bot_rights is not None
            else None
        ),
        "waiting": await store.count_pending(chat.chat_id),
        "updated_at": chat.updated_at.isoformat() if chat.updated_at else None,
    }


def _entry(entry: LogEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at.isoformat() if entry.at else None,
        "chat_id": entry.chat_id,
        "user_id": entry.user_id,
        "action": entry.action,
        "rule": entry.rule,
        "actor_id": entry.actor_id,
        "detail": entry.detail,
    }


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _csv(entries: list[LogEntry]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=LOG_FIELDS, lineterminator="\n")
    writer.writeheader()
    for entry in entries:
        writer.writerow(entry.row())
    return out.getvalue().rstrip("\n")
