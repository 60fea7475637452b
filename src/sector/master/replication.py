"""Keeping every file at its target replica count: judging files, the repair queue, copies.

The master never carries file data, here either: a missing replica is made by
ordering a slave with room to fetch the object from a slave that holds it
(``fetch``, :class:`~sector.protocol.data.FetchObject`); the receiving slave
checks the whole object against its checksum before it keeps it, and only its
reply makes the master record the replica. A replica counts only while its
slave is alive and not being decommissioned, and only for the file's current
version, so a reader is never sent to a dead, draining-only or stale copy
(see :meth:`~.placement.Placement.for_read`).

What happens, and when:

* a write commits (:meth:`Replication.changed`), a slave dies or is drained
  (:meth:`slave_lost`, :meth:`decommission`), a damaged replica is found
  (:meth:`replica_lost`, the entry point for the integrity checks), a rule
  changes: the files concerned are put on the *recheck* list;
* the worker (:meth:`run`) judges them in batches: a file below its target is
  queued, most endangered first (one live replica before two); one above it
  (a slave came back) has the surplus trimmed; one no live slave holds is
  counted as lost until one comes back;
* copies are started as long as the slaves involved have a free slot: at most
  :data:`COPIES_PER_SLAVE` copies in flight per slave, as source or target,
  so that repair takes a bounded share of a slave's disk and network and
  clients keep the rest.

Nothing is judged until the slaves have had a slave timeout to register after
the master starts: until then a file whose slave has not yet reported in would
look lost. Time is read from the injected clock, so the decisions (the queue,
the back-off after a failed copy) are unit-tested without waiting
(``tests/master/test_replication.py``); the copies themselves only by the
integration tests, with real slaves.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from ..clock import Clock
from ..errors import E_NODISK, E_SECURITY
from ..protocol import tokens
from ..protocol.data import FetchObject, ObjectId, VerifyObjects
from ..protocol.master import Health
from ..protocol.messages import Error
from ..protocol.tokens import ReadClaims
from .links import Links
from .placement import Placement
from .safety import Safety
from .slaves import Registry, Slave
from .store import Row, Store
from .targets import Targets

log = logging.getLogger("sector.master")

#: Copies one slave takes part in at once (as source or as target). Two keep a disk
#: busy across the fsync at the end of each copy without starving its readers.
COPIES_PER_SLAVE = 2
#: Files judged per turn of the worker before it lets others run.
RECHECK_BATCH = 2000
#: How often the worker looks at the clock when nothing wakes it (seconds).
TICK = 0.5
#: Every file is judged again this often, in case an event was missed (seconds).
SCAN_INTERVAL = 300.0
#: A failed copy of a file is retried after this many seconds, doubling up to RETRY_MAX.
RETRY_MIN, RETRY_MAX = 1.0, 60.0
#: Files popped from the queue and put back (all their slaves busy) before a turn ends.
MAX_DEFERRED = 64
#: Bytes per second a copy is given at least before it is deemed stuck.
COPY_RATE_FLOOR = 1024 * 1024


@dataclass
class Need:
    """A file below its target: what counts, what it wants, and who holds it at all."""

    counted: int
    wanted: int
    #: Live holders, draining ones included (0: lost until a holder comes back).
    sources: int
    holders: tuple[str, ...] = ()


@dataclass(frozen=True)
class CopyPlan:
    """One replica to make: ``target`` fetches the file from ``source`` (or ``others``)."""

    oid: int
    version: int
    size: int
    checksum: str
    source: Slave
    others: tuple[Slave, ...]
    target: Slave


class RepairQueue:
    """Files waiting for a copy, fewest live replicas first, then in arrival order.

    Pure data: a file is in it at most once, at its most urgent priority.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, int]] = []
        self._priority: dict[int, int] = {}
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._priority)

    def __contains__(self, oid: object) -> bool:
        return oid in self._priority

    def push(self, oid: int, live: int) -> None:
        known = self._priority.get(oid)
        if known is not None and known <= live:
            return
        self._priority[oid] = live
        heapq.heappush(self._heap, (live, next(self._order), oid))

    def pop(self) -> int | None:
        while self._heap:
            live, _, oid = heapq.heappop(self._heap)
            if self._priority.get(oid) == live:
                del self._priority[oid]
                return oid
        return None

    def discard(self, oid: int) -> None:
        self._priority.pop(oid, None)


