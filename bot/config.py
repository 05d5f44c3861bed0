"""Settings from the environment and `.env` (pydantic-settings).

Every name here is a contract with operators: `.env.example` and the README list them all.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Literal

import phonenumbers
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.auth.clerk.keys import InvalidPublishableKey, fapi_host
from bot.auth.delivery import email_sender, smtp_server
from bot.auth.limits import InvalidLimits, LocalLimits, local_limits, setting_name
from bot.coordination.redis import redact_redis_url
from bot.identifiers import DEFAULT_SMS_COUNTRIES, SmsRegions
from bot.limits_out import MINUTE, SECOND, Rate, Rates
from storage.engine import redact_url, validate_url

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{20,}$")
_WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
SECRET_FILE = ".passgram-secret"  # noqa: S105 - a file name, not a secret
# 32 characters: what `secrets.token_urlsafe(24)` or `openssl rand -hex 16` give, 128 bits or more.
MIN_SECRET_LENGTH = 32
_ADVICE = (
    f"use at least {MIN_SECRET_LENGTH} random characters, "
    'e.g. from python -c "import secrets; print(secrets.token_urlsafe(32))"'
)

_LOCAL = LocalLimits()
_RATES = Rates()
# The window a bare count in TELEGRAM_RATE_* is per.
_RATE_WINDOWS = {
    "telegram_rate_total": SECOND,
    "telegram_rate_private": SECOND,
    "telegram_rate_group": MINUTE,
}


def _secs(duration: timedelta) -> int:
    return int(duration.total_seconds())


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line naming it."""


