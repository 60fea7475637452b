"""Failed logins slow the guesser and only the guesser, on a clock the tests drive."""

from __future__ import annotations

import pytest

from sector.clock import ManualClock
from sector.master.throttle import (
    BASE,
    FREE,
    HALF_LIFE,
    MAX_DELAY,
    MAX_QUEUE,
    TRUST_TIME,
    LoginThrottle,
    delay_after,
)

ATTACKER, ELSEWHERE = "10.0.0.66", "10.0.0.7"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def throttle(clock: ManualClock) -> LoginThrottle:
    return LoginThrottle(clock)


def guess(
    throttle: LoginThrottle, clock: ManualClock, user: str = "alice", address: str = ATTACKER
) -> float | None:
    """One wrong password, waited for as the master would; the wait (None: refused)."""
    attempt = throttle.admit(user, address)
    if attempt is None:
        return None
    clock.advance(attempt.wait)
    throttle.failed(attempt)
    return attempt.wait


def login(throttle: LoginThrottle, clock: ManualClock, user: str, address: str) -> float | None:
    """The right password; the wait (None: refused)."""
    attempt = throttle.admit(user, address)
    if attempt is None:
        return None
    clock.advance(attempt.wait)
    throttle.succeeded(attempt)
    return attempt.wait


def test_the_delay_doubles_past_the_free_failures_up_to_a_ceiling() -> None:
    assert [delay_after(n) for n in range(FREE)] == [0.0] * FREE
    assert [delay_after(FREE + n) for n in range(4)] == [BASE, 2 * BASE, 4 * BASE, 8 * BASE]
    assert delay_after(FREE + 50) == MAX_DELAY


def test_a_guesser_from_one_address_is_slowed_more_and_more(
    throttle: LoginThrottle, clock: ManualClock
) -> None:
    waits = [guess(throttle, clock) for _ in range(FREE + 4)]
    assert waits[: FREE + 1] == [0.0] * (FREE + 1)  # the wait follows the failures before
    assert waits[FREE + 1 :] == [BASE, 2 * BASE, 4 * BASE]


def test_a_burst_of_concurrent_attempts_queues_and_the_overflow_is_refused(
    throttle: LoginThrottle,
) -> None:
    """Attempts still being checked count as failures: a burst gains nothing."""
    attempts = [throttle.admit("alice", ATTACKER) for _ in range(200)]
    admitted = [a for a in attempts if a is not None]
    waits = [a.wait for a in admitted]
    assert waits[:FREE] == [0.0] * FREE
    assert waits == sorted(waits) and waits[FREE + 1] == BASE
    assert len(admitted) < FREE + 6 and max(waits) <= MAX_QUEUE
    assert attempts[-1] is None


def test_the_real_user_elsewhere_is_not_held_up(
    throttle: LoginThrottle, clock: ManualClock
) -> None:
    for _ in range(200):
        guess(throttle, clock)
    assert login(throttle, clock, "alice", ELSEWHERE) == 0.0
    assert login(throttle, clock, "bob", ELSEWHERE) == 0.0


def test_a_user_who_logged_in_from_an_address_is_trusted_there(
    throttle: LoginThrottle, clock: ManualClock
) -> None:
    """Behind one address (a NAT) with a guesser, the real user is not held up: once it
    logged in there, neither the address's count nor its own name's applies to it."""
    assert login(throttle, clock, "alice", ATTACKER) == 0.0
    for _ in range(100):
        guess(throttle, clock, "bob")
    assert guess(throttle, clock, "alice") == 0.0  # a typo of alice's: no delay
    assert login(throttle, clock, "alice", ATTACKER) == 0.0
    assert throttle.admit("carol", ATTACKER) is None  # no one else is trusted there


def test_trust_lasts_a_day(throttle: LoginThrottle, clock: ManualClock) -> None:
    login(throttle, clock, "alice", ATTACKER)
    clock.advance(TRUST_TIME - 1)
    assert throttle._is_trusted("alice", ATTACKER, clock.monotonic())
    clock.advance(2)
    assert not throttle._is_trusted("alice", ATTACKER, clock.monotonic())


def test_a_guesser_spread_over_many_addresses_is_slowed_per_user(
    throttle: LoginThrottle, clock: ManualClock
) -> None:
    addresses = [f"10.1.0.{n}" for n in range(40)]
    for address in addresses:  # one free try from each: the user's count grows
        guess(throttle, clock, address=address)
    # a second try from any of them meets the user's own delay, shared across them all
    first = throttle.admit("alice", addresses[0])
    assert first is not None and first.wait == 0.0
    assert [throttle.admit("alice", a) for a in addresses[1:3]] == [None, None]
    clock.advance(MAX_DELAY - MAX_QUEUE / 2)
    later = throttle.admit("alice", addresses[5])
    assert later is not None and later.wait == MAX_QUEUE / 2
    fresh = throttle.admit("alice", "10.2.0.1")  # an address that never failed for alice
    assert fresh is not None and fresh.wait == 0.0


def test_failures_are_forgiven_with_time(throttle: LoginThrottle, clock: ManualClock) -> None:
    for _ in range(FREE + 6):
        guess(throttle, clock)
    clock.advance(HALF_LIFE * 10)
    assert throttle.failures(ATTACKER) < 1
    assert guess(throttle, clock) == 0.0


def test_an_attempt_decided_otherwise_does_not_count(
    throttle: LoginThrottle, clock: ManualClock
) -> None:
    for _ in range(FREE * 3):
        attempt = throttle.admit("alice", ATTACKER)
        assert attempt is not None and attempt.wait == 0.0
        throttle.ended(attempt)  # refused by an ACL, say: no failure, no longer in flight
