"""How large writes reach this slave's disk: through the page cache or around it, as measured.

Writing a large upload with ``O_DIRECT`` (from page-aligned buffers, 4 MiB a
request, one request in flight while the next chunk arrives) spares the CPU
copying every byte into page-cache pages: on the VM the bench ran on first, a
1 GiB upload went at the disk's pace (0.97x ``cp``) that way. On another VM
of the same kind with a slower shared disk, the same upload reached only
0.58x ``cp`` - about ``dd bs=4M conv=fsync``'s rate - where buffered writes
let the kernel keep many requests in flight. Neither way is right for every
disk, so the slave measures both on its own.

:class:`WritePath` is that measurement, as data (no disk, no clock of its
own): each large write is given a way when its first large chunk arrives,
and reports at its commit how fast the disk took its bytes: the seconds its
writer waited in ``pwrite``, in handing pages to writeback and in the final
``fsync`` - not the time the bytes took to arrive, which depends on the
client (a TLS upload is slower whichever way its bytes are written). The
first large writes try each way in turn; after that the faster way (the
median of its recent writes) is used, and one write in
:data:`EXPLORE_EVERY` tries the other, so a disk whose behaviour changes
(other tenants, a cache filling) is followed. The slave logs each change of
mind with both rates.
"""

from __future__ import annotations

import logging
import statistics
import threading

log = logging.getLogger("sector.slave")

#: A write reports its rate only if it put at least this many bytes through its way.
MEASURED_MIN = 32 * 1024 * 1024
#: Recent rates kept per way (their median decides).
KEPT = 5
#: One large write in this many tries the way that is not in favour.
EXPLORE_EVERY = 8

DIRECT, BUFFERED = True, False


def way_name(direct: bool) -> str:
    return "around the page cache (O_DIRECT)" if direct else "through the page cache"


class WritePath:
    """Which way the next large write goes (:meth:`choose`), learnt from the rates of the
    previous ones (:meth:`measured`). Thread-safe: writes are made on helper threads."""

    def __init__(self, direct_allowed: bool = True):
        #: False where the file system refuses O_DIRECT: nothing to choose then.
        self.direct_allowed = direct_allowed
        self.rates: dict[bool, list[float]] = {DIRECT: [], BUFFERED: []}
        self.chosen = 0
        self.handed: dict[bool, int] = {DIRECT: 0, BUFFERED: 0}
        self.favoured: bool | None = None
        self._lock = threading.Lock()

    def choose(self) -> bool:
        """True when the next large write should go around the page cache."""
        if not self.direct_allowed:
            return BUFFERED
        with self._lock:
            self.chosen += 1
            unmeasured = [way for way in (DIRECT, BUFFERED) if not self.rates[way]]
            if unmeasured:  # each way measured before any judgement, in turns
                way = min(unmeasured, key=lambda w: self.handed[w])
            else:
                best = self._best()
                way = (not best) if self.chosen % EXPLORE_EVERY == 0 else best
            self.handed[way] += 1
            return way

    def measured(self, direct: bool, size: int, seconds: float) -> None:
        """A large write went ``direct`` (or not): ``size`` bytes durable in ``seconds``."""
        if size < MEASURED_MIN or seconds <= 0:
            return
        with self._lock:
            rates = self.rates[direct]
            rates.append(size / seconds)
            del rates[:-KEPT]
            if not (self.rates[DIRECT] and self.rates[BUFFERED]):
                return
            best = self._best()
            if best != self.favoured:
                self.favoured = best
                log.info(
                    "large writes now go %s: %.0f MB/s, against %.0f MB/s %s",
                    way_name(best),
                    statistics.median(self.rates[best]) / 1e6,
                    statistics.median(self.rates[not best]) / 1e6,
                    way_name(not best),
                )

    def _best(self) -> bool:
        direct, buffered = (statistics.median(self.rates[w]) for w in (DIRECT, BUFFERED))
        return DIRECT if direct >= buffered else BUFFERED


__all__ = ["WritePath"]
