"""Passgram's commands, as people type them and as Telegram's menu lists them, whatever
framework sets them. A host bot that mounts Passgram may rename any of them (its own /start
stays its own; Passgram's becomes, say, /signin)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

COMMANDS = (
    ("start", "Sign in or create an account"),
    ("me", "Who I'm signed in as"),
    ("logout", "Sign out"),
    ("forget", "Erase everything the bot keeps about me"),
    ("help", "What this bot does"),
    ("cancel", "Stop what we're doing"),
)
NAMES = frozenset(name for name, _ in COMMANDS)
VALID = re.compile(r"[a-z0-9_]{1,32}")  # what Telegram accepts as a command


@dataclass(frozen=True)
class Commands:
    """`renamed` maps Passgram's name of a command to the one people type instead."""

    renamed: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.renamed) - NAMES
        if unknown:
            raise ValueError(f"not Passgram commands: {', '.join(sorted(unknown))}")
        bad = [name for name in self.renamed.values() if not VALID.fullmatch(name)]
        if bad:
            raise ValueError(f"not command names (a-z, 0-9, _; 32 at most): {', '.join(bad)}")
        typed = [self.typed(name) for name in NAMES]
        if len(set(typed)) != len(typed):
            raise ValueError("two commands renamed to the same name")

    def typed(self, name: str) -> str:
        """What people type for Passgram's command `name`."""
        return self.renamed.get(name, name)

    def meaning(self, typed: str) -> str | None:
        """Passgram's name of the command typed, or None when it is none of Passgram's."""
        for name in NAMES:
            if self.typed(name) == typed:
                return name
        return None

    def menu(self) -> list[tuple[str, str]]:
        """Telegram's command menu: (command, description), in Passgram's order."""
        return [(self.typed(name), description) for name, description in COMMANDS]

    def mentions(self) -> dict[str, str]:
        """The commands as texts mention them: {"cmd_start": "/signin", …}."""
        return {f"cmd_{name}": "/" + self.typed(name) for name in NAMES}
