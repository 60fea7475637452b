"""What a slave has already accepted once, so that it is not accepted twice.

A token is a bearer credential: whoever holds the bytes may present them,
and on a plain data connection anyone on the path can see them. So the
capabilities that must act once are remembered here until their token
expires (after which the signature check refuses them anyway):

* a write *lease*: the first write session started with a lease's token is
  the only one; a second (on another connection, or after a commit or an
  abort) is refused. The master also tells the slave of leases that ended
  without it ever seeing them (an abort, a client that went away), so their
  tokens die too;
* an *order* of the master: each admin token is single-use, so an order seen
  on the wire cannot be replayed.

Memory is bounded by what the master issued within a token's lifetime, and
by :data:`MAX_ENTRIES` whatever happens; time comes from an injected clock.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable

from ..clock import Clock

#: Entries kept at most; past it the ones closest to expiry are dropped first.
MAX_ENTRIES = 1_000_000


class Spent:
    def __init__(self, clock: Clock):
        self.clock = clock
        self._until: dict[Hashable, float] = {}
        self._expiries: list[tuple[float, int, Hashable]] = []  # a heap, for pruning
        self._count = 0

    def __contains__(self, key: Hashable) -> bool:
        until = self._until.get(key)
        return until is not None and until >= self.clock.time()

    def spend(self, key: Hashable, until: float | None) -> bool:
        """Remember ``key`` until ``until`` (epoch seconds; None: a day); False if it
        was spent already - the caller must then refuse."""
        now = self.clock.time()
        self._prune(now)
        if key in self:
            return False
        until = now + 86400 if until is None else until
        self._until[key] = until
        self._count += 1
        heapq.heappush(self._expiries, (until, self._count, key))
        return True

    def _prune(self, now: float) -> None:
        heap = self._expiries
        while heap and (heap[0][0] < now or len(self._until) >= MAX_ENTRIES):
            until, _, key = heapq.heappop(heap)
            if self._until.get(key) == until:
                del self._until[key]
