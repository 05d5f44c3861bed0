"""Everything the gate says: to people asking to join, in groups, and to admins.

Keys are stable; each language maps keys to `str.format` templates, English is the fallback
(the same catalog style as the conversation's).
"""

from __future__ import annotations

from bot.catalog import Catalog

EN: dict[str, str] = {
    # To someone who asked to join, in the private chat Telegram opens for it.
    "ask_request": (
        "Hi {name}! {title} lets in people who sign in to {app}. Tap the button to sign in "
        "with a one-time code; I'll let you in as soon as you're done. Your request waits "
        "{wait}."
    ),
    "btn_sign_in": "Sign in to join",
    "admitted_request": "You're in {title}. Welcome!",
    "admitted_member": "You can write in {title} now. Welcome!",
    "refused": (
        "Sorry, I can't let you into {title}: this chat accepts {accepts}, and you're signed "
        "in as {who}. To join, sign out with {cmd_logout}, sign in with one of those, and ask to "
        "join again."
    ),
    "ask_again": "You're signed in. Ask to join {title} again and I'll let you in at once.",
    # In a group, the one message for a wave of newcomers.
    "wave": (
        "Welcome, {names}! Before you can write here, sign in to {app}: tap the button below "
        "within {wait}, or you'll be removed from the chat."
    ),
    "wave_more": "{names} and {count} more",
    "someone": "newcomer",
    "btn_verify": "Sign in to write",
    # Admins.
    "not_admin": "Only this chat's admins can change the gate.",
    "unknown_chat": (
        "I don't know this chat yet. Make me an admin of it with these rights: {rights}."
    ),
    "status": (
        "Gate: {state}\n"
        "Mode: {mode}\n"
        "Policy: {policy} ({accepts})\n"
        "Timeout: {timeout}\n"
        "Sign-out removes members: {live}\n"
        "Waiting: {waiting}"
    ),
    "state_on": "on",
    "state_off": "off",
    "mode_join_requests": "join requests (I approve or decline each request)",
    "mode_members": "members (newcomers may read, and write once they sign in)",
    "yes": "yes",
    "no": "no",
    "status_missing": "I still need these admin rights: {rights}.",
    "turned_on": "The gate is on. {how}",
    "how_join_requests": (
        "I decide join requests: make sure new members need approval, or share a link from "
        "/gate link."
    ),
    "how_members": "Newcomers are restricted until they sign in.",
    "turned_off": (
        "The gate is off. Newcomers I restricted can write, and join requests wait for an admin."
    ),
    "cannot_turn_on": "I can't gate {title} yet: {missing}",
    "mode_set": "Mode: {mode}.",
    "mode_channel": "Channels can't restrict members, so they use join_requests mode.",
    "bad_mode": "The mode is join_requests or members.",
    "policy_set": "Policy: {policy}. This chat now accepts {accepts}.",
    "bad_policy": (
        "I can't read that policy ({error}). Use any, email-domain:example.com[,example.org] "
        "or phone-country:GB[,US]."
    ),
    "timeout_set": "Timeout: {timeout}.",
    "bad_timeout": "The timeout is a number of seconds, from {low} to {high}.",
    "live_set_on": "Members who sign out or erase their data are removed.",
    "live_set_off": "Members who sign out or erase their data stay.",
    "bad_live": "Use /gate live on or /gate live off.",
    "approved": "Approved {user}.",
    "removed": "Removed {user}.",
    "bad_user": "Give the numeric Telegram user id, e.g. /gate approve 123456789.",
    "link_asked": "Making an invite link…",
    "link_members_mode": (
        "In members mode anyone may join and is restricted until they sign in: share any "
        "invite link of the chat."
    ),
    "invite_link": "An invite link that asks to join (I decide each request): {link}",
    "invite_link_failed": "I couldn't make an invite link: {error}",
    "unknown": "I don't know that. /gate help lists what I can do.",
    "help": (
        "/gate status — how the gate is set\n"
        "/gate on · /gate off — turn it on or off\n"
        "/gate mode join_requests|members — decide join requests, or restrict newcomers\n"
        "/gate policy any|email-domain:DOMAIN[,DOMAIN]|phone-country:CC[,CC] — who gets in\n"
        "/gate timeout SECONDS — how long someone has to sign in ({low}–{high})\n"
        "/gate live on|off — whether signing out removes members\n"
        "/gate approve USER_ID · /gate remove USER_ID — by hand\n"
        "/gate link — an invite link that asks to join"
    ),
    # The bot's own rights.
    "rights_missing": (
        "To gate {title}, make me an admin with these rights: {rights}. Then an admin turns "
        "the gate on with /gate on."
    ),
    "rights_ok": (
        "I'm an admin of {title} with the rights I need. An admin turns the gate on with "
        "/gate on (/gate help lists the rest)."
    ),
    "rights_missing_channel": (
        "To gate {title}, make me an admin with these rights: {rights}. Then turn the gate on "
        "here with /gate {chat_id} on."
    ),
    "rights_ok_channel": (
        "I'm an admin of {title} with the rights I need. Turn the gate on here with "
        "/gate {chat_id} on (/gate lists your chats and what I can do)."
    ),
    # Admins in the private chat.
    "your_chats": (
        "Chats you administer where I'm an admin:\n{chats}\n\n"
        "Manage one here with /gate CHAT_ID status, on, off, mode …, policy …, timeout …, "
        "live on|off or link. To add a chat, tap a button below."
    ),
    "chat_line": "• {title} ({kind}, {chat_id}): gate {state}",
    "no_chats": (
        "You don't administer any chat I'm an admin of. Tap a button below and pick your "
        "channel or group: Telegram asks you to make me an admin of it with the rights I need."
    ),
    "btn_add_channel": "Add a channel",
    "btn_add_group": "Add a group",
    "private_usage": (
        "Send /gate to list your chats, or /gate CHAT_ID followed by status, on, off, "
        "mode join_requests|members, policy …, timeout SECONDS, live on|off or link."
    ),
    "shared": "Added {title} ({chat_id}). Manage it here with /gate {chat_id} on, off, ….",
    "shared_unseen": (
        "I can't see that chat. Make me an admin of it (a group: {group}; a channel: "
        "{channel}) and pick it again."
    ),
    "right_can_invite_users": "Invite Users via Link",
    "right_can_restrict_members": "Ban Users",
    "right_can_delete_messages": "Delete Messages",
}

CATALOG = Catalog({"en": EN})
language_for = CATALOG.language_for
t = CATALOG.t


def wait(seconds: int) -> str:
    """A timeout in words: "45 seconds", "10 minutes", "2 hours", "1 day"."""
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    if seconds >= 60:
        minutes = -(-seconds // 60)
        return f"{minutes} minutes"
    return f"{seconds} seconds"


def rights(lang: str, names: tuple[str, ...]) -> str:
    """Admin rights as Telegram's app names them, and as the Bot API does."""
    return ", ".join(f"{t(lang, 'right_' + name)} ({name})" for name in names)