class _Busy:
    """Sentinel: a copy is possible, but not now (its slaves have no free slot)."""


BUSY = _Busy()


@dataclass
class _Retry:
    attempts: int = 0
    after: float = 0.0
    #: Targets that refused this file (full), until when.
    refused: dict[str, float] = field(default_factory=dict)


class Replication:
    """The files' replica counts, kept at their targets. One per master."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        placement: Placement,
        targets: Targets,
        links: Links,
        safety: Safety,
        keys: tokens.KeyRing,
        clock: Clock,
        token_ttl: float,
        settle: float,
    ):
        self.store, self.registry, self.placement = store, registry, placement
        self.targets, self.links, self.safety = targets, links, safety
        self.keys, self.clock, self.token_ttl = keys, clock, token_ttl
        #: Seconds after the start during which slaves register before anything is judged.
        self.settle = settle
        self._settled_at = clock.monotonic() + settle
        self.queue = RepairQueue()
        #: Every file known to be below target, with why.
        self.needy: dict[int, Need] = {}
        self.copying: dict[int, CopyPlan] = {}
        self.busy: Counter[str] = Counter()
        self.scanned = False
        #: Ids of the slaves being decommissioned (kept in the store across restarts).
        self.draining: set[str] = set(_load_draining(store))
        self._recheck: deque[int] = deque()
        self._rechecking: set[int] = set()
        self._stalled: set[int] = set()  # below target, and no slave could take a copy
        self._retry: dict[int, _Retry] = {}
        self._wake: asyncio.Event | None = None
        self._waiters: dict[int, asyncio.Event] = {}  # copies someone awaits (complete)
        self._tasks: set[asyncio.Task] = set()
        self._last_scan = 0.0

    # --- what happened: the events that put files on the recheck list -----------------

    def changed(self, oid: int) -> None:
        """A file's content or rules changed (a commit): judge it again soon."""
        self._recheck_soon([oid])

    def recount(self, oids: list[int]) -> None:
        """Judge these files again soon (their rules changed, a slave was forgotten...)."""
        self._recheck_soon(oids)

    def replica_lost(self, oid: int, version: int, slave_id: str) -> None:
        """A replica is gone or damaged: forget it now, and have another made.

        The entry point for whoever finds a bad replica (a failed read, ``fsck``,
        the scrub): after this call no reader is sent to ``slave_id`` for
        ``(oid, version)`` and the file is queued for a copy from a good replica.
        Quarantining (or deleting) the bad bytes on the slave is the caller's job.
        """
        if any(s == slave_id and v == version for s, v in self.store.replicas(oid)):
            with self.store.transaction():
                self.store.drop_replica(oid, slave_id)
            log.warning("replica %d.%d on slave %s is lost", oid, version, slave_id)
        self._recheck_soon([oid])

    def slave_lost(self, slave: Slave) -> None:
        """A slave died: every file it held is judged again (readers already avoid it)."""
        self._recheck_soon(oid for oid, _ in self.store.replicas_on(slave.id))

    def slave_joined(self, slave: Slave, oids: list[int]) -> None:
        """A slave (re)joined holding ``oids``: recount them, and retry what had no room."""
        slave.draining = slave.id in self.draining
        self._recheck_soon(oids)
        self._recheck_soon(self._stalled)
        self._stalled.clear()

    def decommission(self, slave: Slave, drain: bool = True) -> int:
        """Start (or with ``drain`` False, cancel) draining ``slave``; files it holds."""
        if drain:
            self.draining.add(slave.id)
        else:
            self.draining.discard(slave.id)
        slave.draining = drain
        with self.store.transaction():
            self.store.set_meta("draining", ",".join(sorted(self.draining)))
        oids = [oid for oid, _ in self.store.replicas_on(slave.id)]
        self._recheck_soon(oids)
        log.warning(
            "slave %s %s (%d files)",
            slave.id,
            "draining" if drain else "no longer draining",
            len(oids),
        )
        return len(oids)

    def drained(self, slave_id: str) -> bool:
        """Whether every file on a draining slave has its replicas elsewhere now."""
        if slave_id not in self.draining or not self.scanned:
            return False
        if any(slave_id in need.holders for need in self.needy.values()):
            return False
        return not any(oid in self._rechecking for oid, _ in self.store.replicas_on(slave_id))

    def _recheck_soon(self, oids: Any) -> None:
        for oid in oids:
            if oid not in self._rechecking:
                self._rechecking.add(oid)
                self._recheck.append(oid)
        self._poke()

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # --- judging a file -------------------------------------------------------------

    def recheck(self, limit: int = RECHECK_BATCH) -> int:
        """Judge up to ``limit`` files from the recheck list; how many were judged."""
        if not self.scanned:
            return 0
        count = 0
        while self._recheck and count < limit:
            oid = self._recheck.popleft()
            self._rechecking.discard(oid)
            self.judge(oid)
            count += 1
        return count

    def judge(self, oid: int, row: Row | None = None, holder_ids: list[str] | None = None) -> None:
        """Queue, count as lost, trim, or forget one file, by what it holds against what
        it wants."""
        row = row or self.store.get(oid)
        if row is None or row.is_dir or row.size == 0:  # an empty file has nothing to lose
            self._forget(oid)
            return
        if holder_ids is None:
            holder_ids = self.store.current_holders(row)
        registry = self.registry
        holders = [s for i in holder_ids if (s := registry.get(i)) is not None and s.alive]
        counted = [s for s in holders if s.counts]
        wanted = self.targets.policy(row).number
        if len(counted) >= wanted:
            self._forget(oid)
            if len(counted) > wanted and oid not in self.copying:
                self._trim(row, counted, wanted)
            return
        self.needy[oid] = Need(len(counted), wanted, len(holders), tuple(s.id for s in holders))
        if not holders:
            self.queue.discard(oid)  # lost: nothing to copy from until a holder returns
        elif oid not in self.copying:
            self.queue.push(oid, len(counted))

    def _forget(self, oid: int) -> None:
        self.needy.pop(oid, None)
        self.queue.discard(oid)
        self._stalled.discard(oid)
        self._retry.pop(oid, None)

    def _trim(self, row: Row, counted: list[Slave], wanted: int) -> None:
        if not self.safety.deletes_allowed():
            return
        victims = self.placement.surplus(counted, wanted)
        with self.store.transaction():
            for victim in victims:
                self.store.drop_replica(row.id, victim.id)
        for victim in victims:
            self.links.delete_on(victim.id, [ObjectId(row.id, row.version)])
            log.info("trimmed surplus replica of %d.%d on %s", row.id, row.version, victim.id)

    async def scan(self) -> None:
        """Judge every file (yielding between batches): at start, then now and then."""
        self._last_scan = self.clock.monotonic()
        for batch in self.store.files_with_replicas():
            for row, holder_ids in batch:
                if row.id not in self.copying:
                    self.judge(row.id, row, holder_ids)
            await asyncio.sleep(0)
        self.scanned = True

    # --- choosing copies ------------------------------------------------------------

    def next_copies(self) -> list[CopyPlan]:
        """Copies to start now, each already counted against its slaves' slots."""
        now = self.clock.monotonic()
        plans: list[CopyPlan] = []
        deferred: list[int] = []
        while len(deferred) < MAX_DEFERRED and self._has_free_slot():
            oid = self.queue.pop()
            if oid is None:
                break
            retry = self._retry.get(oid)
            if retry is not None and retry.after > now:
                deferred.append(oid)
                continue
            plan = self._plan(oid, now)
            if plan is BUSY:
                deferred.append(oid)
            elif isinstance(plan, CopyPlan):
                self._started(plan)
                plans.append(plan)
        for oid in deferred:
            need = self.needy.get(oid)
            if need is not None:
                self.queue.push(oid, need.counted)
        return plans

    def _has_free_slot(self) -> bool:
        return any(self.busy[s.id] < COPIES_PER_SLAVE for s in self.registry.live())

    def _plan(self, oid: int, now: float) -> CopyPlan | _Busy | None:
        row = self.store.get(oid)
        if row is None or row.is_dir:
            self._forget(oid)
            return None
        self.judge(oid, row)
        if oid not in self.needy or oid not in self.queue:
            return None  # judged satisfied, or lost
        self.queue.discard(oid)
        registry = self.registry
        holders = [s for i in self.store.current_holders(row) if (s := registry.get(i)) and s.alive]
        counted = [s for s in holders if s.counts]
        policy = self.targets.policy(row)
        retry = self._retry.get(oid)
        refused = {t for t, until in retry.refused.items() if until > now} if retry else set()
        excluded = refused | {s.id for s in holders}
        anywhere = self.placement.for_replica(counted, row.size, policy, excluded)
        if anywhere is None:
            self._stalled.add(oid)  # retried when a slave joins or gets room
            return None
        free = [s for s in holders if self.busy[s.id] < COPIES_PER_SLAVE]
        if not free:
            return BUSY
        full = {s.id for s in registry.live() if self.busy[s.id] >= COPIES_PER_SLAVE}
        target = (
            anywhere
            if anywhere.id not in full
            else self.placement.for_replica(counted, row.size, policy, excluded | full)
        )
        spread = self.placement.spread
        if target is None or spread(target, counted) < spread(anywhere, counted):
            return BUSY  # the best places are busy: wait for them rather than settle for less
        # the least busy holder reads; a draining one first: it is what is going away
        free.sort(key=lambda s: (not s.draining, self.busy[s.id], s.active))
        others = tuple(s for s in holders if s is not free[0])
        return CopyPlan(row.id, row.version, row.size, row.checksum, free[0], others, target)

    def _started(self, plan: CopyPlan) -> None:
        self.copying[plan.oid] = plan
        self.busy[plan.source.id] += 1
        self.busy[plan.target.id] += 1

    async def _copy_done(self, oid: int) -> None:
        """Wait until no copy of ``oid`` is in flight."""
        done = self._waiters.get(oid)
        if done is None:
            done = self._waiters[oid] = asyncio.Event()
        await done.wait()

    def _finished(self, plan: CopyPlan) -> None:
        self.copying.pop(plan.oid, None)
        waiter = self._waiters.pop(plan.oid, None)
        if waiter is not None:
            waiter.set()
        for slave_id in (plan.source.id, plan.target.id):
            self.busy[slave_id] -= 1
            if self.busy[slave_id] <= 0:
                del self.busy[slave_id]
        self._poke()

    # --- what a copy came to --------------------------------------------------------

    def copied(self, plan: CopyPlan, checksum: str) -> bool:
        """The target holds the object, verified: record it, if it is still wanted."""
        self._finished(plan)
        row = self.store.get(plan.oid)
        current = row is not None and row.version == plan.version and row.checksum == checksum
        if not current or not self.registry.is_live(plan.target.id):
            # rewritten or removed meanwhile: the copy is garbage already
            self.links.delete_on(plan.target.id, [ObjectId(plan.oid, plan.version)])
            self._recheck_soon([plan.oid])
            return False
        with self.store.transaction():
            self.store.set_replica(plan.oid, plan.target.id, plan.version)
        self.placement.committed(plan.target.id, plan.size)
        self._retry.pop(plan.oid, None)
        self.judge(plan.oid, row)
        return True

    def copy_failed(self, plan: CopyPlan, error: Error) -> None:
        """Try again later, elsewhere if the target was full."""
        self._finished(plan)
        now = self.clock.monotonic()
        retry = self._retry.setdefault(plan.oid, _Retry())
        retry.attempts += 1
        retry.after = now + min(RETRY_MAX, RETRY_MIN * 2 ** (retry.attempts - 1))
        if error.code == E_NODISK:
            retry.refused[plan.target.id] = now + RETRY_MAX
        log.warning(
            "copy of %d.%d from %s to %s failed (attempt %d): %s",
            plan.oid,
            plan.version,
            plan.source.id,
            plan.target.id,
            retry.attempts,
            error.msg,
        )
        self.judge(plan.oid)

    def _release_due(self) -> None:
        """Files whose back-off ended go back in the queue."""
        now = self.clock.monotonic()
        for oid, retry in list(self._retry.items()):
            if retry.after <= now and oid not in self.queue and oid not in self.copying:
                need = self.needy.get(oid)
                if need is None:
                    del self._retry[oid]
                elif need.sources:
                    self.queue.push(oid, need.counted)

    async def complete(self, row: Row, wanted: int) -> int:
        """Make replicas of ``row`` now, one after another, until ``wanted`` count or no
        slave can take one (a HiRELIABLE close); how many count then.

        These copies are a client's, waiting: they skip the queue and the
        per-slave bound that keeps repair polite.
        """
        registry = self.registry
        while True:
            holders = [
                s for i in self.store.current_holders(row) if (s := registry.get(i)) and s.alive
            ]
            counted = [s for s in holders if s.counts]
            if len(counted) >= wanted or not holders:
                return len(counted)
            if row.id in self.copying:  # the queue got there first: wait for that copy
                await self._copy_done(row.id)
                continue
            policy = self.targets.policy(row)
            target = self.placement.for_replica(counted, row.size, policy, {s.id for s in holders})
            if target is None:
                return len(counted)
            source = min(holders, key=lambda s: (self.busy[s.id], s.active))
            others = tuple(s for s in holders if s is not source)
            plan = CopyPlan(row.id, row.version, row.size, row.checksum, source, others, target)
            self._started(plan)
            await self._copy(plan)
            current = self.store.get(row.id)
            if current is None or current.version != row.version:
                return 0
            if target.id not in self.store.current_holders(row):
                return len(counted)  # the copy failed: the queue will try again

    # --- the worker -----------------------------------------------------------------

    def resettle(self) -> None:
        """Judge nothing until the slaves have had time to (re)register again, then every
        file: after an adoption, whose slaves come back one by one (a refused slave
        tries again within two seconds; the settle time is given twice over)."""
        self.scanned = False
        self._settled_at = self.clock.monotonic() + 2 * self.settle
        self._poke()

    async def run(self) -> None:
        """Judge, queue and copy, forever (a task of the master)."""
        self._wake = asyncio.Event()
        while True:
            if not self.scanned:
                await asyncio.sleep(max(0.0, self._settled_at - self.clock.monotonic()))
                await self.scan()
            while self.recheck():
                await asyncio.sleep(0)
            self._release_due()
            for plan in self.next_copies():
                self._spawn(self._copy(plan))
            if self.clock.monotonic() - self._last_scan > SCAN_INTERVAL:
                await self.scan()
            try:
                await asyncio.wait_for(self._wake.wait(), TICK)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    async def _copy(self, plan: CopyPlan) -> None:
        sources = [plan.source, *plan.others]
        claims = ReadClaims(plan.oid, plan.version)
        expires = self.clock.time() + self.token_ttl
        order = FetchObject(
            ObjectId(plan.oid, plan.version),
            plan.size,
            plan.checksum,
            [s.address for s in sources],
            # each checked by its source slave, so signed with that slave's key
            [self.keys.sign(s.id, claims, expires) for s in sources],
            self.store.path_of(plan.oid),
        )
        started = self.clock.monotonic()
        try:
            reply = await self.links.to(plan.target).call_alone(
                order, timeout=60.0 + plan.size / COPY_RATE_FLOOR
            )
        except BaseException:
            self._finished(plan)
            raise
        if isinstance(reply, Error):
            self.copy_failed(plan, reply)
            if reply.code == E_SECURITY:
                self._spawn(self._check_sources(plan))
            return
        if self.copied(plan, reply.checksum):
            log.info(
                "replicated %d.%d (%d bytes) from %s to %s in %.2fs",
                plan.oid,
                plan.version,
                plan.size,
                plan.source.id,
                plan.target.id,
                self.clock.monotonic() - started,
            )

    async def _check_sources(self, plan: CopyPlan) -> None:
        """The target saw bytes that do not match: have the sources re-read their copies."""
        for source in (plan.source, *plan.others):
            reply = await self.links.to(source).call(
                VerifyObjects([ObjectId(plan.oid, plan.version)])
            )
            if not isinstance(reply, Error) and (reply.damaged or reply.missing):
                self.replica_lost(plan.oid, plan.version, source.id)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    # --- what sysinfo shows ---------------------------------------------------------

    def health(self) -> Health:
        """The figures ``sysinfo``, ``df`` and the dashboard show, from this one place."""
        under = lost = 0
        for need in self.needy.values():
            if need.sources:
                under += 1
            else:
                lost += 1
        draining = sum(
            1
            for slave_id in self.draining
            if self.registry.is_live(slave_id) and not self.drained(slave_id)
        )
        return Health(
            under_replicated=under,
            lost=lost,
            copying=len(self.copying),
            queued=len(self.queue) + len(self._recheck),
            draining=draining,
            safe_mode=self.safety.describe(),
            scanned=self.scanned,
        )


def _load_draining(store: Store) -> list[str]:
    text = store.get_meta("draining")
    return [part for part in str(text).split(",") if part] if text else []
