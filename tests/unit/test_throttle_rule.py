"""The throttle's rule (domain/throttle.py): reserve first, block after the limit, back off."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from patronlink.domain.throttle import KeyState, Limit, release, reserve

T0 = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
LIMIT = Limit(
    failures=5,
    window=dt.timedelta(minutes=5),
    base_block=dt.timedelta(minutes=5),
    max_block=dt.timedelta(hours=1),
)


def test_reservations_count_before_any_check_finishes() -> None:
    # Thirty attempts reserved at once, none settled yet: only the first five may go on.
    state, verdicts = KeyState(), []
    for _ in range(30):
        state, refused = reserve(state, LIMIT, T0)
        verdicts.append(refused)
    assert verdicts[:5] == [None] * 5
    assert all(v == T0 + dt.timedelta(minutes=5) for v in verdicts[5:])


def test_a_success_gives_its_reservation_back() -> None:
    state = KeyState()
    for _ in range(5):
        state, refused = reserve(state, LIMIT, T0)
        assert refused is None
        state = release(state, success_resets=False, now=T0)
    assert state.count == 0


def test_blocks_double_and_are_capped() -> None:
    state, now, lengths = KeyState(), T0, []
    for _ in range(6):
        for _ in range(5):
            state, refused = reserve(state, LIMIT, now)
            assert refused is None
        state, until = reserve(state, LIMIT, now)
        assert until is not None
        lengths.append(until - now)
        now = until  # the block is over; the attacker goes on at once
    assert lengths == [dt.timedelta(minutes=m) for m in (5, 10, 20, 40, 60, 60)]


def test_while_blocked_nothing_counts_and_a_quiet_hour_forgets_the_strikes() -> None:
    state = KeyState()
    for _ in range(6):
        state, _ = reserve(state, LIMIT, T0)
    blocked = state
    state, until = reserve(state, LIMIT, T0 + dt.timedelta(minutes=1))
    assert state == blocked
    assert until == T0 + dt.timedelta(minutes=5)
    later = T0 + dt.timedelta(hours=2)
    state, refused = reserve(state, LIMIT, later)
    assert refused is None
    assert (state.count, state.strikes) == (1, 0)


def test_a_good_login_resets_the_pair_and_marks_the_address_trusted() -> None:
    state = KeyState()
    for _ in range(4):
        state, _ = reserve(state, LIMIT, T0)
    state = release(state, success_resets=True, now=T0, trust=dt.timedelta(days=30))
    assert (state.count, state.strikes) == (0, 0)
    assert state.trusted(T0 + dt.timedelta(days=29))
    assert not state.trusted(T0 + dt.timedelta(days=31))


@given(
    steps=st.lists(
        st.tuples(st.integers(0, 400), st.booleans()),  # (seconds later, the check succeeds)
        max_size=200,
    )
)
def test_never_more_failures_in_a_window_than_the_limit(steps: list[tuple[int, bool]]) -> None:
    """However attempts and successes interleave, no window lets through more than ``failures``
    failed attempts while the key is not blocked."""
    state, now = KeyState(), T0
    failed_at: list[dt.datetime] = []
    for seconds, succeeds in steps:
        now += dt.timedelta(seconds=seconds)
        state, refused = reserve(state, LIMIT, now)
        if refused is not None:
            assert refused > now
            continue
        if succeeds:
            state = release(state, success_resets=False, now=now)
        else:
            failed_at.append(now)
        assert state.count <= LIMIT.failures
        recent = [t for t in failed_at if now - t < LIMIT.window]
        assert len(recent) <= 2 * LIMIT.failures  # two windows may overlap the last five minutes


@given(user=st.text(max_size=2000), address=st.text(max_size=100))
def test_every_key_fits_the_table(user: str, address: str) -> None:
    """Keys come from what attackers send: NUL, lone surrogates, megabyte names."""
    from patronlink.services.throttle import Policy, Throttle
    from patronlink.storage.throttle import MAX_KEY_LENGTH

    throttle = Throttle(None, None, Policy.of("inbound", 5, 60))  # type: ignore[arg-type]
    keys = [k for k in throttle.keys(user, address) if k is not None]
    for key in keys:
        assert len(key) <= MAX_KEY_LENGTH
        assert "\x00" not in key
        key.encode("utf-8")  # no lone surrogate left
    other = throttle.keys(user + "x", address)
    assert other[0] != keys[0]


def test_an_uncounted_attempt_is_refused_where_a_counted_one_would_be() -> None:
    from patronlink.domain.throttle import refused_until

    state = KeyState()
    for _ in range(4):
        state, _ = reserve(state, LIMIT, T0)
    assert refused_until(state, LIMIT, T0) is None
    state, _ = reserve(state, LIMIT, T0)  # the fifth: at the limit
    assert refused_until(state, LIMIT, T0) == T0 + LIMIT.window
    _, counted = reserve(state, LIMIT, T0)
    assert counted is not None
    assert refused_until(state, LIMIT, T0 + LIMIT.window) is None  # the window is over
