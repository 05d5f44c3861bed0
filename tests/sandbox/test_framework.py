"""`passgram sandbox` on either framework (TELEGRAM_FRAMEWORK): the same page, the same bot."""

from __future__ import annotations

import argparse
from pathlib import Path

import aiohttp
import pytest

from bot.sandbox.app import Sandbox, SandboxConfig, main
from tests.sandbox.test_web_api import EMAIL, Page


async def test_on_python_telegram_bot_a_code_from_the_outbox_signs_in(tmp_path: Path) -> None:
    config = SandboxConfig(port=0, data_dir=tmp_path, framework="ptb")
    async with Sandbox(config) as sandbox, aiohttp.ClientSession(base_url=sandbox.url) as http:
        assert sandbox.app is not None
        assert sandbox.app.settings.telegram_framework == "ptb"
        page = Page(sandbox, http)
        alice = page.user("Alice")
        await page.say(alice, EMAIL)
        code = (await page.state())["outbox"][0]["code"]
        typed = await page.send(alice, {"text": code})
        done = await alice.next_message()
        assert (done.text or "").startswith(f"✅ You're signed in to Acme as {EMAIL}")
        await alice.wait_for(lambda m: m.message_id == typed["message"]["id"] and m.deleted)


def test_an_unknown_framework_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TELEGRAM_FRAMEWORK", "telebot")
    args = argparse.Namespace(
        host="127.0.0.1", port=0, data_dir=None, backend="local", no_browser=True
    )
    assert main(args) == 2
    assert "TELEGRAM_FRAMEWORK: aiogram or ptb" in capsys.readouterr().err
