"""What the embedded auth backend keeps: accounts, one-time code challenges, and the send and
failure events its limits count.

Each public method is one short transaction. Whatever a request spends (a try, a place under a
send cap) is written before or as it is checked inside that transaction; a refusal rolls back
what the transaction wrote and comes back as a plain value for the backend to turn into its
own error.

Counts are exact at any concurrency and across processes sharing the database, because a
transaction that checks a count and then adds to it first takes a lock on every key it counts
(`_Windows.hold`), so the checks of two requests for the same key never interleave:
- PostgreSQL: transaction-scoped advisory locks (`pg_advisory_xact_lock`) on ids derived from
  the keys, taken in one global order (ascending ids, the all-users total last), so two
  transactions never wait for each other in a cycle. Chosen over counter rows locked with
  FOR UPDATE because the limits are sliding windows over event rows (when a lock lifts depends
  on when the oldest failure leaves the window), which a counter row cannot answer on its own;
  because a key nobody has counted yet needs no row to exist before it can be locked; and
  because the locks end by themselves at commit, at rollback, or with a dropped connection.
- SQLite: it has one writer at a time, so the transaction writes first; that takes the
  database's write lock before anything is read, and every read after it sees the latest counts.

Counts live in `local_events` rows keyed by blind indexes, so every replica sharing the
database sees the same numbers and a restart forgets nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    and_,
    delete,
    false,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.engine import SessionFactory
from storage.models import Link, LocalAccount, LocalChallenge, LocalEvent
from storage.repos import Stale, Work
from storage.vault import Vault

# Event kinds. A send writes one row per cap it counts against.
SEND_TO_IDENTIFIER = "send_id"  # key: the address; requester: the Telegram user who asked
SEND_BY_USER = "send_user"  # key: the Telegram user
SEND_TOTAL = "send_all"  # key: TOTAL_KEY
FAILURE = "failure"  # a wrong code; key: the address; requester: the Telegram user who typed it
TOTAL_KEY = "*"


class Limits(Protocol):
    """The numbers the store counts against; the backend's limits provide them."""

    @property
    def tries_per_code(self) -> int: ...
    @property
    def lockout_failures(self) -> int: ...
    @property
    def lockout_failures_per_identifier(self) -> int: ...
    @property
    def lockout_window(self) -> timedelta: ...
    @property
    def sends_per_identifier_per_user(self) -> int: ...
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
    """The right code. Its try stays spent; the code is used up only by `consume`'s work."""


@dataclass(frozen=True, slots=True)
class Wrong:
    """A wrong code, its try and failure kept; `locked_until` is set when it locked the address
    for this person (or, at the backstop, for everyone)."""

    tries_left: int
    locked_until: datetime | None


@dataclass(frozen=True, slots=True)
class Expired:
    """Used, expired, pruned, erased, or asked about by someone else or for another address."""


@dataclass(frozen=True, slots=True)
class OutOfTries:
    """The address is locked for this person until `until`, or (None) this code has no tries
    left."""

    until: datetime | None


@dataclass(frozen=True, slots=True)
class TooSoon:
    """A cooldown or a send cap is full until `until`."""

    until: datetime


Attempt = Accepted | Wrong | Expired | OutOfTries
SendRefusal = Expired | OutOfTries | TooSoon