Framework = Literal["aiogram", "ptb"]  # aiogram, or python-telegram-bot


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    telegram_bot_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org"
    # Which Telegram framework runs the bot (`run`, `sandbox`): both carry the same handlers.
    telegram_framework: Framework = "aiogram"
    # Outgoing calls under Telegram's limits (bot.limits_out): "N" or "N/SECONDS".
    telegram_rate_total: str = str(_RATES.total)
    telegram_rate_private: str = str(_RATES.private)
    telegram_rate_group: str = str(_RATES.group)
    database_url: str = "sqlite+aiosqlite:///passgram.db"
    # Connections each replica keeps to a server database (PostgreSQL), and how many more it may
    # open at a peak; SQLite ignores both.
    database_pool_size: int = Field(default=10, ge=1, le=1000)
    database_max_overflow: int = Field(default=10, ge=0, le=1000)
    # Shared state for several replicas (bot.coordination); without it, all of that is in-process.
    redis_url: str | None = None
    # Seconds a replica that dies while handling someone's update (or sending into their chat)
    # keeps their next one waiting.
    redis_lock_lease: float = Field(default=10.0, ge=0.1, le=300)
    passgram_secret: SecretStr | None = None
    # Read-only during a change of secret (`passgram secret rotate`). Set but empty means the
    # empty secret, so a database written with one can be moved off it.
    passgram_secret_old: SecretStr | None = None
    passgram_data_dir: Path = Path()
    auth_backend: Literal["local", "clerk"] = "local"
    smtp_url: SecretStr | None = None
    email_from: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from: str | None = None
    twilio_api_url: str = "https://api.twilio.com"
    clerk_publishable_key: str | None = None
    clerk_secret_key: SecretStr | None = None
    clerk_mode: Literal["fapi", "bapi"] = "fapi"
    clerk_fapi_url: str | None = None
    clerk_bapi_url: str = "https://api.clerk.com"
    clerk_sign_in_url: str | None = None
    # Clerk's Frontend API limits per IP; every Telegram user shares the bot's, so calls are paced.
    clerk_pace_sign_ins: int = Field(default=5, ge=1, le=1000)
    clerk_pace_sign_ups: int = Field(default=5, ge=1, le=1000)
    clerk_pace_attempts: int = Field(default=3, ge=1, le=1000)
    clerk_pace_window: float = Field(default=10.0, gt=0, le=3600)
    default_region: str | None = None
    # Where codes may be texted (SMS pumping defence): ISO codes, "*", "+882"-style networks.
    sms_countries: str = Field(default=DEFAULT_SMS_COUNTRIES, validate_default=True)
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_listen: str = "0.0.0.0:8080"
    # Where polling mode serves GET /metrics (webhook mode serves it on WEBHOOK_LISTEN); off when
    # unset.
    metrics_listen: str | None = None
    app_name: str = Field(default="Passgram", min_length=1, max_length=64)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    dev_delivery: bool = False
    # The local backend's limits (bot.auth.limits.LocalLimits); durations in whole seconds.
    local_code_ttl_seconds: int = Field(default=_secs(_LOCAL.code_ttl), ge=60, le=86_400)
    local_tries_per_code: int = Field(default=_LOCAL.tries_per_code, ge=1, le=100)
    local_lockout_failures: int = Field(default=_LOCAL.lockout_failures, ge=1, le=100)
    # NIST SP 800-63B allows at most 100 consecutive failures.
    local_lockout_failures_per_identifier: int = Field(
        default=_LOCAL.lockout_failures_per_identifier, ge=2, le=100
    )
    local_lockout_window_seconds: int = Field(
        default=_secs(_LOCAL.lockout_window), ge=60, le=604_800
    )
    local_resend_cooldown_seconds: int = Field(
        default=_secs(_LOCAL.resend_cooldown), ge=0, le=86_400
    )
    local_resend_cooldown_max_seconds: int = Field(
        default=_secs(_LOCAL.resend_cooldown_max), ge=0, le=86_400
    )
    local_sends_per_identifier_per_user: int = Field(
        default=_LOCAL.sends_per_identifier_per_user, ge=1, le=10_000
    )
    local_sends_per_identifier: int = Field(default=_LOCAL.sends_per_identifier, ge=2, le=10_000)
    local_sends_per_user: int = Field(default=_LOCAL.sends_per_user, ge=1, le=1_000_000)
    local_sends_total: int = Field(default=_LOCAL.sends_total, ge=2, le=10_000_000)
    local_send_window_seconds: int = Field(default=_secs(_LOCAL.send_window), ge=60, le=604_800)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v

    @field_validator(
        "redis_url",
        "email_from",
        "twilio_account_sid",
        "twilio_from",
        "clerk_publishable_key",
        "clerk_fapi_url",
        "clerk_sign_in_url",
        "default_region",
        "webhook_url",
        "metrics_listen",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("telegram_bot_token")
    @classmethod
    def _token(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not _TOKEN.match(v.get_secret_value()):
            raise ValueError("expected the form 123456789:AAE… that BotFather gives")
        return v

    @field_validator("passgram_secret")
    @classmethod
    def _secret(cls, v: SecretStr | None) -> SecretStr | None:
        weakness = secret_weakness(v.get_secret_value()) if v is not None else None
        if weakness is not None:
            raise ValueError(f"{weakness}; {_ADVICE}")
        return v

    @field_validator("database_url")
    @classmethod
    def _database(cls, v: str) -> str:
        validate_url(v)
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^(rediss?|unix)://\S+$", v):
            raise ValueError("expected redis://host:6379/0, rediss://… (TLS) or unix://…")
        return v

    @field_validator("default_region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        if v is None:
            return None
        region = v.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {v!r}; use an ISO country code such as US or GB")
        return region

    @field_validator("sms_countries", mode="before")
    @classmethod
    def _sms_countries(cls, v: object) -> object:
        if not isinstance(v, str):
            return v
        return str(SmsRegions.parse(v if v.strip() else DEFAULT_SMS_COUNTRIES))

    @field_validator(
        "telegram_rate_total", "telegram_rate_private", "telegram_rate_group", mode="before"
    )
    @classmethod
    def _rate(cls, v: object, info: ValidationInfo) -> object:
        if isinstance(v, int) and not isinstance(v, bool):
            v = str(v)
        if not isinstance(v, str) or info.field_name is None:
            return v
        if not v.strip():
            return cls.model_fields[info.field_name].default
        return str(Rate.parse(v, _RATE_WINDOWS[info.field_name]))

    @field_validator("telegram_api_url", "twilio_api_url", "clerk_bapi_url", "clerk_fapi_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("expected an http(s):// URL")
        return v.rstrip("/") if v else v

    @field_validator("webhook_listen", "metrics_listen")
    @classmethod
    def _listen(cls, v: str | None) -> str | None:
        if v is None:
            return None
        host, _, port = v.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected HOST:PORT, e.g. 0.0.0.0:8080")
        return v

    @model_validator(mode="after")
    def _together(self) -> Settings:
        if self.webhook_url:
            if not self.webhook_url.startswith("https://") and not self.webhook_url.startswith(
                "http://127."
            ):
                raise ValueError("WEBHOOK_URL must be an https:// URL")
            secret = self.webhook_secret.get_secret_value() if self.webhook_secret else ""
            if not _WEBHOOK_SECRET.match(secret):
                raise ValueError(
                    "WEBHOOK_SECRET is required with WEBHOOK_URL: 1-256 of A-Z a-z 0-9 _ -"
                )
        if self.smtp_url and not self.email_from:
            raise ValueError("EMAIL_FROM is required with SMTP_URL")
        # The parsers the email channel uses, so what passes here is what it can send with.
        if self.smtp_url:
            smtp_server(self.smtp_url.get_secret_value())
        if self.email_from:
            email_sender(self.email_from)
        twilio = (self.twilio_account_sid, self.twilio_auth_token, self.twilio_from)
        if any(twilio) and not all(twilio):
            raise ValueError(
                "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM are needed together"
            )
        if self.clerk_publishable_key:
            try:
                fapi_host(self.clerk_publishable_key)
            except InvalidPublishableKey as exc:
                raise ValueError(f"CLERK_PUBLISHABLE_KEY: {exc}") from None
        if self.auth_backend == "clerk":
            if self.clerk_mode == "fapi" and not (
                self.clerk_publishable_key or self.clerk_fapi_url
            ):
                raise ValueError("CLERK_PUBLISHABLE_KEY is required with AUTH_BACKEND=clerk")
            if self.clerk_mode == "bapi" and not self.clerk_secret_key:
                raise ValueError("CLERK_SECRET_KEY is required with CLERK_MODE=bapi")
        try:
            local_limits(self)
        except InvalidLimits as exc:
            raise ValueError(exc.describe(setting_name)) from None
        return self

    @property
    def email_enabled(self) -> bool:
        return self.smtp_url is not None

    @property
    def sms_enabled(self) -> bool:
        return self.twilio_account_sid is not None

    @property
    def sms_regions(self) -> SmsRegions:
        return SmsRegions.parse(self.sms_countries)

    def secret(self) -> str:
        """PASSGRAM_SECRET, or one generated once into the data dir (with a warning)."""
        if self.passgram_secret is not None:
            return self.passgram_secret.get_secret_value()
        value, created = kept_secret(self.passgram_data_dir)
        if created:
            log.warning(
                "PASSGRAM_SECRET is not set: generated one into %s. Keep that file (or set the "
                "variable); losing it makes stored personal data and pending codes unreadable.",
                self.passgram_data_dir / SECRET_FILE,
            )
        return value

    def masked(self) -> dict[str, str | None]:
        """Every setting, printable: secrets shown only as whether they are set."""
        out: dict[str, str | None] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                out[name.upper()] = "********" if value.get_secret_value() else None
            elif value is None:
                out[name.upper()] = None
            else:
                out[name.upper()] = str(value)
        if self.database_url:
            out["DATABASE_URL"] = redact_url(self.database_url)
        if self.redis_url:
            out["REDIS_URL"] = redact_redis_url(self.redis_url)
        return out


def secret_weakness(value: str) -> str | None:
    """Why `value` can't be PASSGRAM_SECRET, never quoting it; None when it can."""
    if not value.strip():
        return "empty"
    if len(value) < MIN_SECRET_LENGTH:
        return f"only {len(value)} characters long"
    # A long run of one or two characters is as guessable as a short secret.
    if len(set(value)) < 8:
        return "made of too few different characters"
    return None


def kept_secret(data_dir: Path) -> tuple[str, bool]:
    """The secret kept in `data_dir`, made (readable by the owner only) on first use; and
    whether it was made just now.

    It appears whole or not at all: written to a temporary file, flushed to disk, then linked
    into place, so a full disk or a crash can't leave an empty or partial secret behind, and two
    processes starting at once end up with the same one.
    """
    path = data_dir / SECRET_FILE
    if path.exists():
        return _read_kept(path), False
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    fd, tmp = tempfile.mkstemp(prefix=SECRET_FILE + ".", suffix=".tmp", dir=data_dir)
    try:
        with os.fdopen(fd, "w") as file:  # mkstemp made it readable by the owner only
            file.write(value + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(tmp, path)  # fails, instead of replacing, if another process made one
        except FileExistsError:
            return _read_kept(path), False
        except OSError:  # a filesystem without hard links: a rename is atomic too
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _sync_dir(data_dir)
    return value, True


def _read_kept(path: Path) -> str:
    value = path.read_text().strip()
    weakness = secret_weakness(value)
    if weakness is not None:
        raise ConfigError(
            f"PASSGRAM_SECRET: not set, and the secret kept in {path} is {weakness}; restore "
            "that file from a backup, or delete it if nothing was written with it yet"
        )
    return value


def _sync_dir(path: Path) -> None:
    """Make a new directory entry survive a power cut (POSIX; elsewhere there is no need)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_settings(**overrides: object) -> Settings:
    """Settings, or ConfigError with one line: the setting's name and what is wrong."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "_".join(str(p) for p in err["loc"]).upper()
        msg = err["msg"].removeprefix("Value error, ")
        where = f"{name}: " if name else ""
        raise ConfigError(f"{where}{msg}") from None
