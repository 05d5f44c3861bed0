"""The embedded auth backend: one-time codes sent by our own channels, checked in our database.

Sign-in and sign-up are one flow: a right code for an address nobody has used yet creates the
account. What the rules protect against, and how:

- guessing: 6-digit codes live 10 minutes, 5 tries each; a resend replaces the code but keeps
  the tries already spent; 10 failures by one Telegram account for one address in an hour lock
  that account out of it, across codes, and 100 by everyone together lock the address;
- malicious lockout: the limits a person meets (lockout, cooldown, sends) count per address and
  Telegram account, so knowing someone's address is not enough to lock them out or spend their
  codes; the per-address totals are a backstop only many accounts together can reach;
- racing: whatever a request spends (a try, a place under a send cap) is written as it is
  checked, under a lock on what it counts, so concurrent requests (in one process or several)
  cannot all pass the same check;
- crashes: a right code is used up in the transaction that stores the link it produced (the
  identity's `commit`), so a crash between the two leaves the code usable, never half-used;
- cost: sends are capped per address, per Telegram user and in total before anything is
  delivered, because every SMS is paid for and SMS pumping is a real attack;
- leaks: codes are stored only as MACs bound to their challenge, addresses only encrypted and
  as blind indexes, and nothing here logs either.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from bot.auth import codes
from bot.auth.base import (
    AuthError,
    BackendUnavailable,
    Challenge,
    CodeExpired,
    LinkRef,
    RateLimited,
    Requester,
    TooManyAttempts,
    UnsupportedIdentifier,
    VerifiedIdentity,
    WrongCode,
)
from bot.auth.delivery import DeliveryChannel, DeliveryError
from bot.auth.limits import LocalLimits
from bot.identifiers import Identifier, IdentifierKind
from storage.engine import SessionFactory
from storage.local_auth import (
    Accepted,
    Expired,
    Keys,
    LocalAuthStore,
    NewAccount,
    NewChallenge,
    OutOfTries,
    Reservation,
    Reserved,
    SendRefusal,
    TooSoon,
    Wrong,
)
from storage.repos import Work
from storage.vault import Vault

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LocalBackend:
    name = "local"

    def __init__(
        self,
        sessions: SessionFactory,
        vault: Vault,
        channels: Sequence[DeliveryChannel],
        *,
        app_name: str,
        limits: LocalLimits = LocalLimits(),  # noqa: B008 - frozen, so one shared default is safe
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._store = LocalAuthStore(sessions, vault, limits)
        self._vault = vault
        self._channels = tuple(channels)
        self._app_name = app_name
        self._limits = limits
        self._clock = clock
        self._pruned_at: datetime | None = None

    def supports(self, kind: IdentifierKind) -> bool:
        return any(kind in channel.kinds for channel in self._channels)

    async def start(self, identifier: Identifier, who: Requester) -> Challenge:
        channel = self._channel_for(identifier.kind)
        now = self._clock()
        keys = self._keys(identifier, who)
        challenge_id = "lch_" + secrets.token_urlsafe(18)
        code = codes.new_code()
        await self._prune(now)
        reserved = _reserved(
            await self._store.reserve_first_send(
                keys,
                now,
                NewChallenge(
                    id=challenge_id,
                    code_mac=codes.code_mac(self._vault, challenge_id, keys.identifier, code),
                    expires_at=now + self._limits.code_ttl,
                ),
            ),
            now,
        )
        await self._deliver(
            channel, identifier, code, reserved.reservation, new_challenge_id=challenge_id
        )
        log.info("Local backend sent a %s code by %s", identifier.kind, channel.name)
        # The chat only waits for its newest code; older live codes of the same person for the
        # same address would be extra targets for guessing and nothing else. They go in the
        # transaction that stores the chat's step.
        others = self._store.drop_other_challenges(keys, keep=challenge_id)
        return self._challenge(challenge_id, identifier, channel, now, reserved, commit=others)

    async def resend(self, challenge: Challenge, who: Requester) -> Challenge:
        """Send a new code for the same challenge; the old code stops working once it is sent.

        The tries already spent stay spent. An expired challenge cannot be revived: the chat
        starts a new one (`start`), which the same caps and cooldown govern.
        """
        challenge_id = self._challenge_id(challenge)
        identifier = challenge.identifier
        channel = self._channel_for(identifier.kind, preferred=challenge.channel)
        now = self._clock()
        keys = self._keys(identifier, who)
        code = codes.new_code()
        reserved = _reserved(await self._store.reserve_resend(challenge_id, keys, now), now)
        # The new code replaces the old one only once it has left: a failed delivery must not
        # take away the code the user already has.
        await self._deliver(channel, identifier, code, reserved.reservation, new_challenge_id=None)
        swapped = await self._store.replace_code(
            challenge_id,
            codes.code_mac(self._vault, challenge_id, keys.identifier, code),
            now,
            expires_at=now + self._limits.code_ttl,
        )
        if not swapped:  # used or erased while the new code was on its way
            raise CodeExpired()
        log.info("Local backend resent a %s code by %s", identifier.kind, channel.name)
        return self._challenge(challenge_id, identifier, channel, now, reserved)

    async def verify(self, challenge: Challenge, code: str, who: Requester) -> VerifiedIdentity:
        """Check a code; a right one signs in, or signs up a new address.

        The right code is used up only when the identity's `commit` runs, in the transaction
        that stores the link: until then the same code can be checked again (each check spends
        a try) and gives the same account and the same answer to "was this the sign-up".

        A code that uses up the last try raises TooManyAttempts(None) rather than
        WrongCode(0): telling someone "0 tries left" invites a try that cannot succeed.
        TooManyAttempts(None) means this code is spent and a new sign-in can start at once;
        TooManyAttempts(retry_at) means the address is locked for this person until then.
        """
        challenge_id = self._challenge_id(challenge)
        now = self._clock()
        keys = self._keys(challenge.identifier, who)
        # Something that is not a code can never match; it still costs a try, so probing the
        # endpoint with junk gains nothing. The chat checks the shape first (`codes.normalise`).
        typed = codes.normalise(code) or ""
        offered = codes.code_mac(self._vault, challenge_id, keys.identifier, typed)
        identifier = challenge.identifier
        account = NewAccount("usr_" + secrets.token_hex(12), identifier.kind, identifier.value)
        judged = await self._store.attempt(challenge_id, keys, offered, now, account)
        if not isinstance(judged, Accepted):
            raise _code_refused(judged, now)
        account_id = judged.account_id
        log.info(
            "Local backend %s account %s", "created" if judged.created else "signed in", account_id
        )
        return VerifiedIdentity(
            auth_user_id=account_id,
            identifier=identifier,
            created=judged.created,
            commit=self._store.consume(challenge_id, keys, account_id, now),
        )

    async def complete(
        self, challenge: Challenge, fields: Mapping[str, str], who: Requester
    ) -> VerifiedIdentity:
        """Never needed: this backend asks for no more fields, so nothing is pending here and
        the chat is told to start over."""
        raise CodeExpired()

    async def revoke(self, link: LinkRef) -> None:
        """Nothing to end: this backend issues no sessions, the link itself is the sign-in."""

    async def erase(self, link: LinkRef) -> None:
        """Forget this person's codes in flight, and the account unless another Telegram user
        is linked to it.

        Send and failure events stay until they age out: they hold only blind indexes, and
        forgetting them would let anyone reset the caps by asking to be erased.
        """
        keys = Keys(
            identifier=self._identifier_index(link.identifier),
            requester=self._requester_index(link.telegram_user_id),
        )
        await self._store.erase(
            link.auth_user_id, keys, telegram_user_id=link.telegram_user_id, backend=self.name
        )

    # -- sending --------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connections channels keep (SMTP) on shutdown."""
        for channel in self._channels:
            aclose = getattr(channel, "aclose", None)  # channels holding connections have one
            if aclose is not None:
                await aclose()

    async def _deliver(
        self,
        channel: DeliveryChannel,
        identifier: Identifier,
        code: str,
        reservation: Reservation,
        *,
        new_challenge_id: str | None,
    ) -> None:
        """Send the code outside any transaction: a slow server must not hold a database lock."""
        try:
            await channel.send_code(
                identifier, code, app_name=self._app_name, ttl_minutes=self._limits.ttl_minutes
            )
        except DeliveryError as exc:
            # A passing failure is ours, not the user's, so it costs them nothing. A lasting one
            # (a refused address) would fail the same way again: it is paced like a send for
            # that address and person, but costs nobody else a place in the total cap.
            given_back = (
                reservation.personal + reservation.total if exc.temporary else reservation.total
            )
            await self._store.cancel_send(given_back, new_challenge_id)
            # The channel logged the reason (masked); repeating it here could only leak more.
            log.warning(
                "Local backend could not deliver a code by %s (%s)",
                channel.name,
                "temporary" if exc.temporary else "lasting",
            )
            raise BackendUnavailable("code delivery failed", retry_after=exc.retry_after) from exc

    # -- housekeeping ---------------------------------------------------------------------

    async def _prune(self, now: datetime) -> None:
        """Delete expired challenges and events older than every window, now and then."""
        if self._pruned_at is not None and now - self._pruned_at < self._limits.prune_every:
            return
        self._pruned_at = now
        await self._store.prune(now)

    def _channel_for(self, kind: IdentifierKind, preferred: str | None = None) -> DeliveryChannel:
        able = [channel for channel in self._channels if kind in channel.kinds]
        if not able:
            raise UnsupportedIdentifier(kind)
        return next((channel for channel in able if channel.name == preferred), able[0])

    def _challenge(
        self,
        challenge_id: str,
        identifier: Identifier,
        channel: DeliveryChannel,
        sent_at: datetime,
        reserved: Reserved,
        *,
        commit: Work | None = None,
    ) -> Challenge:
        """What the chat keeps of a code just sent: only the challenge id, never the code."""
        return Challenge(
            backend=self.name,
            identifier=identifier,
            channel=channel.name,
            expires_at=sent_at + self._limits.code_ttl,
            resend_at=reserved.next_send_at,
            state={"id": challenge_id},
            commit=commit,
        )

    def _challenge_id(self, challenge: Challenge) -> str:
        challenge_id = challenge.state.get("id")
        if challenge.backend != self.name or not isinstance(challenge_id, str):
            raise CodeExpired()
        return challenge_id

    def _keys(self, identifier: Identifier, who: Requester) -> Keys:
        return Keys(
            identifier=self._identifier_index(identifier),
            requester=self._requester_index(who.telegram_user_id),
        )

    def _identifier_index(self, identifier: Identifier) -> str:
        # The same namespaces as the link store, so one address has one index everywhere.
        return self._vault.index(identifier.kind, identifier.value)

    def _requester_index(self, telegram_user_id: int) -> str:
        return self._vault.index("telegram", str(telegram_user_id))


def _code_refused(judged: Wrong | Expired | OutOfTries, now: datetime) -> AuthError:
    """What the person is told about a code that did not sign them in."""
    if not isinstance(judged, Wrong):
        return _refused(judged, now)
    if judged.locked_until is not None:
        log.warning("Local backend lockout until %s", judged.locked_until.isoformat())
        return TooManyAttempts(judged.locked_until)
    log.info("Local backend refused a wrong code, %d tries left", judged.tries_left)
    return WrongCode(judged.tries_left) if judged.tries_left > 0 else TooManyAttempts(None)


def _reserved(outcome: Reserved | SendRefusal, now: datetime) -> Reserved:
    if isinstance(outcome, Reserved):
        return outcome
    raise _refused(outcome, now)


def _refused(refusal: SendRefusal, now: datetime) -> AuthError:
    if isinstance(refusal, TooSoon):
        return RateLimited((refusal.until - now).total_seconds())
    if isinstance(refusal, OutOfTries):
        return TooManyAttempts(refusal.until)
    # Used, expired, pruned, erased, or asked about by someone else or for another address:
    # all of them mean the same to the person, who needs a new code.
    return CodeExpired()
