"""The scrub: every stored object re-read, slowly, forever, and quarantined if it rotted.

Readers check every block they get, but a replica nobody reads could rot
unseen until the day it is the last one. The scrub re-reads each object whole,
at ``SCRUB_RATE`` MB/s (slave.conf; 0 turns it off), checks it against its
checksum - rebuilding a rotten sums file from good bytes, quarantining bad
bytes (:meth:`~.storage.Storage.judge`) - and starts over when it has been
through them all. The master hears of a quarantined object with the next
heartbeat and has it copied again from a good replica.

Why the default is 4 MB/s: HDFS's block scanner reads 1 MB/s per volume by
default and aims to cover each block every three weeks; disks are faster now,
and 4 MB/s is under 3 % of one spinning disk's sequential rate while it still
goes through a terabyte in about three days. The reads bypass the page cache
(:func:`~.storage.read_politely`): they neither push out what readers use nor
check a cached copy instead of the disk.

The scrub steps aside while clients write here: it starts on the next object
only when no write has arrived for ``QUIET`` seconds (or after ``MAX_PAUSE``,
so that a slave written to without a break still checks an object a minute).
Its deadline is days away, a writer's is milliseconds; re-reading tiny files at
up to 1,000 a second took ~30 % of a slave's samples during small-file creates
and cost each create ~0.5 ms of the slave's CPU and ~0.3 ms of its latency
(``python -m bench.cpu``, SCRUB_RATE 4 against 0). Skipping young objects
instead would still re-read them a pass later, in the middle of whatever runs
then; the objects a writer just wrote were hashed as they were written anyway.

Time is read from an injected clock and slept through an injected ``sleep``,
so a test can check the pace without waiting for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ..clock import SYSTEM, Clock
from ..protocol.checksum import BlockHasher
from .storage import CHECK_CHUNK, Storage, StoredObject, read_politely

log = logging.getLogger("sector.slave")

DEFAULT_RATE = 4 * 1024 * 1024
#: Seconds between two passes, so a slave holding little does not spin.
REST = 1.0
#: Bytes an object counts for at least: opening a tiny file is not free.
MIN_COST = 4096
#: Seconds without a write before the scrub takes the next object...
QUIET = 1.0
#: ...or at most this long a wait for one, so that a slave never free of writers still
#: checks an object a minute.
MAX_PAUSE = 60.0


def never_written() -> float:
    return float("-inf")


class Scrub:
    def __init__(
        self,
        storage: Storage,
        rate: float,
        clock: Clock = SYSTEM,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        last_write: Callable[[], float] = never_written,
    ):
        self.storage = storage
        #: When a client's write last reached this slave (the clock's monotonic time).
        self.last_write = last_write
        #: Bytes per second at most.
        self.rate = rate
        self.clock, self.sleep = clock, sleep
        #: Passes completed, objects checked and quarantined: for logs and tests.
        self.passes = self.checked = self.damaged = 0
        self._chunk = max(64 * 1024, min(CHECK_CHUNK, int(rate / 4)))

    async def run(self) -> None:
        """Pass after pass over everything stored, until cancelled."""
        while True:
            await self.one_pass()
            await self.sleep(REST)

    async def one_pass(self) -> None:
        for key in list(self.storage.index):
            obj = self.storage.index.get(key)
            if obj is not None:
                await self._wait_for_quiet()
                await self.check(obj)
        self.passes += 1

    async def _wait_for_quiet(self) -> None:
        """Wait until no write has arrived for QUIET seconds, or MAX_PAUSE has gone by."""
        started = self.clock.monotonic()
        while True:
            now = self.clock.monotonic()
            owed = min(self.last_write() + QUIET, started + MAX_PAUSE) - now
            if owed <= 0:
                return
            await self.sleep(owed)

    async def check(self, obj: StoredObject) -> None:
        """Read ``obj`` whole at the configured pace; keep it or quarantine it."""
        loop = asyncio.get_running_loop()
        hasher = BlockHasher()
        chunks = read_politely(obj.path, self._chunk)

        def step() -> int:
            chunk = next(chunks, None)
            if chunk is None:
                return -1
            hasher.update(chunk)
            return len(chunk)

        try:
            while True:
                started = self.clock.monotonic()
                count = await loop.run_in_executor(None, step)
                if count < 0:
                    break
                await self._pace(count, self.clock.monotonic() - started)
        except FileNotFoundError:
            return  # deleted meanwhile
        finally:
            chunks.close()
        await self._pace(MIN_COST, 0.0)
        if self.storage.index.get((obj.oid, obj.version)) is not obj:
            return  # deleted, replaced or quarantined while we read it
        self.checked += 1
        if not self.storage.judge(obj, hasher):
            self.damaged += 1

    async def _pace(self, count: int, spent: float) -> None:
        """Sleep so that ``count`` bytes took at least ``count / rate`` seconds."""
        owed = count / self.rate - spent
        if owed > 0:
            await self.sleep(owed)
