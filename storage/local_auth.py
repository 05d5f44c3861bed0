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

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    bindparam,
    delete,
    false,
    func,
    insert,
    or_,
    select,
    update,
)

from storage.direct import Query, Row, Together, Tx, direct
from storage.engine import SessionFactory
from storage.models import Link, LocalAccount, LocalChallenge, LocalEvent
from storage.repos import Must, Stale, Work, insert_for
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
class NewAccount:
    """The account a right code signs up, when its address has none yet."""

    id: str
    kind: str
    value: str


@dataclass(frozen=True, slots=True)
class Accepted:
    """The right code, and the address's account; `created` when this challenge created it
    (the sign-up), which stays true when the same code is checked again after a crash. The
    try stays spent; the code is used up only by `consume`'s work."""

    account_id: str
    created: bool


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
        self._direct = direct(sessions)
        self._vault = vault
        self._limits = limits

    # -- sending --------------------------------------------------------------------------

    async def reserve_first_send(
        self, keys: Keys, now: datetime, challenge: NewChallenge
    ) -> Reserved | SendRefusal:
        """Count a first send against every cap and store its challenge, or refuse both."""
        try:
            async with self._direct.transaction() as tx:
                windows = _Windows(tx, now)
                await windows.hold(_identifier_lock(keys), _user_lock(keys), last=_TOTAL_LOCK)
                return await self._reserve(
                    windows,
                    keys,
                    _NEW_CHALLENGE,
                    id=challenge.id,
                    identifier=keys.identifier,
                    requester=keys.requester,
                    code_mac=challenge.code_mac,
                    now=now,
                    expires_at=challenge.expires_at,
                )
        except _Refused as refused:
            return refused.refusal

    async def reserve_resend(
        self, challenge_id: str, keys: Keys, now: datetime
    ) -> Reserved | SendRefusal:
        """Count a resend against every cap, if the challenge can still take a new code."""
        try:
            async with self._direct.transaction() as tx:
                windows = _Windows(tx, now)
                await windows.hold(_identifier_lock(keys), _user_lock(keys), last=_TOTAL_LOCK)
                await self._check_resendable(windows, challenge_id, keys)
                return await self._reserve(windows, keys)
        except _Refused as refused:
            return refused.refusal

    async def cancel_send(self, event_ids: Sequence[int], challenge_id: str | None = None) -> None:
        """Give back send events of a failed delivery, and drop the challenge it was for."""
        async with self._direct.transaction() as tx:
            for event_id in event_ids:
                await tx.run(_DROP_EVENT, id=event_id)
            if challenge_id is not None:
                await tx.run(_DROP_CHALLENGE, id=challenge_id)

    def drop_other_challenges(self, keys: Keys, keep: str) -> Work:
        """The work that deletes every challenge of this person for this address but `keep`;
        its parameters are named `others_*`, apart from the outcome's."""
        return Work(
            (_DROP_OTHER_CHALLENGES,),
            {
                "others_identifier": keys.identifier,
                "others_requester": keys.requester,
                "others_keep": keep,
            },
        )

    async def replace_code(
        self, challenge_id: str, code_mac: str, now: datetime, expires_at: datetime
    ) -> bool:
        """Put a newly sent code in place of the old one; False when the challenge was used
        or deleted meanwhile."""
        async with self._direct.single() as tx:
            swapped = await tx.scalar(
                _REPLACE_CODE, id=challenge_id, code_mac=code_mac, now=now, expires_at=expires_at
            )
        return swapped is not None

    async def _check_resendable(self, windows: _Windows, challenge_id: str, keys: Keys) -> None:
        row = await windows.tx.first(
            _CHALLENGE_STATE,
            id=challenge_id,
            identifier=keys.identifier,
            requester=keys.requester,
        )
        if row is None:
            raise _Refused(Expired())
        consumed_at, attempts, expires_at = row
        if consumed_at is not None:
            raise _Refused(Expired())
        if attempts >= self._limits.tries_per_code:
            # A new code would not bring the tries back, so sending one would only cost money.
            raise _Refused(OutOfTries(await self._locked_until(windows, keys)))
        if expires_at <= windows.now:
            raise _Refused(Expired())

    async def _reserve(
        self, windows: _Windows, keys: Keys, *also: Query, **params: Any
    ) -> Reserved:
        """Count a send against every cap before it happens, or refuse it; `also` are writes
        that go with the send (its challenge), with their `params`.

        The caller holds the address's, the user's and the all-users total's locks, taken in
        one round trip. Every window, the total's included, is read in the statement that
        records this send, as it was before (under the locks nothing else changes them
        meanwhile), so the one lock every send shares is held for that statement and the
        commit; the exact reads of when a window has room again run only for a window that is
        full.
        """
        limits, window = self._limits, self._limits.send_window
        mine = (SEND_TO_IDENTIFIER, keys.identifier, keys.requester)
        caps: list[tuple[tuple[str, str, str | None], int]] = [
            (mine, limits.sends_per_identifier_per_user),
            ((SEND_TO_IDENTIFIER, keys.identifier, None), limits.sends_per_identifier),
            ((SEND_BY_USER, keys.requester, None), limits.sends_per_user),
        ]
        tally = windows.tallying(
            [
                *self._lockout(keys),
                *((*counted, window) for counted, _ in caps),
                (SEND_TOTAL, TOTAL_KEY, None, window),
            ]
        )
        record = windows.recording(
            [
                (SEND_TO_IDENTIFIER, keys.identifier, keys.requester),
                (SEND_BY_USER, keys.requester, None),
                (SEND_TOTAL, TOTAL_KEY, None),
            ]
        )
        (counted,), written = await windows.tx.run_together(
            _counted_and_recorded(tally.query, record.query, also),
            **tally.params,
            **record.params,
            **params,
        )
        failures_mine, failures_all, *sends, (total, _) = tally.counts(counted)
        ids = record.ids(written)
        if (
            failures_mine[0] >= limits.lockout_failures
            or failures_all[0] >= limits.lockout_failures_per_identifier
        ):
            locked_until = await self._locked_until(windows, keys, [failures_mine, failures_all])
            if locked_until is not None:
                # Every code would be refused until then; sending one would only cost money.
                raise _Refused(OutOfTries(locked_until))
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
        total_full_until = await windows.room_at(
            SEND_TOTAL, TOTAL_KEY, window=window, cap=limits.sends_total, counted=total
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
        self, challenge_id: str, keys: Keys, offered_mac: str, now: datetime, account: NewAccount
    ) -> Attempt:
        """Spend one try on the challenge and judge the code; for the right one, find the
        address's account or create it as `account`, in the same transaction.

        A wrong code keeps its try and counts a failure; the right one keeps its try too, so a
        crash before its link is stored never gives a try back; any other refusal (locked,
        spent, gone) gives the try back.
        """
        try:
            async with self._direct.transaction() as tx:
                windows = _Windows(tx, now)
                await windows.hold(_identifier_lock(keys))
                return await self._attempt(windows, challenge_id, keys, offered_mac, account)
        except _Refused as refused:
            refusal = refused.refusal
            assert not isinstance(refusal, TooSoon)  # judging a code checks no send cap
            return refusal

    async def _attempt(
        self, windows: _Windows, challenge_id: str, keys: Keys, offered: str, account: NewAccount
    ) -> Accepted | Wrong:
        limits = self._limits
        tally = windows.tallying(self._lockout(keys))
        # During a secret rotation the account may still carry the old index: each is looked up.
        indexes = self._vault.indexes(account.kind, account.value)
        named = {f"index{n}": index for n, index in enumerate(indexes)}
        find = _account_by(len(indexes))
        # Taking the try is what makes concurrent guesses safe: the database lets exactly
        # `tries_per_code` of them through, however many arrive at once. The lockout's counts
        # and the address's account are read in the same statement.
        (counted, existing), taken = await windows.tx.run_together(
            _judged(tally.query, find),
            id=challenge_id,
            identifier=keys.identifier,
            requester=keys.requester,
            tries=limits.tries_per_code,
            now=windows.now,
            **tally.params,
            **named,
        )
        if not taken:
            raise _Refused(await self._why_not(windows, challenge_id, keys))
        ((attempts, stored),) = taken
        locked_until = await self._locked_until(windows, keys, tally.counts(counted))
        if locked_until is not None:
            # Locked: not even the right code passes, and the try is given back.
            raise _Refused(OutOfTries(locked_until))
        if Vault.same(stored, offered):
            return await self._account(windows, challenge_id, keys, account, existing, named)
        await windows.record([(FAILURE, keys.identifier, keys.requester)])
        return Wrong(
            tries_left=limits.tries_per_code - attempts,
            locked_until=await self._locked_until(windows, keys),
        )

    async def _why_not(
        self, windows: _Windows, challenge_id: str, keys: Keys
    ) -> Expired | OutOfTries:
        """Why a try could not be taken: the code is spent, used, expired or not this one."""
        row = await windows.tx.first(
            _CHALLENGE_STATE,
            id=challenge_id,
            identifier=keys.identifier,
            requester=keys.requester,
        )
        if row is not None:
            consumed_at, attempts, _expires_at = row
            if consumed_at is None and attempts >= self._limits.tries_per_code:
                return OutOfTries(await self._locked_until(windows, keys))
        return Expired()

    def _lockout(self, keys: Keys) -> list[tuple[str, str, str | None, timedelta]]:
        """The windows of failures that lock an address: this person's, then everyone's."""
        window = self._limits.lockout_window
        return [
            (FAILURE, keys.identifier, keys.requester, window),
            (FAILURE, keys.identifier, None, window),
        ]

    async def _locked_until(
        self,
        windows: _Windows,
        keys: Keys,
        counts: Sequence[tuple[int, datetime | None]] | None = None,
    ) -> datetime | None:
        """Until when this person may not use codes for this address: their own failures, or
        (the backstop) everyone's together. Both windows are counted in one query, unless
        `counts` (of `_lockout`'s windows) were read already in this transaction."""
        limits = self._limits
        caps = [
            (keys.requester, limits.lockout_failures),
            (None, limits.lockout_failures_per_identifier),
        ]
        if counts is None:
            counts = await windows.tally(self._lockout(keys))
        return _latest(
            [
                await windows.room_at(
                    FAILURE,
                    keys.identifier,
                    requester=requester,
                    window=limits.lockout_window,
                    cap=cap,
                    counted=count,
                )
                if count >= cap
                else None
                for (requester, cap), (count, _newest) in zip(caps, counts, strict=True)
            ]
        )

    def consume(self, challenge_id: str, keys: Keys, account_id: str, now: datetime) -> Work:
        """The work that makes a right code final: run it in the transaction that stores the
        link the code produced, so the code is used up if and only if that link exists.

        It uses the code up (only if nothing else did meanwhile), checks that the account still
        exists, and forgives this person's earlier failures for the address (NIST SP 800-63B
        §3.2.2); everyone else's stay counted. StaleVerification is raised when the code or the
        account is gone, which rolls the whole transaction back. Its parameters are named
        `code_*`, apart from the outcome's.
        """

        return Work(
            (
                Must(_USE_CODE, StaleVerification("the code was used or erased meanwhile")),
                # Held until the link is stored: an erasure waits for it, then sees the link.
                Must(_HOLD_ACCOUNT, StaleVerification("the account was erased meanwhile")),
                _FORGIVE,
            ),
            {
                "code_id": challenge_id,
                "code_identifier": keys.identifier,
                "code_requester": keys.requester,
                "code_used_at": now,
                "code_account": account_id,
            },
        )

    # -- accounts -------------------------------------------------------------------------

    async def _account(
        self,
        windows: _Windows,
        challenge_id: str,
        keys: Keys,
        account: NewAccount,
        existing: Row | None,
        named: dict[str, str],
    ) -> Accepted:
        """The address's account (`existing`, found by its `named` indexes), created by this
        challenge when there is none."""
        tx = windows.tx
        find = _account_by(len(named))
        if existing is None:
            created = await tx.scalar(
                _NEW_ACCOUNT,
                id=account.id,
                kind=account.kind,
                identifier=keys.identifier,
                identifier_enc=self._vault.encrypt(account.value),
                created_by=challenge_id,
                now=windows.now,
            )
            if created is not None:
                return Accepted(account.id, created=True)
            # The address's lock keeps first verifications of one address apart; should one
            # get past it, the unique index still lets one account in, and that is the one.
            existing = await tx.first(find, **named)
            assert existing is not None
        return Accepted(existing[0], created=existing[1] == challenge_id)

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
            older_than = max(self._limits.lockout_window, self._limits.send_window)
            await session.execute(delete(LocalEvent).where(LocalEvent.at <= now - older_than))


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

    def __init__(self, tx: Tx, now: datetime) -> None:
        self.tx = tx
        self.now = now
        self._writing = False

    async def hold(self, *locks: int, last: int | None = None) -> None:
        """Wait for, and keep until the transaction ends, the locks of the keys about to be
        counted; see the module's docstring. The total's lock, when needed, is `last`."""
        if self.tx.postgresql:
            # In the order that keeps two transactions from waiting on each other.
            await self.tx.lock(*sorted(locks), *(() if last is None else (last,)))
        elif not self._writing:
            # SQLite: a write that changes nothing still takes the database's one write lock.
            await self.tx.run(_TAKE_WRITE_LOCK)
            self._writing = True

    async def record(self, entries: Sequence[tuple[str, str, str | None]]) -> list[int]:
        """Write one event per (kind, key, requester) at `now`, in one statement; returns their
        ids, in the order of `entries`, so they can be undone."""
        record = self.recording(entries)
        return record.ids(await self.tx.all(record.query, **record.params))

    def recording(self, entries: Sequence[tuple[str, str, str | None]]) -> _Recording:
        """`record`'s statement, to run with others."""
        params: dict[str, Any] = {"event_at": self.now}
        for n, (kind, key, requester) in enumerate(entries):
            params |= {
                f"event_kind{n}": kind,
                f"event_key{n}": key,
                f"event_requester{n}": requester,
            }
        return _Recording(_new_events(len(entries)), params, tuple(entries))

    async def room_at(
        self,
        kind: str,
        key: str,
        *,
        window: timedelta,
        cap: int,
        requester: str | None = None,
        pending: int = 0,
        counted: int | None = None,
    ) -> datetime | None:
        """When one more event fits under `cap` in the window; None when it fits now.

        Counts only `requester`'s events when given. `pending` events were recorded at `now`
        by this transaction for the very thing being checked, so they are not counted.
        `counted`: the window's count, when a tally already read it in this transaction.
        """
        mine = requester is not None
        params = {"kind": kind, "key": key, "since": self.now - window}
        if mine:
            params["requester"] = requester
        if counted is None:
            counted = await self.tx.scalar(_COUNT[mine], **params) or 0
        count = counted - pending
        if count < cap:
            return None
        # The window has room once count - cap + 1 of its oldest events have left it.
        leaves = await self.tx.scalar(_OLDEST[mine], skip=count - cap, **params)
        return (leaves or self.now) + window

    async def tally(
        self, windows: Sequence[tuple[str, str, str | None, timedelta]]
    ) -> list[tuple[int, datetime | None]]:
        """For each (kind, key, requester or None, window): how many events it holds and when
        the newest was; all in one query."""
        tally = self.tallying(windows)
        return tally.counts(await self.tx.first(tally.query, **tally.params))

    def tallying(self, windows: Sequence[tuple[str, str, str | None, timedelta]]) -> _Tally:
        """`tally`'s query, to run with others."""
        params: dict[str, Any] = {}
        for n, (kind, key, requester, window) in enumerate(windows):
            params |= {f"kind{n}": kind, f"key{n}": key, f"since{n}": self.now - window}
            if requester is not None:
                params[f"requester{n}"] = requester
        shape = tuple(requester is not None for _, _, requester, _ in windows)
        return _Tally(_tally(shape), params, len(windows))


