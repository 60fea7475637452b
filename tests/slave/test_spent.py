"""What a slave accepted once it refuses the second time, until the token would expire."""

from __future__ import annotations

from sector.clock import ManualClock
from sector.slave import spent
from sector.slave.spent import Spent


def test_a_key_is_spent_once_until_its_expiry() -> None:
    clock = ManualClock()
    used = Spent(clock)
    until = clock.time() + 600
    assert used.spend(("lease", 7), until)
    assert not used.spend(("lease", 7), until)
    assert ("lease", 7) in used and ("lease", 8) not in used
    clock.advance(601)  # the token itself is refused from now on: forgetting is safe
    assert ("lease", 7) not in used
    assert used.spend(("lease", 9), clock.time() + 600) and len(used._until) == 1


def test_memory_stays_bounded(monkeypatch) -> None:
    monkeypatch.setattr(spent, "MAX_ENTRIES", 100)
    clock = ManualClock()
    used = Spent(clock)
    for n in range(1000):
        assert used.spend(n, clock.time() + 600 + n)
    assert len(used._until) <= 100
    assert 999 in used  # the latest to expire are kept
