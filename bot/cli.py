"""The `passgram` command: run, sandbox, db upgrade, links, gate, webhook, check."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from typing import Any

from bot import heap, logs, webhook_cli
from bot.config import ConfigError, Settings, load_settings
from bot.gate import cli as gate_cli


def _secrets(settings: Settings) -> list[str]:
    values = [
        settings.telegram_bot_token,
        settings.passgram_secret,
        settings.passgram_secret_old,
        settings.webhook_secret,
        settings.twilio_auth_token,
        settings.clerk_secret_key,
        settings.smtp_url,
    ]
    return [v.get_secret_value() for v in values if v is not None]


def _fail(message: str) -> int:
    print(f"passgram: {message}", file=sys.stderr)
    return 2


async def _run(settings: Settings) -> str | None:
    """Run until a signal or a fatal error; returns why it gave up, if it did."""
    from bot.frameworks import runner_for
    from bot.runtime import TokenRefused
    from bot.wiring import build_app

    app = await build_app(settings)
    runner = runner_for(app)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runner.start()
        heap.settle()
        waiter = asyncio.create_task(runner.wait())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        stopper.cancel()
    except TokenRefused:
        pass  # said in runner.failed
    finally:
        await runner.stop()
        await app.close()
    return runner.failed


def cmd_run(settings: Settings) -> int:
    if settings.telegram_bot_token is None:
        return _fail("TELEGRAM_BOT_TOKEN: required; get one from @BotFather (see README)")
    from bot.wiring import check_delivery
    from storage.migrate import NotReady, check_ready

    try:
        check_delivery(settings)
    except ConfigError as exc:
        return _fail(str(exc))
    logs.setup(settings.log_level, _secrets(settings))
    try:
        check_ready(settings.database_url)
    except NotReady as exc:
        return _fail(str(exc))
    failed = None
    try:
        with contextlib.suppress(KeyboardInterrupt):
            failed = asyncio.run(_run(settings))
    except ConfigError as exc:  # e.g. a secret that is not the database's
        return _fail(str(exc))
    return _fail(failed) if failed else 0


async def _links(settings: Settings, user_id: int | None) -> Any:
    from bot.secret import open_vault
    from storage.engine import Database
    from storage.repos import LinkRecord, Store

    db = Database(settings.database_url)
    try:
        store = Store(db.sessions, await open_vault(settings, db.sessions))

        def as_json(link: LinkRecord) -> dict[str, Any]:
            return {
                "telegram_user_id": link.telegram_user_id,
                "backend": link.backend,
                "auth_user_id": link.auth_user_id,
                "session_id": link.session_id,
                "identifier_kind": link.identifier_kind,
                "identifier": link.identifier_value,
                "signed_up": link.signed_up,
                "linked_at": link.linked_at.isoformat() if link.linked_at else None,
            }

        if user_id is None:
            return [as_json(link) for link in await store.list_links()]
        link = await store.get_link(user_id)
        return as_json(link) if link else None
    finally:
        await db.dispose()


def cmd_links(settings: Settings, args: argparse.Namespace) -> int:
    from storage.migrate import upgrade

    upgrade(settings.database_url)
    try:
        result = asyncio.run(
            _links(settings, args.telegram_user_id if args.action == "show" else None)
        )
    except ConfigError as exc:
        return _fail(str(exc))
    if args.action == "show" and result is None:
        print(json.dumps(None))
        return _fail(f"no link for Telegram user {args.telegram_user_id}")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def cmd_check(settings: Settings) -> int:
    from bot.secret import check as check_secret
    from bot.wiring import check_delivery

    for name, value in settings.masked().items():
        print(f"{name}={'' if value is None else value}")
    try:
        check_delivery(settings)
        asyncio.run(check_secret(settings))
    except ConfigError as exc:
        return _fail(str(exc))
    return 0


def cmd_secret_rotate(settings: Settings, batch_size: int) -> int:
    from bot.secret import rotate
    from storage.keyring import Progress

    def show(step: Progress) -> None:
        print(f"passgram: {step.table} {step.done}/{step.total}", file=sys.stderr, flush=True)

    if batch_size < 1:
        return _fail("--batch-size: at least 1")
    try:
        rotated = asyncio.run(rotate(settings, batch_size=batch_size, progress=show))
    except ConfigError as exc:
        return _fail(str(exc))
    if not rotated.needed:
        print("the database is already written with PASSGRAM_SECRET; nothing to do")
    else:
        again = " (an interrupted rotation, carried on)" if rotated.resumed else ""
        print(
            f"rotated{again}: {rotated.rewritten} rows rewritten; the database is written with "
            "PASSGRAM_SECRET now. Remove PASSGRAM_SECRET_OLD and restart the bot."
        )
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from bot.sandbox.app import main as sandbox_main

    return sandbox_main(args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="passgram", description="Sign in to your app by chatting.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the bot (long polling, or webhook when WEBHOOK_URL is set)")
    sb = sub.add_parser("sandbox", help="try the whole product locally, no accounts needed")
    sb.add_argument("--port", type=int, default=8080, help="web page port (default 8080)")
    sb.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sb.add_argument("--backend", choices=["local", "clerk-double"], default="local")
    sb.add_argument("--data-dir", default=None, help="keep the sandbox's database here")
    sb.add_argument("--no-browser", action="store_true", help="don't open a browser")
    db = sub.add_parser("db", help="database maintenance")
    db.add_argument("action", choices=["upgrade"], help="apply pending migrations")
    links = sub.add_parser("links", help="Telegram ↔ auth user links, as JSON")
    links_sub = links.add_subparsers(dest="action", required=True)
    show = links_sub.add_parser("show", help="one Telegram user's link")
    show.add_argument("telegram_user_id", type=int)
    links_sub.add_parser("list", help="every link")
    gate_cli.add_parser(sub)
    webhook_cli.add_parser(sub)
    sub.add_parser("check", help="validate settings and print them, secrets masked")
    secret = sub.add_parser("secret", help="PASSGRAM_SECRET maintenance")
    secret_sub = secret.add_subparsers(dest="action", required=True)
    rotate = secret_sub.add_parser(
        "rotate", help="move the data from PASSGRAM_SECRET_OLD to PASSGRAM_SECRET (resumable)"
    )
    rotate.add_argument("--batch-size", type=int, default=500, help="rows per transaction")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "sandbox":
        return cmd_sandbox(args)
    try:
        settings = load_settings()
    except ConfigError as exc:
        return _fail(str(exc))
    if args.command == "run":
        return cmd_run(settings)
    if args.command == "db":
        from storage.migrate import upgrade

        upgrade(settings.database_url)
        print("database is up to date")
        return 0
    if args.command == "links":
        return cmd_links(settings, args)
    if args.command == "gate":
        return gate_cli.run(settings.database_url, args, _fail)
    if args.command == "webhook":
        return webhook_cli.run(settings, args, _fail)
    if args.command == "secret":
        return cmd_secret_rotate(settings, args.batch_size)
    return cmd_check(settings)


if __name__ == "__main__":
    raise SystemExit(main())
