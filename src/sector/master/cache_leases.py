"""Leases on the attributes clients cache, broken before a change is acknowledged.

A client that asks (``Stat.cache``) may answer ``stat`` of that path from its
own memory for :data:`CACHE_LEASE` seconds, counted from when it *sent* the
request, so its lease always ends before the one recorded here. A lease stands
on the entry's row and on the rows of the directories above it: renaming or
removing any of them changes what the path names.

The store reports every write that changes what ``stat`` shows
(:attr:`~.store.Store.changed`): a new version, a new mtime, a replica added
or dropped, a rename, a removal. Every lease standing on a changed row is
broken there and then - its holder is sent :class:`Invalidate` at once - and
the request that made the change is not answered until each holder has sent
:class:`CacheRelease` or its lease has run out (:meth:`CacheLeases.recalls`).
So once anyone is told a change is done, no cache can still show what it
replaced. This is the scheme of AFS callbacks, bounded by leases (Gray and
Cheriton) because a holder cannot always answer: the blocking client reads
nothing between calls, and a client may have died or been cut off. A holder
that does not answer delays the change by at most :data:`CACHE_LEASE`.

A master that restarts has forgotten its leases while their holders may not
yet have noticed that their connection broke. The store keeps the horizon up
to which leases were granted (wall-clock time: it must survive the process),
and a restarted master acknowledges no change before it. A master whose
clients never ask for leases never waits.

Changes nobody is told about (a replica copied in the background) recall too,
but wait for nobody. The ``slaves`` a cached ``stat`` shows are the live
holders at the time it was leased: a slave dying is no change to the namespace.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field

from ..clock import SYSTEM, Clock
from ..protocol.master import CacheRelease, Invalidate
from ..protocol.messages import handles
from .sessions import Session
from .store import Store

#: Seconds a client may serve a leased ``stat`` from its cache. Longer gives more hits
#: and lets an idle holder hold up a change to what it cached for longer.
CACHE_LEASE = 1.0
#: The ``meta`` key under which the store keeps the horizon of granted leases.
HORIZON_KEY = "cache_lease_horizon"

#: The recalls the request being handled must wait for (None: nobody waits).
_recalls: ContextVar[list[asyncio.Future[None]] | None] = ContextVar(
    "sector_cache_recalls", default=None
)


class Recalls:
    """The context that collects a request's recalls (a class, not a generator-based
    context manager: it runs around every request, and costs a third as much)."""

    __slots__ = ("_token", "waiting")

    def __init__(self) -> None:
        self.waiting: list[asyncio.Future[None]] = []

    def __enter__(self) -> list[asyncio.Future[None]]:
        self._token = _recalls.set(self.waiting)
        return self.waiting

    def __exit__(self, *exc_info: object) -> None:
        _recalls.reset(self._token)


@dataclass(eq=False)
class CacheLease:
    """One client's lease on one path."""

    holder: _Holder
    path: str
    own: int
    above: tuple[int, ...]
    expires: float
    live: bool = True


@dataclass(eq=False)
class _Holder:
    """What the master knows of one session's cache."""

    session: Session
    leases: dict[str, CacheLease] = field(default_factory=dict)
    #: The last recall's number, and the recalls waiting for the holder's release.
    seq: int = 0
    waiting: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)