@dataclass(frozen=True, slots=True)
class _Tally:
    query: Query
    params: dict[str, Any]
    windows: int

    def counts(self, row: Row | None) -> list[tuple[int, datetime | None]]:
        assert row is not None  # an aggregate: one row, always
        return [(int(row[2 * n] or 0), row[2 * n + 1]) for n in range(self.windows)]


@dataclass(frozen=True, slots=True)
class _Recording:
    query: Query
    params: dict[str, Any]
    entries: tuple[tuple[str, str, str | None], ...]

    def ids(self, rows: Sequence[Row]) -> list[int]:
        """The new events' ids in the order of the entries (RETURNING promises no order)."""
        ids = {(kind, key, requester): id_ for id_, kind, key, requester in rows}
        assert len(ids) == len(self.entries), "each entry is written once"
        return [ids[entry] for entry in self.entries]


@functools.cache
def _counted_and_recorded(tally: Query, record: Query, also: tuple[Query, ...]) -> Together:
    """A send's windows counted as they were, its events recorded, and `also`."""
    return Together([tally], [record, *also])


@functools.cache
def _judged(tally: Query, find: Query) -> Together:
    """A try taken on a challenge, beside the lockout's counts and the address's account."""
    return Together([tally, find], [_TAKE_TRY])


def _match(suffix: str = "", *, mine: bool) -> ColumnElement[bool]:
    """Events of one kind and key (and requester, when `mine`) in a window."""
    match = and_(
        LocalEvent.kind == bindparam("kind" + suffix),
        LocalEvent.key == bindparam("key" + suffix),
        LocalEvent.at > bindparam("since" + suffix),
    )
    return and_(match, LocalEvent.requester == bindparam("requester" + suffix)) if mine else match


