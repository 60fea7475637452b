"""What the dashboard's pages are built from: request rates, on a clock the tests drive."""

from __future__ import annotations

from sector.clock import ManualClock
from sector.master.web.views import RATE_WINDOW, RateMeter


def test_rates_are_the_change_in_request_counts_over_the_last_window() -> None:
    clock = ManualClock()
    counts = {"stat": 0, "ls": 0}
    meter = RateMeter(lambda: dict(counts), clock)
    first = meter.rates()
    assert (first.total, first.by_op) == (None, [])  # one sample: nothing to divide yet
    for _ in range(int(RATE_WINDOW)):
        clock.advance(1.0)
        counts["stat"] += 100
        counts["ls"] += 10
        rates = meter.rates()
    assert rates.total == 110.0
    assert rates.by_op == [("stat", 100.0), ("ls", 10.0)]
    # the stat traffic stops; after a window, only ls is still counted
    for _ in range(int(RATE_WINDOW) + 1):
        clock.advance(1.0)
        counts["ls"] += 10
        rates = meter.rates()
    assert rates.by_op == [("ls", 10.0)]
