"""Throttling failed logins, shared by every endpoint that checks a secret.

Use::

    throttle = Throttle(db, clock, policy)
    ticket = throttle.reserve(user="anna", address="10.0.0.7")
    if isinstance(ticket, Refused):
        ...  # answer 429 with Retry-After: ticket.retry_after
    ok = check_the_password(...)
    throttle.settle(ticket, succeeded=ok)

An attempt is counted *before* the check (``reserve``) and given back when it succeeded
(``settle``), so parallel attempts cannot slip past the limit together (domain/throttle.py).
The counts live in the database (table ``auth_throttle``): every ``serve`` process on one
PostgreSQL database shares them, and the reservation is one short transaction holding the keys'
row locks. ``reserve_many`` and ``settle_many`` do a whole batch in one transaction (the inbound
SMS callback handles its requests in batches).

Each attempt with a user name counts against three keys:

- the user at this address (``pair``): ``failures`` per window, then exponential back-off;
- the user from anywhere (``user``): ``USER_FACTOR`` times slower, against guessing from many
  addresses; it does not apply at an address where the user logged in lately (``trust``), so an
  attacker who knows a user name cannot lock the user out of their usual address;
- the address, any user (``address``): ``USER_FACTOR`` times slower, against password spraying.

An anonymous attempt (a self-registration) counts against its address only, with the pair's
limit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from patronlink.domain import throttle as rule
from patronlink.domain.throttle import KeyState, Limit
from patronlink.services.clock import Clock
from patronlink.settings import Settings
from patronlink.storage.database import Database, Repositories
from patronlink.storage.throttle import MAX_KEY_LENGTH

USER_FACTOR = 4  # the per-user and per-address limits allow this many times the pair's failures
DEFAULT_MAX_BLOCK = dt.timedelta(hours=1)
DEFAULT_TRUST = dt.timedelta(days=30)
PURGE_EVERY = 500  # reservations between two purges of quiet keys


def _storable(key: str) -> str:
    """The key as the table can hold it: user names come from attackers, so a NUL (which
    PostgreSQL text refuses) is escaped and a key past the column's width is shortened to a
    prefix and a digest of the whole, which still tells different keys apart."""
    key = key.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
    if len(key) <= MAX_KEY_LENGTH:
        return key
    return key[:160] + "#" + hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Policy:
    """The limits of one endpoint family; ``scope`` prefixes its keys (``staff``, ``inbound``)."""

    scope: str
    pair: Limit
    user: Limit
    address: Limit
    trust: dt.timedelta = DEFAULT_TRUST

    @classmethod
    def of(
        cls,
        scope: str,
        failures: int,
        seconds: float,
        *,
        max_block: dt.timedelta = DEFAULT_MAX_BLOCK,
        trust: dt.timedelta = DEFAULT_TRUST,
    ) -> Policy:
        """``failures`` per ``seconds`` for one user at one address; the rest derived from it."""
        window = dt.timedelta(seconds=seconds)
        cap = max(max_block, window)
        pair = Limit(failures, window, window, cap)
        wide = Limit(failures * USER_FACTOR, window, window, cap)
        return cls(scope, pair, wide, wide, trust)


@dataclass(frozen=True, slots=True)
class Ticket:
    """A reserved attempt; hand it back to ``settle``."""

    pair: str | None
    shared: tuple[str, ...]  # the user's and the address's keys this attempt counted against


@dataclass(frozen=True, slots=True)
class Refused:
    until: dt.datetime
    retry_after: int  # whole seconds, for the Retry-After header


Attempt = tuple[str | None, str]  # (user name or None, client address)


class TooManyAttempts(Exception):
    """An attempt refused by the throttle; the caller answers 429 with ``Retry-After``."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed logins; try again later")
        self.retry_after = retry_after


