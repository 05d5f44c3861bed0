"""The commands the bot offers in Telegram's menu, whatever framework sets them."""

from __future__ import annotations

COMMANDS = (
    ("start", "Sign in or create an account"),
    ("me", "Who I'm signed in as"),
    ("logout", "Sign out"),
    ("forget", "Erase everything the bot keeps about me"),
    ("help", "What this bot does"),
    ("cancel", "Stop what we're doing"),
)
