"""Every text the bot says, in one catalog, ready for more languages.

Keys are stable; each language maps keys to `str.format` templates. The user's Telegram
`language_code` picks the language; anything missing falls back to English. Commands are
mentioned as {cmd_start}, {cmd_me}, …: a host bot may have renamed them (bot.conversation.commands).
"""

from __future__ import annotations

from datetime import datetime

from bot.catalog import Catalog

EN: dict[str, str] = {
    "welcome": (
        "Hi! I'm the sign-in bot for {app}.\n"
        "Send me your email address or phone number, or tap the button to share your "
        "Telegram number."
    ),
    "share_phone": "📱 Share my phone number",
    "ask_identifier": "Send me your email address or phone number, or tap the button below.",
    "ask_identifier_email_only": "Send me your email address.",
    "ask_identifier_phone_only": (
        "Send me your phone number with the country code, or tap the button below."
    ),
    "already_linked": (
        "You're signed in to {app} as {who}. "
        "{cmd_me} shows your account · {cmd_logout} signs you out."
    ),
    "code_sent": (
        "I've sent a 6-digit code {how} to {masked}. It's valid for {minutes} minutes.\n"
        "The code comes from {app}. Never send me a code you got from Telegram itself."
    ),
    "how_email": "by email",
    "how_sms": "by SMS",
    "how_log": "through the development log",
    "btn_resend": "Resend code",
    "btn_resend_in": "Resend code (in {seconds} s)",
    "btn_change": "Use another email or number",
    "btn_cancel": "Cancel",
    "btn_new_code": "Send a new code",
    "btn_erase": "Erase my data",
    "btn_keep": "Keep it",
    "resent": "I've sent a new code to {masked}. The previous one no longer works.",
    "resend_wait": "You can ask for a new code in {seconds} s.",
    "waiting_for_code": "I'm waiting for the 6-digit code I sent to {masked}.",
    "code_shape": "The code has 6 digits. Please send just the digits, like 123456.",
    "wrong_code": "That code isn't right. {tries} tries left.",
    "wrong_code_one": "That code isn't right. 1 try left.",
    "expired": "That code has expired.",
    "too_many": (
        "Too many wrong codes. You can try again at {when}, or use another email or number."
    ),
    "too_many_code": (
        "Too many wrong codes for this code. Ask for a new one, or use another email or number."
    ),
    "rate_limited": (
        "Please wait {wait} before I send another code there, or use another email or number."
    ),
    "pacing": "Lots of people are signing in right now. Your code is on its way in about {wait}.",
    "refused": (
        "{app} doesn't let me sign you in this way. Please sign in on {app}'s website or app, "
        "or use another email or number."
    ),
    "refused_mfa_required": (
        "Your {app} account has two-step verification turned on, which I can't do in a chat. "
        "Please sign in on {app}'s website or app."
    ),
    "refused_requirements": (
        "Creating a {app} account needs more than I can ask for here. Please sign up on "
        "{app}'s website or app, then sign in here."
    ),
    "refused_sign_up_closed": (
        "New {app} accounts are by invitation only right now, so I can't create one for you. "
        "If you already have an account, send the email or number it uses."
    ),
    "refused_blocked": (
        "This {app} account can't sign in right now. Please contact {app}'s support."
    ),
    "unavailable": (
        "I can't reach the sign-in service right now. Please try again in a minute — "
        "nothing you've done is lost."
    ),
    "internal_error": (
        "Something went wrong on my side, so I couldn't act on that. Please send it again "
        "in a minute."
    ),
    "signed_up": "✅ You're signed in to {app} as {who}. New account created.",
    "signed_in": "✅ Welcome back — signed in to {app} as {who}.",
    "signed_in_footer": "{cmd_me} shows your account · {cmd_logout} signs you out",
    "open_app": "Open {app}",
    "ask_first_name": "One more thing for your new account: what's your first name?",
    "ask_last_name": "And your last name?",
    "ask_username": "Pick a username for {app} (letters, digits and _ only).",
    "bad_field": "That doesn't look right: {reason} Please try again.",
    "field_empty": "it's empty.",
    "field_too_long": "it's longer than 64 characters.",
    "field_username": "use 3-64 letters, digits or _.",
    "contact_not_yours": (
        "That contact isn't you. Share your own number with the button, or type it."
    ),
    "only_email": "I can only send codes by email here. Please send your email address.",
    "only_phone": "I can only send codes by SMS here. Please send your phone number.",
    "reason_empty": "Send me your email address or phone number.",
    "reason_too_long": "That's too long for a phone number. Please check it and send it again.",
    "reason_too_short": "That number looks too short. Please send the full number.",
    "reason_needs_country": (
        "I can't tell which country that number is from. Please send it with the country "
        "code, like +44 7700 900123."
    ),
    "reason_unknown_country": (
        "I don't know that country code. Please check the digits after the +."
    ),
    "reason_invalid_number": (
        "That isn't a valid phone number. Please check it, or send your email address."
    ),
    "reason_not_mobile": (
        "That's a landline, so it can't receive a text. Send a mobile number, or your "
        "email address."
    ),
    "reason_not_identifier": (
        "That doesn't look like a phone number or an email address. Please send me one of them."
    ),
    "reason_toll_free": (
        "That's a freephone number, so it can't receive a text. Send a mobile number, or your "
        "email address."
    ),
    "reason_premium_rate": (
        "That's a premium-rate number, so it can't receive a text. Send a mobile number, or "
        "your email address."
    ),
    "reason_shared_cost": (
        "That's a shared-cost number, so it can't receive a text. Send a mobile number, or "
        "your email address."
    ),
    "reason_personal_number": (
        "That's a personal number that forwards calls, so it can't receive a text. Send a "
        "mobile number, or your email address."
    ),
    "reason_pager": (
        "That's a pager number, so it can't receive a text. Send a mobile number, or your "
        "email address."
    ),
    "reason_uan": (
        "That's an organisation's universal access number, so it can't receive a text. Send a "
        "mobile number, or your email address."
    ),
    "reason_voicemail": (
        "That's a voicemail access number, so it can't receive a text. Send a mobile number, "
        "or your email address."
    ),
    "reason_sms_country": (
        "I can't send codes to phone numbers from this country ({country}). Please send your "
        "email address instead."
    ),
    "reason_sms_network": (
        "That's a satellite or international network number, and I can't send codes to those. "
        "Please send your email address instead."
    ),
    "reason_bad_email": (
        "That email address doesn't look right. Please check it and send it again."
    ),
    "reason_email_too_long": (
        "That's too long for an email address. Please check it and send it again."
    ),
    "reason_mixed_script_domain": (
        "The part after the @ mixes letters from different alphabets, so it could pass for "
        "another address. Please check it and type it again."
    ),
    "reason_lookalike_domain": (
        "The part after the @ has letters that only look like Latin ones, so it could pass "
        "for another address. Please check it and type it again."
    ),
    "reason_backend": "The sign-in service can't use that. Please check it, or try another one.",
    "backend_not_found": "There's no {app} account with that. Please check it, or try another one.",
    "backend_taken": (
        "That's already in use for another {app} account that isn't finished. "
        "Please try another email or number."
    ),
    "backend_not_allowed": "{app} doesn't accept that one. Please use another email or number.",
    "cancelled": "Cancelled. Send {cmd_start} whenever you want to sign in.",
    "nothing_to_cancel": "There's nothing to cancel. {cmd_help} shows what I can do.",
    "me": "You're signed in to {app} as {who} since {since}.",
    "me_chats": "Chats you got into through me:",
    "me_chat": "• {title} (since {since})",
    "me_not_linked": "You're not signed in. Send {cmd_start} to sign in to {app}.",
    "logged_out": "You're signed out of {app}. Send {cmd_start} to sign in again.",
    "not_linked": "You're not signed in, so there's nothing to sign out of.",
    "forget_confirm": (
        "This signs you out and erases everything I keep about you (your {what}, your "
        "sign-in history). Chats that require sign-in will remove you."
    ),
    "forget_what_email": "email",
    "forget_what_phone": "phone number",
    "forget_what_none": "messages with me",
    "forgotten": "Done. I've erased your data and signed you out.",
    "forget_kept": "Kept. Nothing was erased.",
    "tap_a_button": "Please tap one of the buttons: Erase my data or Keep it.",
    "stale_button": "That button no longer does anything.",
    "unknown_command": "I don't know that command. {cmd_help} shows what I can do.",
    "bad_link": ("That link isn't valid any more. Ask for a new one — or sign in here directly."),
    "not_text": "I can only read text here.",
    "help": (
        "I sign you in to {app} with a one-time code sent to your email or phone.\n"
        "{cmd_start} — sign in or create an account\n"
        "{cmd_me} — who you're signed in as\n"
        "{cmd_logout} — sign out\n"
        "{cmd_forget} — erase everything I keep about you\n"
        "{cmd_cancel} — stop what we're doing\n"
        "/gate — for admins: the groups and channels I gate for you, and how to add one\n"
        "I will never ask for a code from Telegram itself."
    ),
}

CATALOG = Catalog({"en": EN})
language_for = CATALOG.language_for
t = CATALOG.t


def duration(seconds: float) -> str:
    s = max(1, round(seconds))
    if s < 60:
        return f"{s} s"
    minutes = -(-s // 60)
    return f"{minutes} min"


def clock(at: datetime) -> str:
    return at.strftime("%H:%M UTC")


def date(at: datetime) -> str:
    return f"{at.day} {at.strftime('%B')}, {at.strftime('%H:%M')} UTC"
