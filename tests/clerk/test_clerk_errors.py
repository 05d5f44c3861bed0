"""Each Clerk error code, and what the conversation is told for it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.auth.base import (
    BackendUnavailable,
    CodeExpired,
    InvalidIdentifier,
    RateLimited,
    Refused,
    TooManyAttempts,
    WrongCode,
)
from bot.auth.clerk import BLOCKED, NOT_FOUND, REQUIREMENTS, SIGN_UP_CLOSED, TAKEN
from bot.auth.clerk.errors import ClerkAPIError, parse_retry_after, to_auth_error
from bot.identifiers import Identifier, Reason

Line = Callable[[], logging.LogRecord]
NOW = datetime(2026, 5, 12, 12, 0, tzinfo=UTC)
EMAIL = Identifier("email", "jane@example.com")
PHONE = Identifier("phone", "+442071838750")
TRACE = "0123456789abcdef0123456789abcdef"


def clerk_error(
    status: int,
    code: str,
    *,
    retry_after: str | None = None,
    meta: dict[str, Any] | None = None,
) -> ClerkAPIError:
    body = {
        "errors": [
            {
                "message": "short",
                # Clerk's messages may quote the identifier; they must never reach the log.
                "long_message": f"about {EMAIL.value}",
                "code": code,
                "meta": meta or {},
            }
        ],
        "clerk_trace_id": TRACE,
    }
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return ClerkAPIError.from_response("sign_in.create", status, body, headers)


def mapped(err: ClerkAPIError, identifier: Identifier = EMAIL, **kw: Any) -> Any:
    return to_auth_error(err, identifier=identifier, now=NOW, **kw)


@pytest.fixture
def operator_line(caplog: pytest.LogCaptureFixture) -> Callable[[], logging.LogRecord]:
    """The one line a mapping logs: trace id and masked identifier, nothing personal."""
    caplog.set_level(logging.DEBUG, logger="bot.auth.clerk")

    def line() -> logging.LogRecord:
        [record] = [r for r in caplog.records if r.name == "bot.auth.clerk"]
        message = record.getMessage()
        assert f"clerk_trace_id={TRACE}" in message
        assert EMAIL.value not in message and PHONE.value not in message
        assert EMAIL.masked in message or PHONE.masked in message
        return record

    return line


def test_form_code_incorrect_is_a_wrong_code_with_tries_left(operator_line: Line) -> None:
    error = mapped(
        clerk_error(422, "form_code_incorrect", meta={"param_name": "code"}), tries_left=2
    )
    assert isinstance(error, WrongCode) and error.tries_left == 2
    operator_line()


def test_form_code_incorrect_always_leaves_a_try(operator_line: Line) -> None:
    # Clerk said "incorrect", not "failed": the code still takes tries, whatever we counted.
    error = mapped(clerk_error(422, "form_code_incorrect"), tries_left=0)
    assert isinstance(error, WrongCode) and error.tries_left == 1
    operator_line()


def test_verification_expired_is_expired(operator_line: Line) -> None:
    assert isinstance(mapped(clerk_error(400, "verification_expired")), CodeExpired)
    operator_line()


def test_verification_failed_is_too_many_attempts_with_a_new_code_at_once(
    operator_line: Line,
) -> None:
    error = mapped(clerk_error(400, "verification_failed"))
    assert isinstance(error, TooManyAttempts) and error.retry_at == NOW
    operator_line()


def test_user_locked_is_too_many_attempts_until_the_lockout_ends(operator_line: Line) -> None:
    error = mapped(clerk_error(403, "user_locked", meta={"lockout_expires_in_seconds": 3600}))
    assert isinstance(error, TooManyAttempts) and error.retry_at == NOW + timedelta(hours=1)
    operator_line()


def test_user_locked_for_good_is_a_lasting_refusal(operator_line: Line) -> None:
    # Clerk: "A null value for a locked user indicates that lockout never expires."
    error = mapped(clerk_error(403, "user_locked"))
    assert isinstance(error, Refused) and error.reason == BLOCKED
    assert "Clerk Dashboard" in operator_line().getMessage()


@pytest.mark.parametrize("code", ["user_banned", "user_deactivated"])
def test_a_banned_or_deactivated_user_is_a_lasting_refusal(code: str, operator_line: Line) -> None:
    error = mapped(clerk_error(403, code))
    assert isinstance(error, Refused) and error.reason == BLOCKED
    assert code in operator_line().getMessage()


def test_legal_consent_the_chat_cannot_give_is_a_lasting_refusal(operator_line: Line) -> None:
    error = mapped(clerk_error(422, "legal_not_accepted", meta={"param_name": "legal_accepted"}))
    assert isinstance(error, Refused) and error.reason == REQUIREMENTS
    record = operator_line()
    assert record.levelno == logging.ERROR and "Clerk Dashboard" in record.getMessage()


def test_user_data_missing_is_a_lasting_refusal_naming_the_fields(operator_line: Line) -> None:
    meta = {"param_names": ["password", "legal_accepted"]}
    error = mapped(clerk_error(422, "form_data_missing", meta=meta))
    assert isinstance(error, Refused) and error.reason == REQUIREMENTS
    message = operator_line().getMessage()
    assert "password, legal_accepted" in message and "optional in the Clerk Dashboard" in message


@pytest.mark.parametrize("code", ["sign_up_mode_restricted", "sign_up_restricted_waitlist"])
def test_closed_sign_ups_are_a_lasting_refusal(code: str, operator_line: Line) -> None:
    error = mapped(clerk_error(403, code))
    assert isinstance(error, Refused) and error.reason == SIGN_UP_CLOSED
    assert "Clerk Dashboard" in operator_line().getMessage()


def test_form_identifier_not_found_is_an_invalid_identifier(operator_line: Line) -> None:
    error = mapped(clerk_error(422, "form_identifier_not_found"))
    assert isinstance(error, InvalidIdentifier) and error.reason == NOT_FOUND
    operator_line()


def test_form_identifier_exists_is_a_taken_identifier(operator_line: Line) -> None:
    error = mapped(clerk_error(422, "form_identifier_exists"))
    assert isinstance(error, InvalidIdentifier) and error.reason == TAKEN
    operator_line()


def test_form_param_format_invalid_is_a_malformed_email(operator_line: Line) -> None:
    error = mapped(clerk_error(422, "form_param_format_invalid"))
    assert isinstance(error, InvalidIdentifier) and error.reason == Reason.BAD_EMAIL
    operator_line()


def test_form_param_format_invalid_is_an_invalid_number_for_a_phone(operator_line: Line) -> None:
    error = mapped(clerk_error(422, "form_param_format_invalid"), PHONE)
    assert isinstance(error, InvalidIdentifier) and error.reason == Reason.INVALID_NUMBER
    operator_line()


def test_too_many_requests_is_rate_limited_for_retry_after(operator_line: Line) -> None:
    error = mapped(clerk_error(429, "too_many_requests", retry_after="12"))
    assert isinstance(error, RateLimited) and error.retry_after == 12
    operator_line()


def test_verification_code_too_many_requests_is_the_resend_wait(operator_line: Line) -> None:
    error = mapped(clerk_error(429, "verification_code_too_many_requests"))
    assert isinstance(error, RateLimited) and error.retry_after == 30
    operator_line()


def test_session_exists_is_unavailable_and_logged(operator_line: Line) -> None:
    error = mapped(clerk_error(400, "session_exists"))
    assert isinstance(error, BackendUnavailable)
    operator_line()


def test_native_api_disabled_is_unavailable_and_tells_the_operator(operator_line: Line) -> None:
    error = mapped(clerk_error(400, "native_api_disabled"))
    assert isinstance(error, BackendUnavailable)
    record = operator_line()
    assert record.levelno == logging.ERROR and "Native API" in record.getMessage()


def test_an_unknown_code_is_unavailable_and_logged_with_its_trace_id(operator_line: Line) -> None:
    error = mapped(clerk_error(400, "something_new"))
    assert isinstance(error, BackendUnavailable) and error.retry_after == 5
    record = operator_line()
    assert record.levelno == logging.WARNING and "something_new" in record.getMessage()


def test_a_server_error_is_unavailable_whatever_its_code(operator_line: Line) -> None:
    error = mapped(clerk_error(502, "form_code_incorrect", retry_after="7"), tries_left=2)
    assert isinstance(error, BackendUnavailable) and error.retry_after == 7
    assert "HTTP 502" in operator_line().getMessage()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("12", 12.0),
        ("0", 0.0),
        ("Tue, 12 May 2026 12:00:30 GMT", 30.0),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after(
    value: str | None, seconds: float | None, caplog: pytest.LogCaptureFixture
) -> None:
    assert parse_retry_after(value, NOW) == seconds
    # This one logs nothing; the fixture's check expects one line, so give it one.
    mapped(clerk_error(400, "verification_expired"))
