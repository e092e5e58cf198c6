"""The throttle's rule for repeated failed logins, as pure functions of a key's state and the time.

An attempt is *reserved* before the credentials are checked: it counts as a failure at once and
is given back when the credentials were right. So a burst of parallel attempts cannot all pass
"fewer than ``limit`` failures so far": each one sees the count the ones before it left, whether
or not their checks have finished. The (limit + 1)-th attempt blocks the key for a while, and
each block after that lasts twice as long as the one before (up to ``max_block``).

Keys are strings the caller chooses (``staff:pair:anna|10.0.0.7``, ``inbound:addr:10.0.0.7``);
the storage keeps one ``KeyState`` per key and applies these functions under a row lock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Limit:
    """How many failures a key may collect in ``window`` before it is blocked, and for how long."""

    failures: int
    window: dt.timedelta
    base_block: dt.timedelta
    max_block: dt.timedelta

    def block_for(self, strikes: int) -> dt.timedelta:
        """The length of the block after ``strikes`` earlier ones: doubling, capped."""
        longest = self.max_block
        step: dt.timedelta = self.base_block * (2 ** min(strikes, 20))
        return min(longest, step)


@dataclass(frozen=True, slots=True)
class KeyState:
    count: int = 0  # attempts reserved or failed in the current window
    window_start: dt.datetime | None = None
    blocked_until: dt.datetime | None = None
    strikes: int = 0  # blocks so far; the next lasts base_block * 2**strikes
    # Pair keys only: a login succeeded from this address lately, so the slower per-user
    # limit (distributed guessing) does not apply to it and an attacker cannot lock the user out.
    trusted_until: dt.datetime | None = None

    def blocked(self, now: dt.datetime) -> bool:
        return self.blocked_until is not None and now < self.blocked_until

    def trusted(self, now: dt.datetime) -> bool:
        return self.trusted_until is not None and now < self.trusted_until


def reserve(state: KeyState, limit: Limit, now: dt.datetime) -> tuple[KeyState, dt.datetime | None]:
    """The state after one more attempt, and until when that attempt is refused (None: go on).

    A refused attempt is not counted: while a key is blocked, attempts change nothing.
    """
    if state.blocked(now):
        return state, state.blocked_until
    count, start, strikes = state.count, state.window_start, state.strikes
    if start is None or now - start >= limit.window:
        # A quiet key is forgotten; after a quiet spell as long as the longest block, its
        # strikes are forgotten too (the back-off starts again from the first step).
        last = max(d for d in (start, state.blocked_until, now - limit.max_block) if d is not None)
        if now - last >= limit.max_block:
            strikes = 0
        count, start = 0, now
    count += 1
    if count > limit.failures:
        until = now + limit.block_for(strikes)
        return replace(
            state, count=0, window_start=until, blocked_until=until, strikes=strikes + 1
        ), until
    return replace(state, count=count, window_start=start, strikes=strikes), None


def refused_until(state: KeyState, limit: Limit, now: dt.datetime) -> dt.datetime | None:
    """Until when one more attempt would be refused, without counting it (None: it would not).

    For attempts that are not counted (a password already known to be right): they must not
    get in where a counted one would be refused, or the answer would tell a guesser more.
    """
    if state.blocked(now):
        return state.blocked_until
    start = state.window_start
    if start is not None and now - start < limit.window and state.count >= limit.failures:
        return start + limit.window
    return None


def release(
    state: KeyState, *, success_resets: bool, now: dt.datetime, trust: dt.timedelta | None = None
) -> KeyState:
    """The reserved attempt had the right credentials: it was no failure.

    ``success_resets`` (the key of one user at one address) forgets the key's failures and
    strikes; otherwise (the keys shared with others: the user's, the address's) only this
    attempt is given back. ``trust`` marks the key as a known-good address for that long.
    """
    if success_resets:
        state = replace(state, count=0, strikes=0, blocked_until=None)
    else:
        state = replace(state, count=max(0, state.count - 1))
    if trust is not None:
        state = replace(state, trusted_until=now + trust)
    return state
