"""The embedded auth backend: one-time codes sent by our own channels, checked in our database.

Sign-in and sign-up are one flow: a right code for an address nobody has used yet creates the
account. What the rules protect against, and how:

- guessing: 6-digit codes live 10 minutes, 5 tries each; a resend replaces the code but keeps
  the tries already spent, and 10 failures per address in an hour lock it, across codes;
- racing: whatever a request spends (a try, the code itself, a place under a send cap) is
  written before or as it is checked, in one short transaction, so concurrent requests cannot
  all pass the same check;
- cost: sends are capped per address, per Telegram user and in total before anything is
  delivered, because every SMS is paid for and SMS pumping is a real attack;
- leaks: codes are stored only as MACs bound to their challenge, addresses only encrypted and
  as blind indexes, and nothing here logs either.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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
from bot.auth.limits import (
    FAILURE,
    SEND_BY_USER,
    SEND_TO_IDENTIFIER,
    SEND_TOTAL,
    TOTAL_KEY,
    LocalLimits,
    Windows,
)
from bot.identifiers import Identifier, IdentifierKind
from storage.models import LocalAccount, LocalChallenge
from storage.vault import Vault

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Keys:
    """Blind indexes of who is asking and of the address the code goes to."""

    identifier: str
    requester: str


@dataclass(frozen=True, slots=True)
class _Reservation:
    """The send events written before a delivery, so a failed one can be given back."""

    now: datetime
    personal: tuple[int, ...]  # counted against the address and the Telegram user
    total: tuple[int, ...]  # counted against everyone's cap


class LocalBackend:
    name = "local"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        vault: Vault,
        channels: Sequence[DeliveryChannel],
        *,
        app_name: str,
        limits: LocalLimits = LocalLimits(),  # noqa: B008 - frozen, so one shared default is safe
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._sessions = sessions
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
        async with self._sessions() as session:
            await self._prune(session, now)
            async with session.begin():
                windows = Windows(session, now)
                reservation = await self._reserve_send(windows, keys)
                resend_at = await self._next_send_at(windows, keys)
                session.add(
                    LocalChallenge(
                        id=challenge_id,
                        identifier_index=keys.identifier,
                        requester_index=keys.requester,
                        code_mac=codes.code_mac(self._vault, challenge_id, keys.identifier, code),
                        attempts=0,
                        sends=1,
                        created_at=now,
                        sent_at=now,
                        expires_at=now + self._limits.code_ttl,
                    )
                )
            await self._deliver(
                session, channel, identifier, code, reservation, new_challenge_id=challenge_id
            )
            async with session.begin():
                # The chat only waits for its newest code; older live codes of the same person
                # for the same address would be extra targets for guessing and nothing else.
                await session.execute(
                    delete(LocalChallenge).where(
                        LocalChallenge.identifier_index == keys.identifier,
                        LocalChallenge.requester_index == keys.requester,
                        LocalChallenge.id != challenge_id,
                    )
                )
        log.info("Local backend sent a %s code by %s", identifier.kind, channel.name)
        return Challenge(
            backend=self.name,
            identifier=identifier,
            channel=channel.name,
            expires_at=now + self._limits.code_ttl,
            resend_at=resend_at,
            state={"id": challenge_id},
        )

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
        async with self._sessions() as session:
            async with session.begin():
                await self._check_resendable(session, challenge_id, keys, now)
                windows = Windows(session, now)
                reservation = await self._reserve_send(windows, keys)
                resend_at = await self._next_send_at(windows, keys)
            # The new code replaces the old one only once it has left: a failed delivery must
            # not take away the code the user already has.
            await self._deliver(
                session, channel, identifier, code, reservation, new_challenge_id=None
            )
            async with session.begin():
                swapped = await session.scalar(
                    update(LocalChallenge)
                    .where(LocalChallenge.id == challenge_id, LocalChallenge.consumed_at.is_(None))
                    .values(
                        code_mac=codes.code_mac(self._vault, challenge_id, keys.identifier, code),
                        sends=LocalChallenge.sends + 1,
                        sent_at=now,
                        expires_at=now + self._limits.code_ttl,
                    )
                    .returning(LocalChallenge.id)
                    .execution_options(synchronize_session=False)
                )
        if swapped is None:  # used or erased while the new code was on its way
            raise CodeExpired()
        log.info("Local backend resent a %s code by %s", identifier.kind, channel.name)
        return Challenge(
            backend=self.name,
            identifier=identifier,
            channel=channel.name,
            expires_at=now + self._limits.code_ttl,
            resend_at=resend_at,
            state={"id": challenge_id},
        )

    async def verify(self, challenge: Challenge, code: str, who: Requester) -> VerifiedIdentity:
        """Check a code; the first right one signs in, or signs up a new address.

        A code that uses up the last try raises TooManyAttempts(None) rather than
        WrongCode(0): telling someone "0 tries left" invites a try that cannot succeed.
        TooManyAttempts(None) means this code is spent and a new sign-in can start at once;
        TooManyAttempts(retry_at) means the address is locked until then.
        """
        challenge_id = self._challenge_id(challenge)
        now = self._clock()
        keys = self._keys(challenge.identifier, who)
        # Something that is not a code can never match; it still costs a try, so probing the
        # endpoint with junk gains nothing. The chat checks the shape first (`codes.normalise`).
        typed = codes.normalise(code) or ""
        offered = codes.code_mac(self._vault, challenge_id, keys.identifier, typed)
        async with self._sessions() as session:
            async with session.begin():
                refusal = await self._attempt(session, challenge_id, keys, offered, now)
            if refusal is not None:
                raise refusal
            account_id, created = await self._account_for(session, challenge.identifier, keys)
        log.info("Local backend %s account %s", "created" if created else "signed in", account_id)
        return VerifiedIdentity(
            auth_user_id=account_id, identifier=challenge.identifier, created=created
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
        """Forget the account and every code in flight for the address or the person.

        Send and failure events stay until they age out: they hold only blind indexes, and
        forgetting them would let anyone reset the caps by asking to be erased.
        """
        identifier_index = self._identifier_index(link.identifier)
        requester_index = self._requester_index(link.telegram_user_id)
        async with self._sessions() as session, session.begin():
            await session.execute(
                delete(LocalAccount).where(
                    or_(
                        LocalAccount.id == link.auth_user_id,
                        LocalAccount.identifier_index == identifier_index,
                    )
                )
            )
            await session.execute(
                delete(LocalChallenge).where(
                    or_(
                        LocalChallenge.identifier_index == identifier_index,
                        LocalChallenge.requester_index == requester_index,
                    )
                )
            )

    # -- verification ---------------------------------------------------------------------

    async def _attempt(
        self, session: AsyncSession, challenge_id: str, keys: _Keys, offered: str, now: datetime
    ) -> AuthError | None:
        """Spend one try on the challenge and judge the code, inside the caller's transaction.

        Returns the refusal to raise once the try is committed; raises (rolling the try back)
        when the code was never judged.
        """
        limits = self._limits
        # Taking the try first, conditionally, is what makes concurrent guesses safe: the
        # database lets exactly `tries_per_code` of them through, however many arrive at once.
        claimed = await session.execute(
            update(LocalChallenge)
            .where(
                LocalChallenge.id == challenge_id,
                LocalChallenge.identifier_index == keys.identifier,
                LocalChallenge.requester_index == keys.requester,
                LocalChallenge.consumed_at.is_(None),
                LocalChallenge.attempts < limits.tries_per_code,
                LocalChallenge.expires_at > now,
            )
            .values(attempts=LocalChallenge.attempts + 1)
            .returning(LocalChallenge.attempts, LocalChallenge.code_mac)
            .execution_options(synchronize_session=False)
        )
        row = claimed.one_or_none()
        if row is None:
            raise await self._why_not(session, challenge_id, keys, now)
        attempts, stored = row
        windows = Windows(session, now)
        locked_until = await self._locked_until(windows, keys)
        if locked_until is not None:
            # Locked: not even the right code passes, and the try is given back.
            raise TooManyAttempts(locked_until)
        if Vault.same(stored, offered):
            consumed = await session.scalar(
                update(LocalChallenge)
                .where(
                    LocalChallenge.id == challenge_id,
                    LocalChallenge.consumed_at.is_(None),
                    LocalChallenge.code_mac == stored,
                )
                .values(consumed_at=now)
                .returning(LocalChallenge.id)
                .execution_options(synchronize_session=False)
            )
            # The claim above already holds the row; this second guard makes sure that no
            # isolation level, now or later, can ever turn one code into two sign-ins.
            if consumed is None:
                raise CodeExpired()
            # Proof of possession: earlier typos for this address no longer count towards
            # its lockout (NIST 800-63B-4 §3.2.2).
            await windows.clear(FAILURE, keys.identifier)
            return None
        await windows.record([(FAILURE, keys.identifier)])
        locked_until = await self._locked_until(windows, keys)
        if locked_until is not None:
            log.warning("Local backend locked an address until %s", locked_until.isoformat())
            return TooManyAttempts(locked_until)
        tries_left = limits.tries_per_code - attempts
        log.info("Local backend refused a wrong code, %d tries left", tries_left)
        return WrongCode(tries_left) if tries_left > 0 else TooManyAttempts(None)

    async def _why_not(
        self, session: AsyncSession, challenge_id: str, keys: _Keys, now: datetime
    ) -> AuthError:
        """Why a try could not be taken: the code is spent, used, expired or not this one."""
        row = (
            await session.execute(
                select(LocalChallenge.consumed_at, LocalChallenge.attempts).where(
                    LocalChallenge.id == challenge_id,
                    LocalChallenge.identifier_index == keys.identifier,
                    LocalChallenge.requester_index == keys.requester,
                )
            )
        ).one_or_none()
        if (
            row is not None
            and row.consumed_at is None
            and row.attempts >= self._limits.tries_per_code
        ):
            return TooManyAttempts(await self._locked_until(Windows(session, now), keys))
        # Used, expired, pruned, erased, or asked about by someone else or for another address:
        # all of them mean the same to the person, who needs a new code.
        return CodeExpired()

    async def _account_for(
        self, session: AsyncSession, identifier: Identifier, keys: _Keys
    ) -> tuple[str, bool]:
        """The account of the address, created when there is none (the sign-up)."""
        account_id = "usr_" + secrets.token_hex(12)
        try:
            async with session.begin():
                existing = await session.scalar(
                    select(LocalAccount.id).where(LocalAccount.identifier_index == keys.identifier)
                )
                if existing is not None:
                    return existing, False
                session.add(
                    LocalAccount(
                        id=account_id,
                        identifier_kind=identifier.kind,
                        identifier_index=keys.identifier,
                        identifier_enc=self._vault.encrypt(identifier.value),
                        created_at=self._clock(),
                    )
                )
                await session.flush()
        except IntegrityError:
            # Another first verification of the same address won the unique index: its
            # account is the one, and this verification is a sign-in to it.
            async with session.begin():
                winner = (
                    await session.execute(
                        select(LocalAccount.id).where(
                            LocalAccount.identifier_index == keys.identifier
                        )
                    )
                ).scalar_one()
            return winner, False
        return account_id, True

    # -- sending --------------------------------------------------------------------------

    async def _check_resendable(
        self, session: AsyncSession, challenge_id: str, keys: _Keys, now: datetime
    ) -> None:
        row = (
            await session.execute(
                select(
                    LocalChallenge.consumed_at,
                    LocalChallenge.attempts,
                    LocalChallenge.expires_at,
                ).where(
                    LocalChallenge.id == challenge_id,
                    LocalChallenge.identifier_index == keys.identifier,
                    LocalChallenge.requester_index == keys.requester,
                )
            )
        ).one_or_none()
        if row is None or row.consumed_at is not None:
            raise CodeExpired()
        if row.attempts >= self._limits.tries_per_code:
            # A new code would not bring the tries back, so sending one would only cost money.
            raise TooManyAttempts(await self._locked_until(Windows(session, now), keys))
        if row.expires_at <= now:
            raise CodeExpired()

    async def _reserve_send(self, windows: Windows, keys: _Keys) -> _Reservation:
        """Count a send against every cap before it happens, or refuse it.

        The events are written first and the caps read after, in the same transaction, so
        concurrent requests see each other's reservations instead of all passing one check.
        """
        limits = self._limits
        locked_until = await self._locked_until(windows, keys)
        if locked_until is not None:
            # Every code would be refused until then; sending one would only cost money.
            raise TooManyAttempts(locked_until)
        ids = await windows.record(
            [
                (SEND_TO_IDENTIFIER, keys.identifier),
                (SEND_BY_USER, keys.requester),
                (SEND_TOTAL, TOTAL_KEY),
            ]
        )
        window = limits.send_window
        waits = [
            await self._cooldown_until(windows, keys, pending=1),
            await windows.room_at(
                SEND_TO_IDENTIFIER,
                keys.identifier,
                window=window,
                cap=limits.sends_per_identifier,
                pending=1,
            ),
            await windows.room_at(
                SEND_BY_USER, keys.requester, window=window, cap=limits.sends_per_user, pending=1
            ),
            await windows.room_at(
                SEND_TOTAL, TOTAL_KEY, window=window, cap=limits.sends_total, pending=1
            ),
        ]
        blocked_until = max((wait for wait in waits if wait is not None), default=None)
        if blocked_until is not None:
            raise RateLimited((blocked_until - windows.now).total_seconds())
        return _Reservation(now=windows.now, personal=tuple(ids[:2]), total=tuple(ids[2:]))

    async def _next_send_at(self, windows: Windows, keys: _Keys) -> datetime:
        """When the person may ask for the next code, counting the send just reserved."""
        limits = self._limits
        waits = [
            await self._cooldown_until(windows, keys, pending=0),
            await windows.room_at(
                SEND_TO_IDENTIFIER,
                keys.identifier,
                window=limits.send_window,
                cap=limits.sends_per_identifier,
            ),
            await windows.room_at(
                SEND_BY_USER, keys.requester, window=limits.send_window, cap=limits.sends_per_user
            ),
        ]
        return max((wait for wait in waits if wait is not None), default=windows.now)

    async def _cooldown_until(
        self, windows: Windows, keys: _Keys, *, pending: int
    ) -> datetime | None:
        sends, newest = await windows.last(
            SEND_TO_IDENTIFIER, keys.identifier, window=self._limits.send_window, pending=pending
        )
        if newest is None:
            return None
        ready = newest + self._limits.cooldown_after(sends)
        return ready if ready > windows.now else None

    async def _locked_until(self, windows: Windows, keys: _Keys) -> datetime | None:
        return await windows.room_at(
            FAILURE,
            keys.identifier,
            window=self._limits.lockout_window,
            cap=self._limits.lockout_failures,
        )

    async def _deliver(
        self,
        session: AsyncSession,
        channel: DeliveryChannel,
        identifier: Identifier,
        code: str,
        reservation: _Reservation,
        *,
        new_challenge_id: str | None,
    ) -> None:
        """Send the code outside any transaction: a slow server must not hold a database lock."""
        try:
            await channel.send_code(
                identifier, code, app_name=self._app_name, ttl_minutes=self._limits.ttl_minutes
            )
        except DeliveryError as exc:
            async with session.begin():
                windows = Windows(session, reservation.now)
                # A passing failure is ours, not the user's, so it costs them nothing. A lasting
                # one (a refused address) would fail the same way again: it is paced like a send
                # for that address and person, but costs nobody else a place in the total cap.
                if exc.temporary:
                    await windows.forget(reservation.personal + reservation.total)
                else:
                    await windows.forget(reservation.total)
                if new_challenge_id is not None:
                    await session.execute(
                        delete(LocalChallenge).where(LocalChallenge.id == new_challenge_id)
                    )
            # The channel logged the reason (masked); repeating it here could only leak more.
            log.warning(
                "Local backend could not deliver a code by %s (%s)",
                channel.name,
                "temporary" if exc.temporary else "lasting",
            )
            raise BackendUnavailable("code delivery failed", retry_after=exc.retry_after) from exc

    # -- housekeeping ---------------------------------------------------------------------

    async def _prune(self, session: AsyncSession, now: datetime) -> None:
        """Delete expired challenges and events older than every window, now and then."""
        if self._pruned_at is not None and now - self._pruned_at < self._limits.prune_every:
            return
        self._pruned_at = now
        async with session.begin():
            await session.execute(delete(LocalChallenge).where(LocalChallenge.expires_at <= now))
            await Windows(session, now).prune(
                max(self._limits.lockout_window, self._limits.send_window)
            )

    def _channel_for(self, kind: IdentifierKind, preferred: str | None = None) -> DeliveryChannel:
        able = [channel for channel in self._channels if kind in channel.kinds]
        if not able:
            raise UnsupportedIdentifier(kind)
        return next((channel for channel in able if channel.name == preferred), able[0])

    def _challenge_id(self, challenge: Challenge) -> str:
        challenge_id = challenge.state.get("id")
        if challenge.backend != self.name or not isinstance(challenge_id, str):
            raise CodeExpired()
        return challenge_id

    def _keys(self, identifier: Identifier, who: Requester) -> _Keys:
        return _Keys(
            identifier=self._identifier_index(identifier),
            requester=self._requester_index(who.telegram_user_id),
        )

    def _identifier_index(self, identifier: Identifier) -> str:
        # The same namespaces as the link store, so one address has one index everywhere.
        return self._vault.index(identifier.kind, identifier.value)

    def _requester_index(self, telegram_user_id: int) -> str:
        return self._vault.index("telegram", str(telegram_user_id))