class CacheLeases:
    def __init__(self, store: Store, clock: Clock = SYSTEM, duration: float = CACHE_LEASE):
        self.store, self.clock, self.duration = store, clock, duration
        self._own: dict[int, set[CacheLease]] = {}
        self._above: dict[int, set[CacheLease]] = {}
        self._holders: dict[Session, _Holder] = {}
        self._by_expiry: deque[CacheLease] = deque()  # in grant order, so in expiry order
        self._horizon = _number(store.get_meta(HORIZON_KEY))
        # a master that restarted: leases of its previous run may still be held
        remaining = min(self._horizon - clock.time(), 3 * duration)
        self._fence = clock.monotonic() + remaining if remaining > 0 else 0.0
        store.changed = self.changed

    # --- granting ---------------------------------------------------------------------

    def grant(self, session: Session, path: str, own: int, above: Iterable[int]) -> float:
        """Lease ``path`` (whose row is ``own``, under directories ``above``) to
        ``session``; the lease's length in seconds."""
        now = self.clock.monotonic()
        self._expire(now)
        self._extend_horizon()
        holder = self._holders.get(session)
        if holder is None:
            holder = self._holders[session] = _Holder(session)
        old = holder.leases.get(path)
        if old is not None:
            self._drop(old)
        lease = CacheLease(holder, path, own, tuple(above), now + self.duration)
        holder.leases[path] = lease
        self._own.setdefault(own, set()).add(lease)
        for directory in lease.above:
            self._above.setdefault(directory, set()).add(lease)
        self._by_expiry.append(lease)
        return self.duration

    def _extend_horizon(self) -> None:
        """Keep the stored horizon ahead of every lease, writing it at most once per
        two lease lengths (a write per ``stat`` would cost more than the cache saves)."""
        now = self.clock.time()
        if now + self.duration > self._horizon:
            self._horizon = now + 3 * self.duration
            self.store.set_meta(HORIZON_KEY, self._horizon)

    def _expire(self, now: float) -> None:
        expiring = self._by_expiry
        while expiring and expiring[0].expires <= now:
            lease = expiring.popleft()
            if lease.live:
                self._drop(lease)

    def _drop(self, lease: CacheLease) -> None:
        lease.live = False
        for table, key in ((self._own, lease.own), *((self._above, a) for a in lease.above)):
            leases = table.get(key)
            if leases is not None:
                leases.discard(lease)
                if not leases:
                    del table[key]
        if lease.holder.leases.get(lease.path) is lease:
            del lease.holder.leases[lease.path]

    # --- breaking ---------------------------------------------------------------------

    def changed(self, entry_ids: Iterable[int], moved: bool) -> None:
        """The store changed rows ``entry_ids`` (``moved``: renamed or removed): break
        the leases standing on them, and make the request being handled wait."""
        broken: list[CacheLease] = []
        for entry_id in entry_ids:
            broken.extend(self._own.get(entry_id, ()))
            if moved:
                broken.extend(self._above.get(entry_id, ()))
        now = self.clock.monotonic()
        waiters = _recalls.get()
        if waiters is not None and now < self._fence:
            waiters.append(self._timer(self._fence - now))
        if not broken:
            return
        by_holder: dict[_Holder, list[CacheLease]] = {}
        for lease in broken:
            if lease.live:  # a lease stands on several rows: break it once
                self._drop(lease)
                if lease.expires > now:
                    by_holder.setdefault(lease.holder, []).append(lease)
        for holder, leases in by_holder.items():
            self._recall(holder, leases, now, waiters)

    def _recall(
        self,
        holder: _Holder,
        leases: list[CacheLease],
        now: float,
        waiters: list[asyncio.Future[None]] | None,
    ) -> None:
        holder.seq += 1
        push = holder.session.push
        if push is not None:
            push(Invalidate(holder.seq, [lease.path for lease in leases]))
        if waiters is None:
            return  # nobody is told of this change: nobody waits for it
        released = self._timer(max(lease.expires for lease in leases) - now)
        holder.waiting.append((holder.seq, released))
        waiters.append(released)

    @staticmethod
    def _timer(seconds: float) -> asyncio.Future[None]:
        """A future done after ``seconds`` at the latest (a release may finish it sooner)."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        loop.call_later(seconds, _finish, done)
        return done

    def recalls(self) -> Recalls:
        """``with cache_leases.recalls() as waiting:`` collects in ``waiting`` the recalls
        that the changes made inside the block must wait for: around the handling of
        one request. Each future is done once its holder let go or its lease ended."""
        return Recalls()

    @handles(CacheRelease)
    def release(self, session: Session, request: CacheRelease) -> None:
        """The client forgot every recalled path up to ``request.seq``; no reply."""
        holder = self._holders.get(session)
        if holder is None:
            return None
        still = []
        for seq, released in holder.waiting:
            if seq <= request.seq:
                _finish(released)
            elif not released.done():
                still.append((seq, released))
        holder.waiting = still
        return None

    def ended(self, session: Session) -> None:
        """``session`` is over. Its leases stay until they expire: the client may not
        know yet, and keep answering from its cache until it tries the connection."""
        holder = self._holders.pop(session, None)
        if holder is not None:
            holder.waiting.clear()  # their timers finish them

    def held(self) -> int:
        """Leases recorded and not yet known to be expired (for tests and the curious)."""
        return sum(len(h.leases) for h in self._holders.values())


def _finish(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


__all__ = ["CACHE_LEASE", "CacheLease", "CacheLeases"]
