"""Builds the application from settings: database, vault, delivery, backend, conversation."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

from bot.auth.base import AuthBackend
from bot.auth.clerk import ClerkBackend
from bot.auth.clerk.pace import InMemoryPacer, PacerFactory
from bot.auth.delivery import DeliveryChannel, LogChannel, SmtpChannel, TwilioChannel
from bot.auth.limits import local_limits
from bot.auth.local import LocalBackend
from bot.config import ConfigError, Settings
from bot.conversation.commands import Commands
from bot.conversation.flow import Conversation
from bot.conversation.service import ConversationService
from bot.coordination.setup import Coordination, coordination_for
from bot.gate.deeplink import DeepLinks
from bot.gate.service import Gate
from bot.identifiers import Identifier
from bot.jobs import Job
from bot.metered import MeteredBackend, MeteredChannel
from bot.secret import open_vault
from storage.engine import Database, SessionFactory
from storage.gate import GateStore
from storage.repos import Store
from storage.vault import Vault

log = logging.getLogger(__name__)

OutboxSink = Callable[[Identifier, str, str], None]
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class App:
    settings: Settings
    db: Database
    store: Store
    backend: AuthBackend
    service: ConversationService
    http: httpx.AsyncClient
    gate: Gate
    coordination: Coordination
    jobs: list[Job] = field(default_factory=list)

    async def close(self) -> None:
        aclose = getattr(self.backend, "aclose", None)  # backends holding connections have one
        if aclose is not None:
            await aclose()
        await self.http.aclose()
        await self.coordination.aclose()
        await self.db.dispose()


def delivery_channels(
    settings: Settings, http: httpx.AsyncClient, dev_sink: OutboxSink | None = None
) -> list[DeliveryChannel]:
    channels: list[DeliveryChannel] = []
    if settings.smtp_url and settings.email_from:
        channels.append(SmtpChannel(settings.smtp_url.get_secret_value(), settings.email_from))
    if settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from:
        channels.append(
            TwilioChannel(
                settings.twilio_account_sid,
                settings.twilio_auth_token.get_secret_value(),
                settings.twilio_from,
                api_url=settings.twilio_api_url,
                client=http,
            )
        )
    if not channels or dev_sink is not None:
        channels.append(LogChannel(dev_sink))
    return [MeteredChannel(channel) for channel in channels]


def check_delivery(settings: Settings, *, sandbox: bool = False) -> None:
    """Codes in the log are for development only: `run` needs a channel or DEV_DELIVERY=1."""
    if settings.auth_backend != "local" or sandbox or settings.dev_delivery:
        return
    if not (settings.email_enabled or settings.sms_enabled):
        raise ConfigError(
            "SMTP_URL or TWILIO_ACCOUNT_SID: no way to deliver codes; configure one, "
            "or set DEV_DELIVERY=1 to print codes to the log (development only)"
        )


def build_backend(
    settings: Settings,
    sessions: SessionFactory,
    vault: Vault,
    http: httpx.AsyncClient,
    dev_sink: OutboxSink | None = None,
    clock: Clock = utcnow,
    pacer_factory: PacerFactory = InMemoryPacer,
) -> AuthBackend:
    if settings.auth_backend == "clerk":
        return ClerkBackend.from_config(
            settings.clerk_mode,
            publishable_key=settings.clerk_publishable_key,
            secret_key=settings.clerk_secret_key.get_secret_value()
            if settings.clerk_secret_key
            else None,
            fapi_url=settings.clerk_fapi_url,
            bapi_url=settings.clerk_bapi_url,
            sign_in_url=settings.clerk_sign_in_url,
            http=http,
            sign_in_create_limit=settings.clerk_pace_sign_ins,
            sign_up_create_limit=settings.clerk_pace_sign_ups,
            attempt_limit=settings.clerk_pace_attempts,
            pace_window=settings.clerk_pace_window,
            pacer_factory=pacer_factory,
            clock=clock,
        )
    channels = delivery_channels(settings, http, dev_sink)
    if any(c.name == "log" for c in channels):
        log.warning("DEVELOPMENT DELIVERY: one-time codes are written to this log")
    return LocalBackend(
        sessions,
        vault,
        channels,
        app_name=settings.app_name,
        limits=local_limits(settings),
        clock=clock,
    )


async def build_app(
    settings: Settings,
    *,
    dev_sink: OutboxSink | None = None,
    clock: Clock = utcnow,
    commands: Commands | None = None,
) -> App:
    db = Database(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    try:
        vault = await open_vault(settings, db.sessions)
    except BaseException:
        await db.dispose()
        raise
    http = httpx.AsyncClient(timeout=httpx.Timeout(15.0))
    coordination = coordination_for(settings)
    backend = build_backend(
        settings, db.sessions, vault, http, dev_sink, clock, coordination.pacer_factory
    )
    gate_store = GateStore(db.sessions)
    store = Store(db.sessions, vault, after_erase=db.scrub, erase_also=[gate_store.erasure])
    # The bot's username, for deep links, is learnt from Telegram when the bot starts.
    gate = Gate(
        gate_store,
        store,
        clock,
        deeplinks=DeepLinks(vault, bot_username=""),
        app=settings.app_name,
        commands=commands,
    )
    conversation = Conversation(
        MeteredBackend(backend),
        app_name=settings.app_name,
        default_region=settings.default_region,
        clock=clock,
        sms_regions=settings.sms_regions,
        entries=gate,
        admissions=gate,
        commands=commands,
    )
    service = ConversationService(conversation, store, coordination.locks)
    return App(
        settings,
        db,
        store,
        backend,
        service,
        http,
        gate,
        coordination,
        housekeeping(store, backend, clock),
    )


HANDLED_KEPT = timedelta(hours=48)  # Telegram redelivers an update for 24 hours at most


def housekeeping(store: Store, backend: AuthBackend, clock: Clock) -> list[Job]:
    async def forget_handled() -> int:
        return await store.forget_handled(clock() - HANDLED_KEPT)

    jobs = [Job("forget handled updates", 3600.0, forget_handled)]
    if isinstance(backend, ClerkBackend):
        jobs.append(Job("sweep abandoned Clerk sign-ups", 3600.0, backend.sweep_abandoned))
    return jobs
