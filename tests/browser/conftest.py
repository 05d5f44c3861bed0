"""The sandbox page in real headless Chromium (Debian's package), driven by Playwright.

Playwright only drives the browser here: it never downloads one. Each test gets the real
sandbox assembly on a free port and a fresh browser; a screenshot of the page as the test left
it goes to test-artifacts/.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bot.sandbox.app import Sandbox, SandboxConfig

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
VIEWPORT = {"width": 1360, "height": 820}


def _missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (pip install playwright)"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


def _refused(text: str) -> bool:
    """Chromium logs every 4xx answer; a refusal the page shows as its own message (a
    restricted member writing, say) is not a problem of the page."""
    return text.startswith("Failed to load resource: the server responded with a status of 4")


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxConfig(port=0, data_dir=tmp_path)) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    reason = _missing()
    if reason is not None:
        # .ci/run installs both; anywhere else a missing browser is a skip, not a failure.
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def page(
    browser: Browser, sandbox: Sandbox, request: pytest.FixtureRequest
) -> AsyncIterator[Page]:
    context = await browser.new_context(
        viewport=VIEWPORT,  # type: ignore[arg-type]
        locale="en-GB",
        timezone_id="UTC",
    )
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if message.type == "error" and not _refused(message.text)
            else None
        ),
    )
    await page.goto(sandbox.url)
    try:
        yield page
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / f"sandbox-{request.node.name}.png"))
        await context.close()
    assert problems == []
