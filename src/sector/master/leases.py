"""Write leases: who may write which file right now.

A file has at most one writer. Opening an existing file for writing leases
its id; creating a new one leases its path, so a second creator - or a
``mkdir`` or ``move`` onto that path - gets E_BUSY until the writer closes.
Leases belong to the client session that took them and end with it: a writer
whose connection dies leaves the previous version in place. One whose client
is silent - SIGSTOPped, or cut off by the network with its connection still
open - expires after ``CLIENT_TIMEOUT`` (see :meth:`.files.Files.expire_leases`),
unless its slave reports bytes still arriving for it: a client streaming a
large file talks to its slave, not to the master.

Lease ids are never reused, not even by a restarted master (each run starts
at a block of its own, :meth:`~.store.Store.lease_base`): a lease id is what
binds a write token and a commit receipt to one write, so a receipt of an
earlier write can never pass for this one's.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ..errors import InvalidError, SectorBusyError
from .sessions import Session


@dataclass
class Lease:
    """An exclusive right to write a new version of one file."""

    id: int
    oid: int
    version: int
    path: str
    created: bool
    slave_id: str
    session: Session
    #: When the lease's write tokens expire (epoch seconds; 0: not said).
    expires: float = 0.0
    #: HiRELIABLE: the slaves the first one streams the write on to.
    chain: tuple[str, ...] = ()
    #: HiRELIABLE: the close returns only once this many replicas hold the new version.
    wanted: int = 0
    #: When a slave last reported bytes arriving for it (the master's monotonic clock).
    renewed: float = 0.0

    def idle(self, now: float) -> float:
        """Seconds since anyone showed this write to be alive (its client, or its slave)."""
        return now - max(self.renewed, self.session.last_active)

    @property
    def slaves(self) -> tuple[str, ...]:
        """Every slave the write goes to: the first, then its chain."""
        return (self.slave_id, *self.chain)


class Leases:
    def __init__(self, first_id: int = 1) -> None:
        self._by_id: dict[int, Lease] = {}
        self._writing: dict[int, int] = {}  # oid -> lease id
        self._creating: dict[str, int] = {}  # path of a new file -> lease id
        self._held: set[tuple[int, int]] = set()  # objects being copied (see hold)
        self._ids = itertools.count(max(1, first_id))

    def start_ids_at(self, first_id: int) -> None:
        """Hand out lease ids from ``first_id`` on (never lower than already handed out)."""
        self._ids = itertools.count(max(first_id, next(self._ids)))

    def __iter__(self):
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def grant(
        self,
        session: Session,
        oid: int,
        version: int,
        path: str,
        created: bool,
        slave_id: str,
        expires: float = 0.0,
        chain: tuple[str, ...] = (),
        wanted: int = 0,
    ) -> Lease:
        lease = Lease(
            next(self._ids),
            oid,
            version,
            path,
            created,
            slave_id,
            session,
            expires,
            chain,
            wanted,
        )
        self._by_id[lease.id] = lease
        session.leases.add(lease.id)
        if created:
            self._creating[path] = lease.id
        else:
            self._writing[oid] = lease.id
        return lease

    def owned(self, session: Session, lease_id: object) -> Lease:
        """The session's own lease ``lease_id``; E_INVALID for anyone else's or none."""
        lease = self._by_id.get(lease_id) if isinstance(lease_id, int) else None
        if lease is None or lease.session is not session:
            raise InvalidError("no such open file (was the master restarted?)")
        return lease

    def get(self, lease_id: int) -> Lease | None:
        """The lease ``lease_id``, whoever holds it; None when it ended or never was."""
        return self._by_id.get(lease_id)

    def release(self, lease_id: int) -> Lease | None:
        lease = self._by_id.pop(lease_id, None)
        if lease is None:
            return None
        lease.session.leases.discard(lease_id)
        if self._writing.get(lease.oid) == lease_id:
            del self._writing[lease.oid]
        if self._creating.get(lease.path) == lease_id:
            del self._creating[lease.path]
        return lease

    def renew(self, lease_ids: list[int], now: float) -> None:
        """Slaves saw bytes arrive for these writes: they are alive, whatever their client
        says to the master (nothing, while it streams)."""
        for lease_id in lease_ids:
            lease = self._by_id.get(lease_id)
            if lease is not None:
                lease.renewed = now

    def idle(self, now: float, timeout: float) -> list[Lease]:
        """The leases nobody showed to be alive for longer than ``timeout`` seconds."""
        return [lease for lease in self._by_id.values() if lease.idle(now) > timeout]

    def is_writing(self, oid: int) -> bool:
        return oid in self._writing

    def check_not_writing(self, oid: int, path: str) -> None:
        if oid in self._writing:
            raise SectorBusyError("file is open for writing elsewhere", path)

    def is_creating(self, path: str) -> bool:
        return path in self._creating

    def check_not_creating(self, path: str) -> None:
        if path in self._creating:
            raise SectorBusyError("a file is being created at this path", path)

    def reserve_path(self, path: str) -> None:
        """Hold ``path`` for a copy being made there (lease ids start at 1, so 0 is none)."""
        self._creating[path] = 0

    def free_path(self, path: str) -> None:
        self._creating.pop(path, None)

    def hold(self, oid: int, version: int) -> None:
        """Protect an object being made outside any lease (a ``copy``) until :meth:`unhold`."""
        self._held.add((oid, version))

    def unhold(self, oid: int, version: int) -> None:
        self._held.discard((oid, version))

    def holds(self, oid: int, version: int) -> bool:
        """Whether a lease is writing exactly this version (its bytes may not be stale)."""
        if (oid, version) in self._held:
            return True
        return any(lease.oid == oid and lease.version == version for lease in self._by_id.values())