class StaleVerification(Stale):
    """What a right code was to make final no longer stands: the code was used by another
    transaction, or the challenge or the account was erased, meanwhile.

    Raised by `consume`'s work inside the transaction that stores the link, so that the whole
    transaction rolls back and no link points at a spent code or a missing account.
    """


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
                    windows = _Windows(session, now)
                    await windows.hold(_identifier_lock(keys), _user_lock(keys))
                    reserved = await self._reserve(windows, keys)
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
                    await windows.hold(_identifier_lock(keys), _user_lock(keys))
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

        The caller holds the address's and the user's locks; the all-users total's is taken
        last, once the person's own caps let the send through and everything else is read, so
        the one lock every send shares is held as briefly as possible.

        Every personal window is read in one query, before this send is recorded (under the
        locks nothing else changes them meanwhile); the exact reads of when a window has room
        again run only for a window that is full.
        """
        limits, window = self._limits, self._limits.send_window
        mine = (SEND_TO_IDENTIFIER, keys.identifier, keys.requester)
        caps: list[tuple[tuple[str, str, str | None], int]] = [
            (mine, limits.sends_per_identifier_per_user),
            ((SEND_TO_IDENTIFIER, keys.identifier, None), limits.sends_per_identifier),
            ((SEND_BY_USER, keys.requester, None), limits.sends_per_user),
        ]
        failures_mine, failures_all, *sends = await windows.tally(
            [
                (FAILURE, keys.identifier, keys.requester, limits.lockout_window),
                (FAILURE, keys.identifier, None, limits.lockout_window),
                *((*counted, window) for counted, _ in caps),
            ]
        )
        if (
            failures_mine[0] >= limits.lockout_failures
            or failures_all[0] >= limits.lockout_failures_per_identifier
        ):
            locked_until = await self._locked_until(windows, keys)
            if locked_until is not None:
                # Every code would be refused until then; sending one would only cost money.
                raise _Refused(OutOfTries(locked_until))
        ids = await windows.record(
            [
                (SEND_TO_IDENTIFIER, keys.identifier, keys.requester),
                (SEND_BY_USER, keys.requester, None),
                (SEND_TOTAL, TOTAL_KEY, None),
            ]
        )
        sent, newest = sends[0]
        # This send against the caps as they were; then the next one, with this one counted.
        blocked_until = _latest(
            [
                self._cooldown_ready(windows.now, sent, newest),
                *[
                    await windows.room_at(kind, key, requester=requester, window=window,
                                          cap=cap, pending=1)
                    if count >= cap
                    else None
                    for ((kind, key, requester), cap), (count, _) in zip(caps, sends, strict=True)
                ],
            ]
        )  # fmt: skip
        if blocked_until is not None:
            raise _Refused(TooSoon(blocked_until))
        next_send_at = (
            _latest(
                [
                    self._cooldown_ready(windows.now, sent + 1, _latest([newest, windows.now])),
                    *[
                        await windows.room_at(kind, key, requester=requester, window=window,
                                              cap=cap)
                        if count + 1 >= cap
                        else None
                        for ((kind, key, requester), cap), (count, _) in zip(caps, sends,
                                                                             strict=True)
                    ],
                ]
            )
            or windows.now
        )  # fmt: skip
        await windows.hold(_TOTAL_LOCK)
        total_full_until = await windows.room_at(
            SEND_TOTAL, TOTAL_KEY, window=limits.send_window, cap=limits.sends_total, pending=1
        )
        if total_full_until is not None:
            raise _Refused(TooSoon(total_full_until))
        return Reserved(Reservation(personal=tuple(ids[:2]), total=tuple(ids[2:])), next_send_at)

    def _cooldown_ready(
        self, now: datetime, sends: int, newest: datetime | None
    ) -> datetime | None:
        """When the cooldown after `sends` sends, the newest at `newest`, is over (None: it is)."""
        if sends <= 0 or newest is None:
            return None
        ready = newest + self._limits.cooldown_after(sends)
        return ready if ready > now else None

    # -- verification ---------------------------------------------------------------------

    async def attempt(
        self, challenge_id: str, keys: Keys, offered_mac: str, now: datetime
    ) -> Attempt:
        """Spend one try on the challenge and judge the code.

        A wrong code keeps its try and counts a failure; the right one keeps its try too, so a
        crash before its link is stored never gives a try back; any other refusal (locked,
        spent, gone) gives the try back.
        """
        async with self._sessions() as session:
            try:
                async with session.begin():
                    windows = _Windows(session, now)
                    await windows.hold(_identifier_lock(keys))
                    return await self._attempt(windows, challenge_id, keys, offered_mac)
            except _Refused as refused:
                refusal = refused.refusal
                assert not isinstance(refusal, TooSoon)  # judging a code checks no send cap
                return refusal

    async def _attempt(
        self, windows: _Windows, challenge_id: str, keys: Keys, offered: str
    ) -> Accepted | Wrong:
        session, limits = windows.session, self._limits
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
                LocalChallenge.expires_at > windows.now,
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
            return Accepted()
        await windows.record([(FAILURE, keys.identifier, keys.requester)])
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
        """Until when this person may not use codes for this address: their own failures, or
        (the backstop) everyone's together."""
        limits = self._limits
        return _latest(
            [
                await windows.room_at(
                    FAILURE,
                    keys.identifier,
                    requester=keys.requester,
                    window=limits.lockout_window,
                    cap=limits.lockout_failures,
                ),
                await windows.room_at(
                    FAILURE,
                    keys.identifier,
                    window=limits.lockout_window,
                    cap=limits.lockout_failures_per_identifier,
                ),
            ]
        )

    def consume(self, challenge_id: str, keys: Keys, account_id: str, now: datetime) -> Work:
        """The work that makes a right code final: run it in the transaction that stores the
        link the code produced, so the code is used up if and only if that link exists.

        It uses the code up (only if nothing else did meanwhile), checks that the account still
        exists, and forgives this person's earlier failures for the address (NIST SP 800-63B
        §3.2.2); everyone else's stay counted. Raises StaleVerification when the code or the
        account is gone, which rolls the whole transaction back.
        """

        async def work(session: AsyncSession) -> None:
            used = await session.scalar(
                update(LocalChallenge)
                .where(
                    LocalChallenge.id == challenge_id,
                    LocalChallenge.identifier_index == keys.identifier,
                    LocalChallenge.requester_index == keys.requester,
                    LocalChallenge.consumed_at.is_(None),
                )
                .values(consumed_at=now)
                .returning(LocalChallenge.id)
                .execution_options(synchronize_session=False)
            )
            if used is None:
                raise StaleVerification("the code was used or erased meanwhile")
            # Held until the link is stored: an erasure waits for it, then sees the link.
            account = await session.scalar(
                select(LocalAccount.id)
                .where(LocalAccount.id == account_id)
                .with_for_update(read=True)
            )
            if account is None:
                raise StaleVerification("the account was erased meanwhile")
            await session.execute(
                delete(LocalEvent).where(
                    LocalEvent.kind == FAILURE,
                    LocalEvent.key == keys.identifier,
                    LocalEvent.requester == keys.requester,
                )
            )

        return work

    # -- accounts -------------------------------------------------------------------------

    async def account_for(
        self,
        keys: Keys,
        kind: str,
        value: str,
        *,
        new_id: str,
        challenge_id: str,
        now: datetime,
    ) -> tuple[str, bool]:
        """The id of the address's account, and whether this challenge created it (the
        sign-up), which stays true when the same code is checked again after a crash."""
        async with self._sessions() as session:
            try:
                async with session.begin():
                    existing = (
                        await session.execute(
                            select(LocalAccount.id, LocalAccount.created_by).where(
                                # During a secret rotation the row may still carry the old index.
                                LocalAccount.identifier_index.in_(self._vault.indexes(kind, value))
                            )
                        )
                    ).one_or_none()
                    if existing is not None:
                        return existing.id, existing.created_by == challenge_id
                    session.add(
                        LocalAccount(
                            id=new_id,
                            identifier_kind=kind,
                            identifier_index=keys.identifier,
                            identifier_enc=self._vault.encrypt(value),
                            created_by=challenge_id,
                            created_at=now,
                        )
                    )
                    await session.flush()
            except IntegrityError:
                # Another first verification of the same address won the unique index: its
                # account is the one.
                async with session.begin():
                    winner = (
                        await session.execute(
                            select(LocalAccount.id, LocalAccount.created_by).where(
                                # During a secret rotation the row may still carry the old index.
                                LocalAccount.identifier_index.in_(self._vault.indexes(kind, value))
                            )
                        )
                    ).one()
                return winner.id, winner.created_by == challenge_id
        return new_id, True

    async def erase(
        self, account_id: str, keys: Keys, *, telegram_user_id: int, backend: str
    ) -> None:
        """Forget this person's codes in flight, and the account unless another Telegram user
        is linked to it (`backend` names this backend in the links table).

        Send and failure events stay until they age out: they hold only blind indexes, and
        forgetting them would let anyone reset the caps by asking to be erased.
        """
        async with self._sessions() as session, session.begin():
            # Only this person's: others waiting for a code to the same address keep theirs.
            await session.execute(
                delete(LocalChallenge).where(LocalChallenge.requester_index == keys.requester)
            )
            # Locked before the links are read: a link being stored for the account right now
            # holds it (see `consume`), so it is either committed and seen below, or it finds
            # the account gone and is refused.
            accounts = (
                await session.scalars(
                    select(LocalAccount.id)
                    .where(
                        or_(
                            LocalAccount.id == account_id,
                            LocalAccount.identifier_index == keys.identifier,
                        )
                    )
                    .with_for_update()
                )
            ).all()
            if not accounts:
                return
            still_linked = select(Link.auth_user_id).where(
                Link.backend == backend,
                Link.auth_user_id.in_(accounts),
                Link.telegram_user_id != telegram_user_id,
            )
            await session.execute(
                delete(LocalAccount).where(
                    LocalAccount.id.in_(accounts), LocalAccount.id.not_in(still_linked)
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


def _latest(moments: Sequence[datetime | None]) -> datetime | None:
    return max((moment for moment in moments if moment is not None), default=None)


def _lock_id(role: str, key: str) -> int:
    """A PostgreSQL advisory lock id for a counted key. Ids share one space with any other
    advisory locks in the database, so they are namespaced by a hash; a collision only makes
    two unrelated keys wait for each other."""
    digest = hashlib.blake2b(f"passgram-local\x00{role}\x00{key}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def _identifier_lock(keys: Keys) -> int:
    """Covers everything counted per address, per person and address included."""
    return _lock_id("identifier", keys.identifier)


def _user_lock(keys: Keys) -> int:
    return _lock_id("user", keys.requester)


_TOTAL_LOCK = _lock_id("total", TOTAL_KEY)


class _Windows:
    """Sliding-window counts, read and written inside the caller's transaction at `now`."""

    def __init__(self, session: AsyncSession, now: datetime) -> None:
        self.session = session
        self.now = now
        self._writing = False

    async def hold(self, *locks: int) -> None:
        """Wait for, and keep until the transaction ends, the locks of the keys about to be
        counted; see the module's docstring. The total's lock, when needed, comes last."""
        if self.session.get_bind().dialect.name == "postgresql":
            for lock in sorted(locks):
                await self.session.execute(
                    select(func.pg_advisory_xact_lock(literal(lock, BigInteger)))
                )
        elif not self._writing:
            # SQLite: a write that changes nothing still takes the database's one write lock.
            await self.session.execute(
                update(LocalEvent)
                .where(false())
                .values(kind=LocalEvent.kind)
                .execution_options(synchronize_session=False)
            )
            self._writing = True

    async def record(self, entries: Sequence[tuple[str, str, str | None]]) -> list[int]:
        """Write one event per (kind, key, requester) at `now`; returns their ids so they can
        be undone."""
        rows = [
            LocalEvent(kind=kind, key=key, requester=requester, at=self.now)
            for kind, key, requester in entries
        ]
        self.session.add_all(rows)
        await self.session.flush()
        return [row.id for row in rows]

    async def room_at(
        self,
        kind: str,
        key: str,
        *,
        window: timedelta,
        cap: int,
        requester: str | None = None,
        pending: int = 0,
    ) -> datetime | None:
        """When one more event fits under `cap` in the window; None when it fits now.

        Counts only `requester`'s events when given. `pending` events were recorded at `now`
        by this transaction for the very thing being checked, so they are not counted.
        """
        query = self._in_window(kind, key, requester, window)
        count = await self._count(query) - pending
        if count < cap:
            return None
        # The window has room once count - cap + 1 of its oldest events have left it.
        leaves = await self.session.scalar(
            query.order_by(LocalEvent.at).offset(count - cap).limit(1)
        )
        return (leaves or self.now) + window

    async def prune(self, older_than: timedelta) -> None:
        await self.session.execute(delete(LocalEvent).where(LocalEvent.at <= self.now - older_than))

    async def _count(self, query: Select[datetime]) -> int:
        count = await self.session.scalar(select(func.count()).select_from(query.subquery()))
        return count or 0

    async def tally(
        self, windows: Sequence[tuple[str, str, str | None, timedelta]]
    ) -> list[tuple[int, datetime | None]]:
        """For each (kind, key, requester or None, window): how many events it holds and when
        the newest was; all in one query."""
        matches = [self._matches(*spec) for spec in windows]
        columns = [
            column
            for match in matches
            for column in (func.count().filter(match), func.max(LocalEvent.at).filter(match))
        ]
        row = (await self.session.execute(select(*columns).where(or_(*matches)))).one()
        values: list[Any] = list(row)
        return [(int(values[2 * n] or 0), values[2 * n + 1]) for n in range(len(matches))]

    def _matches(
        self, kind: str, key: str, requester: str | None, window: timedelta
    ) -> ColumnElement[bool]:
        match = and_(
            LocalEvent.kind == kind,
            LocalEvent.key == key,
            LocalEvent.at > self.now - window,
        )
        return match if requester is None else and_(match, LocalEvent.requester == requester)

    def _in_window(
        self, kind: str, key: str, requester: str | None, window: timedelta
    ) -> Select[datetime]:
        return select(LocalEvent.at).where(self._matches(kind, key, requester, window))
