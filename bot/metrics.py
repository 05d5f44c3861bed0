"""What an operator watches, in Prometheus's terms (served at GET /metrics).

Labels are kinds, steps, channels and outcomes only: never a person, a chat, an identifier or a
code, so a scrape holds no personal data and the number of series stays small.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest

UPDATES = Counter("passgram_updates_handled", "Updates from Telegram handled")
STEPS = Counter(
    "passgram_steps",
    "Conversation steps, by the step the person was at and what came of it",
    ["step", "outcome"],
)
SIGN_INS = Counter("passgram_sign_ins", "People who proved an existing identity")
SIGN_UPS = Counter("passgram_sign_ups", "People who proved a new identity (an account was made)")
CODES_SENT = Counter("passgram_codes_sent", "One-time codes delivered, by channel", ["channel"])
CODES_FAILED = Counter(
    "passgram_codes_failed", "One-time codes a channel failed to deliver", ["channel"]
)
BACKEND_SECONDS = Histogram(
    "passgram_backend_seconds",
    "Time the auth backend took per call",
    ["backend", "call"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
BACKEND_ERRORS = Counter(
    "passgram_backend_errors",
    "Auth backend calls that ended in an error, by the error's kind",
    ["backend", "call", "error"],
)
TELEGRAM_429 = Counter(
    "passgram_telegram_429",
    "Telegram answered 429 Too Many Requests, by what was paused",
    ["scope"],
)
LIMITER_WAITS = Histogram(
    "passgram_limiter_wait_seconds",
    "Time outgoing Telegram calls waited for a slot, by cost",
    ["cost"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0),
)
LOCK_WAITS = Counter(
    "passgram_lock_waits", "Updates that waited for another replica to finish a person's update"
)
LOCKS_LOST = Counter("passgram_locks_lost", "Per-person locks whose lease ran out while still held")
GATE_DECISIONS = Counter(
    "passgram_gate_decisions", "What the gate did to people in gated chats", ["decision"]
)
_DECISIONS = frozenset({"Approve", "Decline", "Restrict", "Free", "Remove"})


def gate_action(action: object) -> None:
    """Count a gate action that decides someone's access (messages and notices are not)."""
    name = type(action).__name__
    if name in _DECISIONS:
        GATE_DECISIONS.labels(name.lower()).inc()


def scope_of(chat_id: int | str | None) -> str:
    """A chat as a metrics label: only its kind."""
    if chat_id is None:
        return "bot"
    return "private" if isinstance(chat_id, int) and chat_id > 0 else "group"


def exposition() -> tuple[bytes, str]:
    """The text a scrape gets, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
