"""A loopback stand-in for the Telegram Bot API server, for end-to-end tests of the real bot.

api = BotApiServer()
await api.start()
token = api.create_bot()
alice = api.user("Alice", phone_number="+15555550123")
await alice.start()
reply = await alice.next_message()

club = api.create_group("Book club", owner=api.user("Olga"))
club.add_bot(token, rights={"can_invite_users", "can_restrict_members"})
await alice.ask_to_join(club.create_link(creates_join_request=True))
"""

from .chats import SimChat
from .groups import JoinRequest, Refused
from .objects import build
from .rates import TELEGRAM_LIMITS, RateLimits, RateWindows, rate_windows
from .server import BotApiServer
from .state import BotState, CallRecord, ChatMessage, ChatState, Event, Person
from .users import NoAnswer, SimUser
from .wire import ApiError

__all__ = [
    "TELEGRAM_LIMITS",
    "ApiError",
    "BotApiServer",
    "BotState",
    "CallRecord",
    "ChatMessage",
    "ChatState",
    "Event",
    "JoinRequest",
    "NoAnswer",
    "Person",
    "RateLimits",
    "RateWindows",
    "Refused",
    "SimChat",
    "SimUser",
    "build",
    "rate_windows",
]
