"""The ``stat`` replies a client keeps, for as long as the master's lease on each allows.

The master keeps this cache coherent (:mod:`sector.master.cache_leases`): it
leases each reply for a short time and, before it acknowledges any change to
what a reply showed, recalls it (``Invalidate``) and waits for the client to
let go (``CacheRelease``) or for the lease to end. The client's half is here:
a lease is counted from when the request was *sent*, so it ends before the
master's; and the client reads every recall that has arrived before it
answers from the cache (:meth:`sector.client.Client.stat`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import msgspec

from ..clock import SYSTEM, Clock

if TYPE_CHECKING:
    from .session import Stat

#: A lease is trusted for this share of its length: the master's clock and ours may
#: run at slightly different rates (NTP slews a clock by at most 0.05 %).
CLOCK_MARGIN = 0.99
#: Entries kept at most; when full the cache is emptied (forgetting is always safe).
CACHE_LIMIT = 100_000


class AttributeCache:
    """Leased ``Stat``s by normalised path. Not thread-safe: the client's lock guards it."""

    def __init__(self, clock: Clock = SYSTEM):
        self.clock = clock
        self._entries: dict[str, tuple[Stat, float]] = {}
        #: Answers given from the cache, and ``stat`` requests sent for want of one.
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, path: str) -> Stat | None:
        """A copy of the cached ``Stat`` of ``path`` while its lease lasts, else None."""
        found = self._entries.get(path)
        if found is not None:
            stat, expires = found
            if self.clock.monotonic() < expires:
                self.hits += 1
                return msgspec.structs.replace(stat, slaves=list(stat.slaves))
            del self._entries[path]
        self.misses += 1
        return None

    def put(self, path: str, stat: Stat, sent: float, lease: float) -> None:
        """Keep ``stat`` for a lease of ``lease`` seconds on a request sent at ``sent``
        (this cache's clock)."""
        if lease <= 0:
            return
        if len(self._entries) >= CACHE_LIMIT:
            self._entries.clear()
        self._entries[path] = (stat, sent + lease * CLOCK_MARGIN)

    def forget(self, paths: Iterable[str]) -> None:
        for path in paths:
            self._entries.pop(path, None)

    def clear(self) -> None:
        """Forget everything: the session that held the leases is gone."""
        self._entries.clear()


__all__ = ["AttributeCache"]
