"""Dashboard sessions, on a clock the tests drive."""

from __future__ import annotations

from sector.clock import ManualClock
from sector.master.users import User
from sector.master.web.auth import WebSessions, same_token

ALICE = User("alice", "", read=["/"])


def test_a_session_lives_while_used_and_ends_after_the_idle_timeout() -> None:
    clock = ManualClock()
    sessions = WebSessions(clock, idle=100.0)
    token = sessions.open(ALICE)
    for _ in range(5):
        clock.advance(99.0)
        found = sessions.get(token)
        assert found is not None and found.user is ALICE
    clock.advance(100.5)
    assert sessions.get(token) is None
    assert len(sessions) == 0


def test_tokens_are_random_and_a_closed_or_unknown_one_finds_nothing() -> None:
    sessions = WebSessions(ManualClock())
    first, second = sessions.open(ALICE), sessions.open(ALICE)
    assert first != second and len(first) >= 43
    session = sessions.get(first)
    assert session is not None and session.csrf not in (first, second)
    sessions.close(first)
    assert sessions.get(first) is None and sessions.get("") is None
    assert sessions.get(second) is not None


def test_the_least_recently_used_session_goes_when_there_are_too_many() -> None:
    sessions = WebSessions(ManualClock(), limit=2)
    oldest, middle = sessions.open(ALICE), sessions.open(ALICE)
    sessions.get(oldest)  # used again: now the middle one is the least recent
    newest = sessions.open(ALICE)
    assert sessions.get(middle) is None
    assert sessions.get(oldest) is not None and sessions.get(newest) is not None


def test_tokens_compare_equal_only_when_both_are_present() -> None:
    assert same_token("abc", "abc")
    assert not same_token("abc", "abd")
    assert not same_token("", "") and not same_token(None, None) and not same_token("a", None)