@functools.cache
def _tally(shape: tuple[bool, ...]) -> Query:
    """The tally of windows, each counted per requester or not as `shape` says."""
    matches = [_match(str(n), mine=mine) for n, mine in enumerate(shape)]
    columns = [
        column
        for match in matches
        for column in (func.count().filter(match), func.max(LocalEvent.at).filter(match))
    ]
    return Query(select(*columns).where(or_(*matches)))


# The store's statements, compiled once (see storage.direct); keyed by "counted per requester".
_COUNT = {
    mine: Query(select(func.count()).select_from(LocalEvent).where(_match(mine=mine)))
    for mine in (False, True)
}
_OLDEST = {
    mine: Query(
        select(LocalEvent.at)
        .where(_match(mine=mine))
        .order_by(LocalEvent.at)
        .offset(bindparam("skip", type_=Integer))
        .limit(1)
    )
    for mine in (False, True)
}
_TAKE_WRITE_LOCK = Query(update(LocalEvent).where(false()).values(kind=LocalEvent.kind))


@functools.cache
def _new_events(count: int) -> Query:
    """`count` events at one moment (event_kind0, event_key0, event_requester0,
    event_kind1, ... and event_at)."""
    return Query(
        insert(LocalEvent)
        .values(
            [
                {
                    "kind": bindparam(f"event_kind{n}"),
                    "key": bindparam(f"event_key{n}"),
                    "requester": bindparam(f"event_requester{n}"),
                    "at": bindparam("event_at"),
                }
                for n in range(count)
            ]
        )
        .returning(LocalEvent.id, LocalEvent.kind, LocalEvent.key, LocalEvent.requester)
    )


