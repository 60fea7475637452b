"""The time every server reads, injected so that tests can drive it.

Anything that expires (a slave not heard from, a signed token) asks a
:class:`Clock` rather than calling :mod:`time` itself: the servers get
:data:`SYSTEM`, and a test hands a :class:`ManualClock` to the piece it checks
and moves time forward with :meth:`ManualClock.advance` instead of sleeping.

Like :mod:`sector.errors`, this module imports nothing of ours, so every layer
may use it.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never jumps: for intervals and timeouts."""
        ...

    def time(self) -> float:
        """Seconds since the epoch: for timestamps other machines compare."""
        ...


class SystemClock:
    """The real clocks of this machine."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to, both readings together."""

    def __init__(self, wall: float = 1_700_000_000.0, monotonic: float = 1_000.0):
        self._wall = wall
        self._monotonic = monotonic

    def monotonic(self) -> float:
        return self._monotonic

    def time(self) -> float:
        return self._wall

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not run backwards")
        self._wall += seconds
        self._monotonic += seconds


SYSTEM: Clock = SystemClock()
