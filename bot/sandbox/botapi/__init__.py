"""A loopback stand-in for the Telegram Bot API server, for end-to-end tests of the real bot.

api = BotApiServer()
await api.start()
token = api.create_bot()
alice = api.user("Alice", phone_number="+15555550123")
await alice.start()
reply = await alice.next_message()
"""

from .objects import build
from .server import BotApiServer
from .state import BotState, CallRecord, ChatMessage, ChatState, Event, Person
from .users import NoAnswer, SimUser
from .wire import ApiError

__all__ = [
    "ApiError",
    "BotApiServer",
    "BotState",
    "CallRecord",
    "ChatMessage",
    "ChatState",
    "Event",
    "NoAnswer",
    "Person",
    "SimUser",
    "build",
]
