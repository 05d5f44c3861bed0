"""A loopback stand-in for Clerk's Frontend and Backend APIs (tests, `passgram sandbox`).

It implements the operations Passgram's Clerk backend uses, answers with Clerk-shaped objects
and errors, and behaves like a development instance in test mode: `+clerk_test` emails and
+1 XXX 555-0100…0199 numbers take the code 424242, anything else gets a random code that
`ClerkDouble.last_code` (and the sandbox's dev outbox) shows. Codes expire, tries run out,
and the per-IP and per-instance rate limits answer 429 with Retry-After, as Clerk's do.
"""

from bot.sandbox.clerk.model import TEST_CODE, Clock, SentCode
from bot.sandbox.clerk.server import FAPI_LIMITS, ClerkDouble, Exchange

__all__ = ["FAPI_LIMITS", "TEST_CODE", "ClerkDouble", "Clock", "Exchange", "SentCode"]
