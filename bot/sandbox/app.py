"""`passgram sandbox`: the whole product on one machine, with no accounts.

One process runs the Bot API stand-in, the real bot polling it, and the web page where a
person plays the Telegram users. The bot signs people in with the embedded backend, its codes
delivered into the page's development outbox, or with `--backend clerk-double` through the Clerk
backend against the loopback Clerk in `bot.sandbox.clerk`, whose codes land in the same outbox.
`Sandbox` is that assembly, usable from tests in their own event loop; `main` is the command
around it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import webbrowser
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast, get_args

from aiohttp import web

from bot import logs
from bot.config import ConfigError, Framework, Settings, kept_secret, load_settings
from bot.frameworks import runner_for
from bot.identifiers import Identifier, IdentifierKind
from bot.sandbox.botapi import BotApiServer, Event
from bot.sandbox.clerk import ClerkDouble
from bot.sandbox.web import Outbox, WebConsole
from bot.wiring import App, build_app
from storage.migrate import upgrade

DEFAULT_APP_NAME = "Acme"
Backend = Literal["local", "clerk-double"]
CLERK_CHANNEL = "clerk double"
CLERK_BAPI_DEFAULT = Settings.model_fields["clerk_bapi_url"].default
LOG_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR"})
# Two people to play from the first second: one to sign in by email, one by the contact
# button. Both numbers are valid mobiles (+1 201 555-01xx is also in Clerk's test range).
PREMADE_USERS = (
    {"first_name": "Alice", "last_name": "Archer", "username": "alice_archer",
     "phone_number": "+447400123456"},
    {"first_name": "Bob", "last_name": "Baker", "username": "bob_baker",
     "phone_number": "+12015550123"},
)  # fmt: skip


class CannotListen(Exception):
    """The page's address is taken or not allowed; the message says which and what to try."""


@dataclass(frozen=True)
class SandboxConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path | None = None  # None: a temporary directory, removed on stop
    app_name: str = DEFAULT_APP_NAME
    default_region: str | None = None
    backend: Backend = "local"  # clerk-double: the Clerk backend against a loopback Clerk
    framework: Framework = "aiogram"


class Sandbox:
    """The stand-in, the bot and the page, started and stopped together in the current loop."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.botapi = BotApiServer()
        self.outbox = Outbox()
        self.clerk = ClerkDouble() if config.backend == "clerk-double" else None
        self._clerk_codes_seen = 0
        # Subscribed before the page is: a code reaches the outbox before the bot's message
        # saying it was sent reaches the page.
        self.botapi.subscribe(self._collect_clerk_codes)
        self.console = WebConsole(
            self.botapi, self.outbox, app_name=config.app_name, host=config.host
        )
        self.data_dir = config.data_dir or Path()
        self.temporary = config.data_dir is None
        self.token = ""
        self.app: App | None = None
        self.port = config.port
        self._stack = contextlib.AsyncExitStack()

    @property
    def url(self) -> str:
        # Listening on every interface includes this machine's loopback: link to that.
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(  # noqa: S104
            self.config.host, self.config.host
        )
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"

    @property
    def database_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.data_dir / 'passgram.db'}"

    async def start(self) -> None:
        """Starts everything, or, if a part fails, stops the parts already running and raises."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        stack = self._stack
        if self.temporary:
            self.data_dir = Path(tempfile.mkdtemp(prefix="passgram-sandbox-"))
            stack.callback(shutil.rmtree, self.data_dir, ignore_errors=True)
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)

        await self.botapi.start()
        stack.push_async_callback(self.botapi.stop)
        name = self.config.app_name
        self.token = self.botapi.create_bot(
            username=_bot_username(name), first_name=f"{name} sign-in"
        )
        for user in PREMADE_USERS:
            self.console.add_user(**user)

        # The page's port first: if it is taken, that is the one thing to say, before the
        # bot has started and logged anything.
        web_runner = web.AppRunner(
            self.console.application(), access_log=None, shutdown_timeout=2.0
        )
        await web_runner.setup()
        stack.push_async_callback(web_runner.cleanup)
        # The event streams end first, or the web server would wait for them to time out.
        stack.callback(self.console.close)
        try:
            await web.TCPSite(web_runner, self.config.host, self.config.port).start()
        except OSError as exc:
            where = f"{self.config.host}:{self.config.port}"
            raise CannotListen(f"can't listen on {where} ({exc.strerror}); try --port") from exc
        self.port = web_runner.addresses[0][1]

        if self.clerk is not None:
            await self.clerk.start()
            stack.push_async_callback(self.clerk.stop)

        settings = self._settings()
        await asyncio.to_thread(upgrade, settings.database_url)
        app = self.app = await build_app(settings, dev_sink=self.outbox.add)
        stack.push_async_callback(app.close)
        runner = runner_for(app)
        await runner.start()
        stack.push_async_callback(runner.stop)

    async def stop(self) -> None:
        await self._stack.aclose()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _settings(self) -> Settings:
        # Every delivery and deployment setting is given explicitly, so a developer's own
        # environment (an SMTP_URL, a WEBHOOK_URL, Clerk keys) can't make the sandbox send
        # real mail, reach a real Clerk, or change how the bot runs.
        clerk = self.clerk
        return load_settings(
            _env_file=None,
            telegram_bot_token=self.token,
            telegram_api_url=self.botapi.url,
            database_url=self.database_url,
            # The same file `passgram` itself uses, so `PASSGRAM_DATA_DIR=<dir> passgram links
            # list` reads a kept sandbox database too.
            passgram_secret=kept_secret(self.data_dir)[0],
            passgram_data_dir=self.data_dir,
            auth_backend="local" if clerk is None else "clerk",
            clerk_mode="fapi",
            clerk_publishable_key=None,
            clerk_fapi_url=clerk.fapi_url if clerk else None,
            clerk_bapi_url=clerk.bapi_url if clerk else CLERK_BAPI_DEFAULT,
            clerk_secret_key=clerk.secret_key if clerk else None,
            clerk_sign_in_url=None,
            smtp_url=None,
            email_from=None,
            twilio_account_sid=None,
            twilio_auth_token=None,
            twilio_from=None,
            redis_url=None,
            metrics_listen=None,
            webhook_url=None,
            webhook_secret=None,
            default_region=self.config.default_region,
            app_name=self.config.app_name,
            # Nothing is texted for real here, so every country may be tried.
            sms_countries="*",
            dev_delivery=True,
            telegram_framework=self.config.framework,
        )

    def _collect_clerk_codes(self, event: Event) -> None:
        """Copies the codes the Clerk double sent into the outbox. Whenever it sends one, the
        bot then says so in the chat, so looking at each chat event is soon enough."""
        if self.clerk is None:
            return
        for sent in self.clerk.outbox[self._clerk_codes_seen :]:
            kind: IdentifierKind = "email" if "@" in sent.identifier else "phone"
            text = f"{sent.code} is your {self.config.app_name} verification code."
            self.outbox.add(Identifier(kind, sent.identifier), CLERK_CHANNEL, text)
        self._clerk_codes_seen = len(self.clerk.outbox)


