"""Write leases: who may write which file right now.

A file has at most one writer. Opening an existing file for writing leases
its id; creating a new one leases its path, so a second creator - or a
``mkdir`` or ``move`` onto that path - gets E_BUSY until the writer closes.
Leases belong to the client session that took them and end with it: a writer
whose connection dies leaves the previous version in place. They do not
expire by time, so they read no clock.
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


class Leases:
    def __init__(self) -> None:
        self._by_id: dict[int, Lease] = {}
        self._writing: dict[int, int] = {}  # oid -> lease id
        self._creating: dict[str, int] = {}  # path of a new file -> lease id
        self._held: set[tuple[int, int]] = set()  # objects being copied (see hold)
        self._ids = itertools.count(1)

    def __iter__(self):
        return iter(self._by_id.values())

    def grant(
        self, session: Session, oid: int, version: int, path: str, created: bool, slave_id: str
    ) -> Lease:
        lease = Lease(next(self._ids), oid, version, path, created, slave_id, session)
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

    def is_writing(self, oid: int) -> bool:
        return oid in self._writing

    def check_not_writing(self, oid: int, path: str) -> None:
        if oid in self._writing:
            raise SectorBusyError("file is open for writing elsewhere", path)

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
