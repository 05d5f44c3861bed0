"""Gating a group on the sandbox page, as an admin and a newcomer would try it: create a group,
make the bot its admin, switch the gate on with /gate, and sign in from the group's button."""

from __future__ import annotations

from playwright.async_api import Locator, Page, expect

from bot.sandbox.app import Sandbox
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_sandbox_page import code_from_the_outbox, say, switch_to


def last_in(page: Page) -> Locator:
    """The newest message in the open chat from someone else (the bot, in these chats)."""
    return page.locator("#messages .message.in").last


def member(page: Page, name: str) -> Locator:
    return page.get_by_role("list", name="Members").get_by_role("listitem").filter(has_text=name)


async def open_chat(page: Page, title: str) -> None:
    chats = page.get_by_role("list", name="Chats").get_by_role("button")
    await chats.filter(has=page.locator(".chat-item-title", has_text=title)).click()
    await expect(page.locator("#chat-title")).to_have_text(title)


async def test_a_newcomer_signs_in_to_write_in_a_gated_group(page: Page, sandbox: Sandbox) -> None:
    # Alice creates the group and makes the bot its admin, with the rights the gate needs.
    await expect(page.locator("#account-name")).to_have_text("Alice Archer")
    await page.get_by_role("button", name="+ New group or channel…").click()
    dialog = page.get_by_role("dialog", name="New group or channel")
    await dialog.get_by_label("Title").fill("Book club")
    await dialog.get_by_role("button", name="Create").click()
    await expect(page.locator("#chat-title")).to_have_text("Book club")
    await expect(member(page, "Alice Archer")).to_contain_text("owner")
    await page.get_by_role("button", name="Add @acme_bot as admin").click()
    await expect(member(page, "Acme sign-in")).to_contain_text("admin")
    await expect(page.get_by_role("button", name="Add @acme_bot as admin")).to_have_count(0)

    # She switches the gate on from the group itself.
    await say(page, "/gate mode members")
    await expect(last_in(page)).to_contain_text("Mode: members")
    await say(page, "/gate on")
    await expect(last_in(page)).to_contain_text("The gate is on.")
    await expect(last_in(page).locator(".sender")).to_have_text("Acme sign-in")

    # Bob joins and is restricted: the page shows it, and the server turns his message away.
    await switch_to(page, "Bob Baker")
    await open_chat(page, "Book club")
    await page.get_by_role("button", name="Join group").click()
    await expect(member(page, "Bob Baker")).to_contain_text("restricted")
    await expect(page.locator("#chat-subtitle")).to_contain_text("you: restricted")
    await expect(page.get_by_role("note")).to_contain_text("You're restricted here")
    await say(page, "Hello?")
    await expect(page.locator("#toast")).to_contain_text("You can't write here")
    await expect(page.locator("#messages .message.out")).to_have_count(0)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "sandbox-gate-restricted.png"))

    # The bot's welcome has the button; it opens the bot's private chat with /start PAYLOAD.
    welcome = page.locator("#messages .message.in", has_text="Welcome, Bob")
    await welcome.get_by_role("button", name="Sign in to write").click()
    await expect(page.locator("#chat-title")).to_have_text("Acme sign-in")
    start = page.locator("#messages .message.out").first
    await expect(start).to_contain_text("/start ")
    await expect(last_in(page)).to_contain_text("email address")

    await say(page, "bob.baker@example.com")
    await expect(last_in(page)).to_contain_text("I've sent a 6-digit code")
    code = await code_from_the_outbox(page, "bob.baker@example.com")
    await say(page, code)
    await expect(page.locator("#messages")).to_contain_text("You can write in Book club now.")

    # Back in the group Bob is a member and his message goes through.
    await open_chat(page, "Book club")
    await expect(member(page, "Bob Baker")).to_contain_text("member")
    await expect(page.locator("#chat-subtitle")).to_contain_text("you: member")
    await expect(page.get_by_role("note")).to_be_hidden()
    await say(page, "Hello, everyone")
    await expect(page.locator("#messages .message.out").last).to_contain_text("Hello, everyone")

    group = next(iter(sandbox.botapi.world.groups.values()))
    bob = next(u for u in sandbox.console.users.values() if u.first_name == "Bob")
    assert sandbox.botapi.chat(group.id).status(bob) == "member"
    # His first try was refused by the server: only the second message is in the group.
    written = [m.payload.get("text") for m in group.chat.messages.values() if m.author_id == bob.id]
    assert [t for t in written if t is not None] == ["Hello, everyone"]
