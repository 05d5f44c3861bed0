"""Registering the webhook with Telegram: once, by the operator, for every replica.

Replicas behind a load balancer only listen; one of them registering on each start would race
the others and reset Telegram's delivery for all. `passgram webhook set|delete|info` calls these,
and so do tests. Plain HTTP to the Bot API, so it serves either Telegram framework.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from bot.config import Settings

# The update kinds the bot handles (private chat, buttons, gated chats' join requests and
# members, the bot's own membership): registered with the webhook, asked for when polling.
ALLOWED_UPDATES = (
    "message",
    "callback_query",
    "chat_join_request",
    "chat_member",
    "my_chat_member",
)


class WebhookError(Exception):
    """Telegram refused, or could not be reached; the message is one line, with no secret."""


async def _call(settings: Settings, method: str, params: dict[str, Any]) -> Any:
    assert settings.telegram_bot_token is not None
    token = settings.telegram_bot_token.get_secret_value()
    url = f"{settings.telegram_api_url}/bot{token}/{method}"
    # aiohttp, not httpx: httpx logs every request's URL, and this URL holds the token.
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
            http.post(url, json=params) as response,
        ):
            status = response.status
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        # Never the exception's text: it may hold the request URL, and so the token.
        raise WebhookError(f"{method}: Telegram did not answer ({type(exc).__name__})") from None
    if not isinstance(body, dict) or not body.get("ok"):
        description = body.get("description") if isinstance(body, dict) else None
        raise WebhookError(f"{method}: {description or f'HTTP {status}'}")
    return body.get("result")


async def set_webhook(settings: Settings, *, drop_pending: bool = False) -> None:
    """Point Telegram at WEBHOOK_URL, with WEBHOOK_SECRET and the update kinds the bot uses."""
    if settings.webhook_url is None or settings.webhook_secret is None:
        raise WebhookError("WEBHOOK_URL and WEBHOOK_SECRET: required to set the webhook")
    await _call(
        settings,
        "setWebhook",
        {
            "url": settings.webhook_url,
            "secret_token": settings.webhook_secret.get_secret_value(),
            "allowed_updates": list(ALLOWED_UPDATES),
            "drop_pending_updates": drop_pending,
        },
    )


async def delete_webhook(settings: Settings, *, drop_pending: bool = False) -> None:
    await _call(settings, "deleteWebhook", {"drop_pending_updates": drop_pending})


async def webhook_info(settings: Settings) -> dict[str, Any]:
    """getWebhookInfo as Telegram gives it (it never includes the secret token)."""
    info = await _call(settings, "getWebhookInfo", {})
    return dict(info) if isinstance(info, dict) else {}
