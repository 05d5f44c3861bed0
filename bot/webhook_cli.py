"""`passgram webhook set|delete|info`."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from typing import Any

from bot.config import Settings
from bot.webhook import WebhookError, delete_webhook, set_webhook, webhook_info


def add_parser(sub: Any) -> None:
    hook = sub.add_parser("webhook", help="register the webhook with Telegram, once for all")
    actions = hook.add_subparsers(dest="action", required=True)
    for name, what in (
        ("set", "point Telegram at WEBHOOK_URL (with WEBHOOK_SECRET)"),
        ("delete", "stop webhook delivery (polling works again)"),
    ):
        action = actions.add_parser(name, help=what)
        action.add_argument(
            "--drop-pending-updates", action="store_true", help="discard updates not yet sent"
        )
    actions.add_parser("info", help="Telegram's view of the webhook, as JSON")


def run(settings: Settings, args: argparse.Namespace, fail: Callable[[str], int]) -> int:
    if settings.telegram_bot_token is None:
        return fail("TELEGRAM_BOT_TOKEN: required; get one from @BotFather (see README)")
    try:
        if args.action == "set":
            asyncio.run(set_webhook(settings, drop_pending=args.drop_pending_updates))
            print(f"webhook set: {settings.webhook_url}")
        elif args.action == "delete":
            asyncio.run(delete_webhook(settings, drop_pending=args.drop_pending_updates))
            print("webhook deleted")
        else:
            print(json.dumps(asyncio.run(webhook_info(settings)), indent=2, ensure_ascii=False))
    except WebhookError as exc:
        return fail(str(exc))
    return 0
