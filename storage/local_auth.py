"""What the embedded auth backend keeps: accounts, one-time code challenges, and the send and
failure events its limits count.

Each public method is one short transaction. Whatever a request spends (a try, the code itself,
a place under a send cap) is written before or as it is checked inside that transaction, so
concurrent requests cannot all pass the same check; a refusal rolls back what the transaction
wrote and comes back as a plain value for the backend to turn into its own error.

Counts live in `local_events` rows keyed by blind indexes, so every replica sharing the
database sees the same numbers and a restart forgets nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.engine import SessionFactory
from storage.models import LocalAccount, LocalChallenge, LocalEvent
from storage.vault import Vault

# Event kinds. A send writes one row per cap it counts against.
SEND_TO_IDENTIFIER = "send_id"
SEND_BY_USER = "send_user"
SEND_TOTAL = "send_all"
FAILURE = "failure"  # a wrong code, keyed by the identifier it was sent to
TOTAL_KEY = "*"


class Limits(Protocol):
    """The numbers the store counts against; the backend's limits provide them."""

    @property
    def tries_per_code(self) -> int: ...
    @property
    def lockout_failures(self) -> int: ...
    @property
    def lockout_window(self) -> timedelta: ...
    @property
    def sends_per_identifier(self) -> int: ...
    @property
    def sends_per_user(self) -> int: ...
    @property
    def sends_total(self) -> int: ...
    @property
    def send_window(self) -> timedelta: ...
    def cooldown_after(self, sends: int) -> timedelta: ...


@dataclass(frozen=True, slots=True)
class Keys:
    """Blind indexes of the address the code goes to and of the Telegram user asking."""

    identifier: str
    requester: str


@dataclass(frozen=True, slots=True)
class NewChallenge:
    id: str
    code_mac: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Reservation:
    """The send events written before a delivery, so a failed one can be given back."""

    personal: tuple[int, ...]  # counted against the address and the Telegram user
    total: tuple[int, ...]  # counted against everyone's cap


@dataclass(frozen=True, slots=True)
class Reserved:
    reservation: Reservation
    next_send_at: datetime  # when the person may ask again, counting this send


@dataclass(frozen=True, slots=True)
class Accepted:
    """The right code: it is used up and the address's earlier failures are forgiven."""


@dataclass(frozen=True, slots=True)
class Wrong:
    """A wrong code, its try and failure kept; `locked_until` is set when it locked the address."""

    tries_left: int
    locked_until: datetime | None


@dataclass(frozen=True, slots=True)
class Expired:
    """Used, expired, pruned, erased, or asked about by someone else or for another address."""


@dataclass(frozen=True, slots=True)
class OutOfTries:
    """The address is locked until `until`, or (None) this code has no tries left."""

    until: datetime | None


@dataclass(frozen=True, slots=True)
class TooSoon:
    """A cooldown or a send cap is full until `until`."""

    until: datetime


Attempt = Accepted | Wrong | Expired | OutOfTries
SendRefusal = Expired | OutOfTries | TooSoon


class _Refused(Exception):
    """Raised inside a transaction to roll it back; carries what the caller is told."""

    def __init__(self, refusal: SendRefusal) -> None:
        super().__init__()
        self.refusal = refusal