def _bot_username(app_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", app_name.lower()).strip("_") or "passgram"
    return f"{slug[:24]}_bot" if slug[0].isalpha() else f"a_{slug[:22]}_bot"


# --- the command ------------------------------------------------------------------------------


def _framework(value: str | None) -> Framework:
    name = (value or "aiogram").strip().lower()
    for framework in get_args(Framework):
        if name == framework:
            return cast(Framework, framework)
    raise ConfigError("TELEGRAM_FRAMEWORK: aiogram or ptb")


def main(args: argparse.Namespace) -> int:
    level = os.environ.get("LOG_LEVEL", "WARNING").upper()
    try:
        config = SandboxConfig(
            host=args.host,
            port=args.port,
            data_dir=Path(args.data_dir) if args.data_dir else None,
            app_name=os.environ.get("APP_NAME") or DEFAULT_APP_NAME,
            default_region=os.environ.get("DEFAULT_REGION") or None,
            backend=args.backend,
            framework=_framework(os.environ.get("TELEGRAM_FRAMEWORK")),
        )
        logs.setup(level if level in LOG_LEVELS else "WARNING")
        return asyncio.run(_serve(config, open_browser=not args.no_browser))
    except ConfigError as exc:
        print(f"passgram: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 130


async def _serve(config: SandboxConfig, *, open_browser: bool) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main_task = asyncio.current_task()

    def on_signal() -> None:
        # A second Ctrl-C means "now": give up on stopping gracefully.
        if stop.is_set() and main_task is not None:
            main_task.cancel()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    sandbox = Sandbox(config)
    try:
        await sandbox.start()
    except (CannotListen, OSError) as exc:
        print(f"passgram: {exc}", file=sys.stderr)
        return 2
    try:
        print(f"Passgram sandbox for {config.app_name} is running.", flush=True)
        print(f"  Open  {sandbox.url}", flush=True)
        kept = "a temporary directory, removed on exit" if sandbox.temporary else "kept"
        print(f"  Data  {sandbox.data_dir} ({kept})", flush=True)
        auth = "the embedded backend" if config.backend == "local" else "Clerk (a loopback double)"
        print(f"  Auth  {auth}; codes appear in the page's outbox", flush=True)
        print("  Stop  Ctrl-C", flush=True)
        if config.host not in ("127.0.0.1", "localhost", "::1"):
            print(
                "  Note  listening beyond this machine: anyone who can reach it sees the codes",
                flush=True,
            )
        if open_browser:
            _open_browser(sandbox.url)
        await stop.wait()
    finally:
        await sandbox.stop()
    print("Sandbox stopped.", flush=True)
    return 0


def _open_browser(url: str) -> None:
    """Best effort, and never in the way: on a Linux box without a display, webbrowser would
    fall back to a text browser that takes over the terminal, so none is opened there."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return

    def attempt() -> None:
        with contextlib.suppress(Exception):
            webbrowser.open(url, new=2)

    # A thread of its own: some browsers make `open` wait, and the sandbox must not.
    threading.Thread(target=attempt, name="open-browser", daemon=True).start()