class Throttle:
    def __init__(self, db: Database, clock: Clock, policy: Policy) -> None:
        self._db = db
        self._clock = clock
        self.policy = policy
        self._reservations = 0
        self._counter = threading.Lock()

    def keys(self, user: str | None, address: str) -> tuple[str | None, str | None, str]:
        scope = self.policy.scope
        addr = _storable(f"{scope}:addr:{address}")
        if user is None:
            return None, None, addr
        name = user.strip().lower()
        return _storable(f"{scope}:pair:{name}|{address}"), _storable(f"{scope}:user:{name}"), addr

    def reserve(self, user: str | None, address: str) -> Ticket | Refused:
        return self.reserve_many([(user, address)])[0]

    def reserve_many(self, attempts: Sequence[Attempt]) -> list[Ticket | Refused]:
        """Reserve each attempt in order, in one transaction; later ones see earlier ones."""
        if not attempts:
            return []
        now = self._clock()
        wanted = [k for a in attempts for k in self.keys(*a) if k is not None]
        out: list[Ticket | Refused] = []
        with self._db.transaction() as repos:
            store = repos.throttle
            states = store.lock(wanted, now)
            changed: set[str] = set()
            for user, address in attempts:
                out.append(self._reserve_one(states, changed, user, address, now))
            for key in sorted(changed):
                store.save(key, states[key], now)
            if self._due_for_purge(len(attempts)):
                longest = max(self.policy.pair.max_block, self.policy.pair.window)
                store.purge(now, now - longest)
        return out

    def _reserve_one(
        self,
        states: dict[str, KeyState],
        changed: set[str],
        user: str | None,
        address: str,
        now: dt.datetime,
    ) -> Ticket | Refused:
        pair, per_user, addr = self.keys(user, address)
        plan: list[tuple[str, Limit]] = []
        if pair is not None:
            plan.append((pair, self.policy.pair))
            if per_user is not None and not states[pair].trusted(now):
                plan.append((per_user, self.policy.user))
        # Anonymous attempts have only their address: it gets the pair's (stricter) limit.
        plan.append((addr, self.policy.address if pair is not None else self.policy.pair))
        tentative: dict[str, KeyState] = {}
        for key, limit in plan:
            after, refused_until = rule.reserve(states[key], limit, now)
            if refused_until is not None:
                # Only the key that refused keeps its change (a new block); the others were
                # never counted for this attempt.
                if after != states[key]:
                    states[key] = after
                    changed.add(key)
                return Refused(
                    refused_until, max(1, math.ceil((refused_until - now).total_seconds()))
                )
            tentative[key] = after
        states.update(tentative)
        changed.update(tentative)
        return Ticket(pair, tuple(k for k in tentative if k != pair))

    def refusals(self, attempts: Sequence[Attempt]) -> list[Refused | None]:
        """Which attempts a counted attempt would be refused for now (a block, or a key whose
        failures have reached the limit), counting nothing (one short transaction).

        For callers that count only some attempts (``reserve``), but must refuse all of them
        while blocked, so that a blocked guesser learns nothing from any answer.
        """
        if not attempts:
            return []
        with self._db.transaction() as repos:
            return self.refusals_in(repos, attempts)

    def refusals_in(self, repos: Repositories, attempts: Sequence[Attempt]) -> list[Refused | None]:
        """``refusals``, read in a transaction the caller has open: a batch that writes peeks
        in its own transaction rather than in one of its own before it (one commit, and on
        PostgreSQL three round trips, fewer a batch)."""
        if not attempts:
            return []
        now = self._clock()
        wanted = [k for a in attempts for k in self.keys(*a) if k is not None]
        states = repos.throttle.peek(wanted)
        out: list[Refused | None] = []
        for user, address in attempts:
            pair, per_user, addr = self.keys(user, address)
            pair_state = states.get(pair) if pair is not None else None
            checked: list[tuple[str | None, Limit]] = [
                (pair, self.policy.pair),
                (addr, self.policy.address if pair is not None else self.policy.pair),
            ]
            if pair_state is None or not pair_state.trusted(now):
                checked.append((per_user, self.policy.user))
            until = max(
                (
                    u
                    for k, limit in checked
                    if k in states and (u := rule.refused_until(states[k], limit, now))
                ),
                default=None,
            )
            out.append(
                None
                if until is None
                else Refused(until, max(1, math.ceil((until - now).total_seconds())))
            )
        return out

    def settle(self, ticket: Ticket, *, succeeded: bool) -> None:
        self.settle_many([(ticket, succeeded)])

    def settle_many(self, outcomes: Sequence[tuple[Ticket, bool]]) -> None:
        """Give back the attempts that succeeded; a failure was counted when it was reserved."""
        successes = [ticket for ticket, ok in outcomes if ok]
        if not successes:
            return
        now = self._clock()
        wanted = [k for t in successes for k in (t.pair, *t.shared) if k is not None]
        with self._db.transaction() as repos:
            store = repos.throttle
            states = store.lock(wanted, now)
            for ticket in successes:
                if ticket.pair is not None:
                    states[ticket.pair] = rule.release(
                        states[ticket.pair], success_resets=True, now=now, trust=self.policy.trust
                    )
                for key in ticket.shared:
                    states[key] = rule.release(states[key], success_resets=False, now=now)
            for key in sorted(states):
                store.save(key, states[key], now)

    def _due_for_purge(self, reserved: int) -> bool:
        with self._counter:
            before = self._reservations
            self._reservations += reserved
            return before // PURGE_EVERY != self._reservations // PURGE_EVERY


def login_throttle(
    db: Database, clock: Clock, settings: Settings, scope: str, failures: int, seconds: float
) -> Throttle:
    """The throttle of one endpoint family, ``failures`` per ``seconds`` for one user at one
    address, with the deployment's back-off cap and trust period. Endpoints added later build
    theirs with this too, under a scope name of their own."""
    return Throttle(
        db,
        clock,
        Policy.of(
            scope,
            failures,
            seconds,
            max_block=dt.timedelta(seconds=settings.throttle_max_block_seconds),
            trust=dt.timedelta(days=settings.throttle_trust_days),
        ),
    )