_DROP_EVENT = Query(delete(LocalEvent).where(LocalEvent.id == bindparam("id")))
_FORGIVE = Query(
    delete(LocalEvent).where(
        LocalEvent.kind == FAILURE,
        LocalEvent.key == bindparam("code_identifier"),
        LocalEvent.requester == bindparam("code_requester"),
    )
)


def _this_challenge(prefix: str = "") -> tuple[ColumnElement[bool], ...]:
    """The challenge `id`, of this address (`identifier`) and person (`requester`); parameter
    names start with `prefix` where the statement shares them with others (see `consume`)."""
    return (
        LocalChallenge.id == bindparam(f"{prefix}id"),
        LocalChallenge.identifier_index == bindparam(f"{prefix}identifier"),
        LocalChallenge.requester_index == bindparam(f"{prefix}requester"),
    )


_THIS_CHALLENGE = _this_challenge()
_NEW_CHALLENGE = Query(
    insert(LocalChallenge).values(
        id=bindparam("id"),
        identifier_index=bindparam("identifier"),
        requester_index=bindparam("requester"),
        code_mac=bindparam("code_mac"),
        attempts=0,
        sends=1,
        created_at=bindparam("now"),
        sent_at=bindparam("now"),
        expires_at=bindparam("expires_at"),
    )
)
_CHALLENGE_STATE = Query(
    select(LocalChallenge.consumed_at, LocalChallenge.attempts, LocalChallenge.expires_at).where(
        *_THIS_CHALLENGE
    )
)
_TAKE_TRY = Query(
    update(LocalChallenge)
    .where(
        *_THIS_CHALLENGE,
        LocalChallenge.consumed_at.is_(None),
        LocalChallenge.attempts < bindparam("tries"),
        LocalChallenge.expires_at > bindparam("now"),
    )
    .values(attempts=LocalChallenge.attempts + 1)
    .returning(LocalChallenge.attempts, LocalChallenge.code_mac)
)
_USE_CODE = Query(
    update(LocalChallenge)
    .where(*_this_challenge("code_"), LocalChallenge.consumed_at.is_(None))
    .values(consumed_at=bindparam("code_used_at"))
    .returning(LocalChallenge.id)
)
_REPLACE_CODE = Query(
    update(LocalChallenge)
    .where(LocalChallenge.id == bindparam("id"), LocalChallenge.consumed_at.is_(None))
    .values(
        code_mac=bindparam("code_mac"),
        sends=LocalChallenge.sends + 1,
        sent_at=bindparam("now"),
        expires_at=bindparam("expires_at"),
    )
    .returning(LocalChallenge.id)
)
_DROP_CHALLENGE = Query(delete(LocalChallenge).where(LocalChallenge.id == bindparam("id")))
_DROP_OTHER_CHALLENGES = Query(
    delete(LocalChallenge).where(
        LocalChallenge.identifier_index == bindparam("others_identifier"),
        LocalChallenge.requester_index == bindparam("others_requester"),
        LocalChallenge.id != bindparam("others_keep"),
    )
)


@functools.cache
def _account_by(indexes: int) -> Query:
    """The account whose index is any of `indexes` parameters (index0, index1, ...)."""
    return Query(
        select(LocalAccount.id, LocalAccount.created_by).where(
            or_(*(LocalAccount.identifier_index == bindparam(f"index{n}") for n in range(indexes)))
        )
    )


_HOLD_ACCOUNT = Query(
    select(LocalAccount.id)
    .where(LocalAccount.id == bindparam("code_account"))
    .with_for_update(read=True)
)
_NEW_ACCOUNT = Query(
    lambda dialect: (
        insert_for(dialect, LocalAccount)
        .values(
            id=bindparam("id"),
            identifier_kind=bindparam("kind"),
            identifier_index=bindparam("identifier"),
            identifier_enc=bindparam("identifier_enc"),
            created_by=bindparam("created_by"),
            created_at=bindparam("now"),
        )
        .on_conflict_do_nothing(index_elements=[LocalAccount.identifier_index])
        .returning(LocalAccount.id)
    )
)
