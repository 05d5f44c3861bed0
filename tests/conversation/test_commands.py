"""Renaming Passgram's commands (a host bot that owns /start): what is refused, what is read."""

from __future__ import annotations

import pytest

from bot.conversation.commands import Commands


def test_a_renamed_command_is_read_by_passgrams_name_and_the_old_name_is_not_passgrams() -> None:
    commands = Commands({"start": "signin"})
    assert commands.meaning("signin") == "start"
    assert commands.meaning("start") is None
    assert commands.meaning("me") == "me"
    assert commands.menu()[0] == ("signin", "Sign in or create an account")
    assert commands.mentions()["cmd_start"] == "/signin"


@pytest.mark.parametrize(
    ("renamed", "says"),
    [
        ({"begin": "go"}, "not Passgram commands: begin"),
        ({"start": "Sign-In"}, "not command names"),
        ({"start": "x" * 33}, "not command names"),
        ({"start": "me"}, "two commands renamed to the same name"),
    ],
)
def test_renames_that_cannot_work_are_refused(renamed: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        Commands(renamed)