class LocalAuthStore:
    """The embedded backend's tables, one transaction per method, counted against `limits`."""

    def __init__(self, sessions: SessionFactory, vault: Vault, limits: Limits) -> None:
        self._sessions = sessions
        self._vault = vault
        self._limits = limits

    # -- sending --------------------------------------------------------------------------

    async def reserve_first_send(
        self, keys: Keys, now: datetime, challenge: NewChallenge
    ) -> Reserved | SendRefusal:
        """Count a first send against every cap and store its challenge, or refuse both."""
        async with self._sessions() as session:
            try:
                async with session.begin():
                    reserved = await self._reserve(_Windows(session, now), keys)
                    session.add(
                        LocalChallenge(
                            id=challenge.id,
                            identifier_index=keys.identifier,
                            requester_index=keys.requester,
                            code_mac=challenge.code_mac,
                            attempts=0,
                            sends=1,
                            created_at=now,
                            sent_at=now,
                            expires_at=challenge.expires_at,
                        )
                    )
            except _Refused as refused:
                return refused.refusal
        return reserved

    async def reserve_resend(
        self, challenge_id: str, keys: Keys, now: datetime
    ) -> Reserved | SendRefusal:
        """Count a resend against every cap, if the challenge can still take a new code."""
        async with self._sessions() as session:
            try:
                async with session.begin():
                    windows = _Windows(session, now)
                    await self._check_resendable(windows, challenge_id, keys)
                    return await self._reserve(windows, keys)
            except _Refused as refused:
                return refused.refusal

    async def cancel_send(self, event_ids: Sequence[int], challenge_id: str | None = None) -> None:
        """Give back send events of a failed delivery, and drop the challenge it was for."""
        async with self._sessions() as session, session.begin():
            if event_ids:
                await session.execute(delete(LocalEvent).where(LocalEvent.id.in_(event_ids)))
            if challenge_id is not None:
                await session.execute(
                    delete(LocalChallenge).where(LocalChallenge.id == challenge_id)
                )

    async def drop_other_challenges(self, keys: Keys, keep: str) -> None:
        """Delete every challenge of this person for this address but `keep`."""
        async with self._sessions() as session, session.begin():
            await session.execute(
                delete(LocalChallenge).where(
                    LocalChallenge.identifier_index == keys.identifier,
                    LocalChallenge.requester_index == keys.requester,
                    LocalChallenge.id != keep,
                )
            )

    async def replace_code(
        self, challenge_id: str, code_mac: str, now: datetime, expires_at: datetime
    ) -> bool:
        """Put a newly sent code in place of the old one; False when the challenge was used
        or deleted meanwhile."""
        async with self._sessions() as session, session.begin():
            swapped = await session.scalar(
                update(LocalChallenge)
                .where(LocalChallenge.id == challenge_id, LocalChallenge.consumed_at.is_(None))
                .values(
                    code_mac=code_mac,
                    sends=LocalChallenge.sends + 1,
                    sent_at=now,
                    expires_at=expires_at,
                )
                .returning(LocalChallenge.id)
                .execution_options(synchronize_session=False)
            )
        return swapped is not None

    async def _check_resendable(self, windows: _Windows, challenge_id: str, keys: Keys) -> None:
        row = (
            await windows.session.execute(
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
            raise _Refused(Expired())
        if row.attempts >= self._limits.tries_per_code:
            # A new code would not bring the tries back, so sending one would only cost money.
            raise _Refused(OutOfTries(await self._locked_until(windows, keys)))
        if row.expires_at <= windows.now:
            raise _Refused(Expired())

    async def _reserve(self, windows: _Windows, keys: Keys) -> Reserved:
        """Count a send against every cap before it happens, or refuse it.

        The events are written first and the caps read after, in the same transaction, so
        concurrent requests see each other's reservations instead of all passing one check.
        """
        limits = self._limits
        locked_until = await self._locked_until(windows, keys)
        if locked_until is not None:
            # Every code would be refused until then; sending one would only cost money.
            raise _Refused(OutOfTries(locked_until))
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
            raise _Refused(TooSoon(blocked_until))
        reservation = Reservation(personal=tuple(ids[:2]), total=tuple(ids[2:]))
        return Reserved(reservation, await self._next_send_at(windows, keys))

    async def _next_send_at(self, windows: _Windows, keys: Keys) -> datetime:
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
        self, windows: _Windows, keys: Keys, *, pending: int
    ) -> datetime | None:
        sends, newest = await windows.last(
            SEND_TO_IDENTIFIER, keys.identifier, window=self._limits.send_window, pending=pending
        )
        if newest is None:
            return None
        ready = newest + self._limits.cooldown_after(sends)
        return ready if ready > windows.now else None

    # -- verification ---------------------------------------------------------------------

    async def attempt(
        self, challenge_id: str, keys: Keys, offered_mac: str, now: datetime
    ) -> Attempt:
        """Spend one try on the challenge and judge the code.

        The right code is used up; a wrong one keeps its try and counts a failure; any other
        refusal (locked, spent, gone) gives the try back.
        """
        async with self._sessions() as session:
            try:
                async with session.begin():
                    return await self._attempt(
                        _Windows(session, now), challenge_id, keys, offered_mac
                    )
            except _Refused as refused:
                refusal = refused.refusal
                assert not isinstance(refusal, TooSoon)  # judging a code checks no send cap
                return refusal

    async def _attempt(
        self, windows: _Windows, challenge_id: str, keys: Keys, offered: str
    ) -> Accepted | Wrong:
        session, now, limits = windows.session, windows.now, self._limits
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
            raise _Refused(await self._why_not(windows, challenge_id, keys))
        attempts, stored = row
        locked_until = await self._locked_until(windows, keys)
        if locked_until is not None:
            # Locked: not even the right code passes, and the try is given back.
            raise _Refused(OutOfTries(locked_until))
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
                raise _Refused(Expired())
            # Proof of possession: earlier typos for this address no longer count towards
            # its lockout (NIST 800-63B-4 §3.2.2).
            await windows.clear(FAILURE, keys.identifier)
            return Accepted()
        await windows.record([(FAILURE, keys.identifier)])
        return Wrong(
            tries_left=limits.tries_per_code - attempts,
            locked_until=await self._locked_until(windows, keys),
        )

    async def _why_not(
        self, windows: _Windows, challenge_id: str, keys: Keys
    ) -> Expired | OutOfTries:
        """Why a try could not be taken: the code is spent, used, expired or not this one."""
        row = (
            await windows.session.execute(
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
            return OutOfTries(await self._locked_until(windows, keys))
        return Expired()

    async def _locked_until(self, windows: _Windows, keys: Keys) -> datetime | None:
        return await windows.room_at(
            FAILURE,
            keys.identifier,
            window=self._limits.lockout_window,
            cap=self._limits.lockout_failures,
        )

    # -- accounts -------------------------------------------------------------------------

    async def account_for(
        self, keys: Keys, kind: str, value: str, *, new_id: str, now: datetime
    ) -> tuple[str, bool]:
        """The id of the address's account, and whether it was created now (the sign-up)."""
        async with self._sessions() as session:
            try:
                async with session.begin():
                    existing = await session.scalar(
                        select(LocalAccount.id).where(
                            LocalAccount.identifier_index == keys.identifier
                        )
                    )
                    if existing is not None:
                        return existing, False
                    session.add(
                        LocalAccount(
                            id=new_id,
                            identifier_kind=kind,
                            identifier_index=keys.identifier,
                            identifier_enc=self._vault.encrypt(value),
                            created_at=now,
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
        return new_id, True

    async def erase(self, account_id: str, keys: Keys) -> None:
        """Forget the account and every code in flight for the address or the person.

        Send and failure events stay until they age out: they hold only blind indexes, and
        forgetting them would let anyone reset the caps by asking to be erased.
        """
        async with self._sessions() as session, session.begin():
            await session.execute(
                delete(LocalAccount).where(
                    or_(
                        LocalAccount.id == account_id,
                        LocalAccount.identifier_index == keys.identifier,
                    )
                )
            )
            await session.execute(
                delete(LocalChallenge).where(
                    or_(
                        LocalChallenge.identifier_index == keys.identifier,
                        LocalChallenge.requester_index == keys.requester,
                    )
                )
            )

    # -- housekeeping ---------------------------------------------------------------------

    async def prune(self, now: datetime) -> None:
        """Delete expired challenges and events older than every window."""
        async with self._sessions() as session, session.begin():
            await session.execute(delete(LocalChallenge).where(LocalChallenge.expires_at <= now))
            await _Windows(session, now).prune(
                max(self._limits.lockout_window, self._limits.send_window)
            )


class _Windows:
    """Sliding-window counts, read and written inside the caller's transaction at `now`."""

    def __init__(self, session: AsyncSession, now: datetime) -> None:
        self.session = session
        self.now = now

    async def record(self, entries: Sequence[tuple[str, str]]) -> list[int]:
        """Write one event per (kind, key) at `now`; returns their ids so they can be undone."""
        rows = [LocalEvent(kind=kind, key=key, at=self.now) for kind, key in entries]
        self.session.add_all(rows)
        await self.session.flush()
        return [row.id for row in rows]

    async def room_at(
        self, kind: str, key: str, *, window: timedelta, cap: int, pending: int = 0
    ) -> datetime | None:
        """When one more event fits under `cap` in the window; None when it fits now.

        `pending` events were recorded at `now` by this transaction for the very thing being
        checked, so they are not counted against it.
        """
        count = await self._count(kind, key, window) - pending
        if count < cap:
            return None
        # The window has room once count - cap + 1 of its oldest events have left it.
        leaves = await self.session.scalar(
            self._in_window(kind, key, window).order_by(LocalEvent.at).offset(count - cap).limit(1)
        )
        return (leaves or self.now) + window

    async def last(
        self, kind: str, key: str, *, window: timedelta, pending: int = 0
    ) -> tuple[int, datetime | None]:
        """How many events the window holds and when the newest was, leaving out `pending`."""
        count = await self._count(kind, key, window) - pending
        if count <= 0:
            return 0, None
        newest = await self.session.scalar(
            self._in_window(kind, key, window)
            .order_by(LocalEvent.at.desc())
            .offset(pending)
            .limit(1)
        )
        return count, newest

    async def clear(self, kind: str, key: str) -> None:
        await self.session.execute(
            delete(LocalEvent).where(LocalEvent.kind == kind, LocalEvent.key == key)
        )

    async def prune(self, older_than: timedelta) -> None:
        await self.session.execute(delete(LocalEvent).where(LocalEvent.at <= self.now - older_than))

    async def _count(self, kind: str, key: str, window: timedelta) -> int:
        count = await self.session.scalar(
            select(func.count())
            .select_from(LocalEvent)
            .where(
                LocalEvent.kind == kind,
                LocalEvent.key == key,
                LocalEvent.at > self.now - window,
            )
        )
        return count or 0

    def _in_window(self, kind: str, key: str, window: timedelta) -> Select[datetime]:
        return select(LocalEvent.at).where(
            LocalEvent.kind == kind,
            LocalEvent.key == key,
            LocalEvent.at > self.now - window,
        )
