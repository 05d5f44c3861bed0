"""The embedded backend's limits from LOCAL_* settings: read, refused in one line, enforced."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.auth.base import TooManyAttempts, WrongCode
from bot.auth.limits import LocalLimits, local_limits, setting_fields, setting_name
from bot.config import ConfigError, Settings, load_settings
from storage.engine import SessionFactory
from tests.auth.conftest import ADA, ME, Clock, RecordingChannel, make_backend, wrong
from tests.test_cli import passgram

ROOT = Path(__file__).parents[2]
SETTINGS = [setting_name(field) for field in setting_fields()]


@pytest.fixture(autouse=True)
def unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)


def test_unset_settings_give_the_built_in_limits() -> None:
    assert local_limits(load_settings(_env_file=None)) == LocalLimits()


def test_every_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    given = {
        "LOCAL_CODE_TTL_SECONDS": "300",
        "LOCAL_TRIES_PER_CODE": "3",
        "LOCAL_LOCKOUT_FAILURES": "6",
        "LOCAL_LOCKOUT_FAILURES_PER_IDENTIFIER": "50",
        "LOCAL_LOCKOUT_WINDOW_SECONDS": "1800",
        "LOCAL_RESEND_COOLDOWN_SECONDS": "0",
        "LOCAL_RESEND_COOLDOWN_MAX_SECONDS": "0",
        "LOCAL_SENDS_PER_IDENTIFIER_PER_USER": "3",
        "LOCAL_SENDS_PER_IDENTIFIER": "12",
        "LOCAL_SENDS_PER_USER": "6",
        "LOCAL_SENDS_TOTAL": "500",
        "LOCAL_SEND_WINDOW_SECONDS": "7200",
    }
    assert sorted(given) == sorted(SETTINGS)
    for name, value in given.items():
        monkeypatch.setenv(name, value)

    assert local_limits(load_settings(_env_file=None)) == LocalLimits(
        code_ttl=timedelta(minutes=5),
        tries_per_code=3,
        lockout_failures=6,
        lockout_failures_per_identifier=50,
        lockout_window=timedelta(minutes=30),
        resend_cooldown=timedelta(0),
        resend_cooldown_max=timedelta(0),
        sends_per_identifier_per_user=3,
        sends_per_identifier=12,
        sends_per_user=6,
        sends_total=500,
        send_window=timedelta(hours=2),
    )


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("LOCAL_TRIES_PER_CODE", "0", "LOCAL_TRIES_PER_CODE: Input should be greater than"),
        ("LOCAL_CODE_TTL_SECONDS", "ten", "LOCAL_CODE_TTL_SECONDS: Input should be a valid"),
        (
            "LOCAL_LOCKOUT_FAILURES_PER_IDENTIFIER",
            "101",
            "LOCAL_LOCKOUT_FAILURES_PER_IDENTIFIER: Input should be less than or equal to 100",
        ),
        (
            "LOCAL_LOCKOUT_FAILURES",
            "100",
            "LOCAL_LOCKOUT_FAILURES_PER_IDENTIFIER must be more than LOCAL_LOCKOUT_FAILURES",
        ),
        (
            "LOCAL_SENDS_PER_IDENTIFIER_PER_USER",
            "20",
            "LOCAL_SENDS_PER_IDENTIFIER must be more than LOCAL_SENDS_PER_IDENTIFIER_PER_USER",
        ),
        ("LOCAL_SENDS_TOTAL", "10", "LOCAL_SENDS_TOTAL must be more than LOCAL_SENDS_PER_USER"),
        (
            "LOCAL_RESEND_COOLDOWN_SECONDS",
            "600",
            "LOCAL_RESEND_COOLDOWN_MAX_SECONDS must be at least LOCAL_RESEND_COOLDOWN_SECONDS",
        ),
    ],
)
def test_a_bad_setting_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ConfigError) as refused:
        load_settings(_env_file=None)

    assert str(refused.value).startswith(says)
    assert "\n" not in str(refused.value)


def test_check_refuses_a_limit_out_of_line_in_one_line(tmp_path: Path) -> None:
    result = passgram("check", cwd=tmp_path, LOCAL_SENDS_TOTAL="5")

    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "passgram: LOCAL_SENDS_TOTAL must be more than LOCAL_SENDS_PER_USER"
    ]


def test_every_setting_is_documented() -> None:
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()

    for name in SETTINGS:
        assert name.lower() in Settings.model_fields
        assert f"\n{name}=" in example, name
        assert f"`{name}`" in readme, name


async def test_the_backend_enforces_what_the_settings_say(
    monkeypatch: pytest.MonkeyPatch,
    sessions: SessionFactory,
    clock: Clock,
    email: RecordingChannel,
) -> None:
    monkeypatch.setenv("LOCAL_TRIES_PER_CODE", "2")
    limits = local_limits(load_settings(_env_file=None))
    backend = make_backend(sessions, clock, email, limits=limits)
    challenge = await backend.start(ADA, ME)
    guess = wrong(email.last_code(ADA))

    with pytest.raises(WrongCode) as first:
        await backend.verify(challenge, guess, ME)
    with pytest.raises(TooManyAttempts) as second:
        await backend.verify(challenge, guess, ME)

    assert (first.value.tries_left, second.value.retry_at) == (1, None)
