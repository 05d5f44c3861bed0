"""Signing in on the sandbox page as a person would: click, type, read the code, type it."""

from __future__ import annotations

import re

from playwright.async_api import Locator, Page, expect

from bot.sandbox.app import Sandbox

CODE = re.compile(r"^\d{6}$")


def bot_said(page: Page) -> Locator:
    """The newest message in the open chat that the bot sent."""
    return page.locator("#messages .message.in").last


async def start_the_bot(page: Page) -> None:
    await page.get_by_role("button", name="Start", exact=True).click()
    await expect(bot_said(page)).to_contain_text("I'm the sign-in bot for Acme")


async def say(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name="Message")
    await box.fill(text)
    await box.press("Enter")


async def code_from_the_outbox(page: Page, address: str) -> str:
    entry = page.locator(".outbox-entry").first
    await expect(entry).to_contain_text(address)
    code = entry.locator(".code")
    await expect(code).to_have_text(CODE)
    return await code.inner_text()


async def switch_to(page: Page, name: str) -> None:
    await page.locator("#account-toggle").click()
    await page.get_by_role("list", name="Switch account").get_by_role("button", name=name).click()
    await expect(page.locator("#account-name")).to_have_text(name)


async def test_sign_in_by_email(page: Page) -> None:
    await expect(page.locator("#account-name")).to_have_text("Alice Archer")
    await expect(page.locator(".chat-item.active")).to_contain_text("Acme sign-in")
    await start_the_bot(page)
    await expect(page.get_by_role("button", name="📱 Share my phone number")).to_be_visible()

    await say(page, "alice.archer@example.com")
    await expect(bot_said(page)).to_contain_text("I've sent a 6-digit code")
    await expect(bot_said(page)).to_contain_text("a•••@example.com")
    code = await code_from_the_outbox(page, "alice.archer@example.com")
    await expect(page.locator(".outbox-entry").first).to_contain_text("Email")

    await say(page, code)
    await expect(bot_said(page)).to_contain_text(
        "✅ You're signed in to Acme as alice.archer@example.com"
    )
    # The bot deleted the message with the code; the page shows that it did.
    deleted = page.locator("#messages .message.out.deleted")
    await expect(deleted).to_have_count(1)
    await expect(deleted).to_contain_text("Deleted by the bot")
    await expect(deleted).to_contain_text(code)


async def test_sign_in_with_the_contact_button(page: Page) -> None:
    await switch_to(page, "Bob Baker")
    await start_the_bot(page)

    await page.get_by_role("button", name="📱 Share my phone number").click()
    await expect(page.locator("#messages .message.out .contact-card")).to_contain_text(
        "+12015550123"
    )
    await expect(bot_said(page)).to_contain_text("+1 ••• ••• 0123")
    # A one-time keyboard goes away once used.
    await expect(page.get_by_role("button", name="📱 Share my phone number")).to_have_count(0)
    code = await code_from_the_outbox(page, "+1 201-555-0123")
    await expect(page.locator(".outbox-entry").first).to_contain_text("SMS")

    await say(page, code)
    await expect(bot_said(page)).to_contain_text("✅ You're signed in to Acme as +1 201-555-0123")


async def test_a_wrong_code_shows_the_tries_left(page: Page) -> None:
    await page.locator("#account-toggle").click()
    await page.get_by_role("button", name="New user…").click()
    dialog = page.get_by_role("dialog", name="New Telegram user")
    await dialog.get_by_label("First name").fill("Cy")
    await dialog.get_by_label("Phone number").fill("+44 7400 123457")
    await dialog.get_by_role("button", name="Create").click()
    await expect(page.locator("#account-name")).to_have_text("Cy")
    await expect(page.locator("#account-phone")).to_have_text("+447400123457")
    await start_the_bot(page)

    await say(page, "cy@example.com")
    await expect(bot_said(page)).to_contain_text("I've sent a 6-digit code")
    code = await code_from_the_outbox(page, "cy@example.com")
    await say(page, "000000" if code != "000000" else "111111")
    await expect(bot_said(page)).to_have_text(
        re.compile(r"^That code isn't right\. 4 tries left\.")
    )

    # The inline buttons work: Cancel ends the attempt and the bot takes its buttons away.
    code_message = page.locator("#messages .message.in", has_text="I've sent a 6-digit code")
    await code_message.get_by_role("button", name="Cancel").click()
    await expect(bot_said(page)).to_contain_text("Cancelled")
    await expect(code_message.locator(".inline-keyboard")).to_have_count(0)
    await expect(code_message).to_contain_text("edited")


async def test_text_from_the_bot_and_users_is_shown_as_text(page: Page, sandbox: Sandbox) -> None:
    markup = '<img src=x onerror="document.body.dataset.pwned=1"><b>Eve</b>'
    eve = sandbox.console.add_user(markup, phone_number="+447400123458")
    await switch_to(page, markup)
    await start_the_bot(page)
    await say(page, markup)
    await expect(page.locator("#messages .message.out .text").last).to_have_text(markup)
    await expect(bot_said(page)).to_contain_text("email address")
    assert await page.locator("#messages img, #account-name b, .account-list b").count() == 0
    assert await page.evaluate("document.body.dataset.pwned") is None
    # The stand-in got the user's text as typed, markup and all.
    assert [m.text for m in eve.history if not m.from_bot][-1] == markup
