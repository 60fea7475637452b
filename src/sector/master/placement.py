"""Where bytes go and where they are read from.

Deliberately simple and explainable:

* **A new file** goes to a live slave with room (``SLAVE_MIN_DISK_SPACE`` left
  on its disk, within its own ``MAX_DATA_SIZE``) among the roomiest - free
  space within :data:`FREE_TIE` of the most any candidate has counts as a tie,
  so slaves sharing one disk, or disks of a similar size, are equals - then the
  one with the fewest transfers in flight, then the one storing the fewest
  bytes. The last rule is what spreads one client's files written one after
  another: every slave is idle between them and they may report the same free
  space, so the master counts the bytes it commits to each slave itself, until
  the slave's next heartbeat reports the truth.
* **Another replica** goes to the candidate furthest (in the topology, see
  :mod:`.topology`) from the replicas the file has, ties broken as above; a
  path's ``REPLICATION_DISTANCE`` bounds how far, its ``REPLICATION_LOCATION``
  where.
* **A surplus replica** is trimmed from the most crowded location.
* **Reads** go to live holders of the current version: the nearest to the
  reader first, then the least busy; a draining slave only when nothing else
  holds the file.

A slave being decommissioned (``draining``) takes no new file and no replica;
nor does one that says it is in trouble (it cannot accept connections), and
readers try it last.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from ..errors import NoDiskError, ResourceError
from .slaves import Registry, Slave
from .store import Row, Store
from .targets import Policy
from .topology import Topology

#: Free space within this fraction of the roomiest candidate's is a tie.
FREE_TIE = 0.1


class Placement:
    def __init__(
        self, registry: Registry, store: Store, min_free: int, topology: Topology | None = None
    ):
        self.registry = registry
        self.store = store
        #: A slave with less free space than this takes no new file (SLAVE_MIN_DISK_SPACE).
        self.min_free = min_free
        self.topology = topology or Topology([])

    # --- reading --------------------------------------------------------------------

    def holders(self, row: Row) -> list[str]:
        """Ids of the slaves recorded as holding the file's current version, alive or not."""
        return [slave for slave, version in self.store.replicas(row.id) if version == row.version]

    def for_read(self, row: Row, near: str | None = None) -> list[Slave]:
        """The live holders of the current version, best first (never a dead slave)."""
        registry = self.registry
        live = [s for i in self.holders(row) if (s := registry.get(i)) is not None and s.alive]
        topology = self.topology
        if near is None:
            return sorted(live, key=lambda s: (s.draining, bool(s.trouble), s.active))
        return sorted(
            live,
            key=lambda s: (s.draining, bool(s.trouble), topology.distance(near, s.host), s.active),
        )

    def addresses(self, row: Row) -> list[str]:
        """``host:port`` of the live holders of the current version (``stat`` shows them)."""
        return [f"{s.host}:{s.port}" for s in self.for_read(row)]

    # --- writing --------------------------------------------------------------------

    def for_write(self, size_hint: int = 0, policy: Policy | None = None) -> Slave:
        """The slave a new file (or a rewritten one) goes to."""
        candidates = [s for s in self.registry.live() if not (s.draining or s.trouble)]
        if policy is not None and policy.location:
            candidates = [s for s in candidates if self.topology.within(s.host, policy.location)]
            if not candidates:
                raise ResourceError(f"no live slave at {policy.location} (REPLICATION_LOCATION)")
        if not candidates:
            raise ResourceError("no live slave to store the file")
        roomy = [s for s in candidates if s.room(self.min_free) >= size_hint]
        if not roomy:
            raise NoDiskError("no slave has enough free disk space")
        return self._best(roomy)

    def for_replica(
        self,
        holders: list[Slave],
        size: int,
        policy: Policy,
        exclude: Iterable[str] = (),
    ) -> Slave | None:
        """Where the next replica of a file held by ``holders`` goes; None when nowhere can."""
        excluded = set(exclude) | {s.id for s in holders}
        candidates = [
            s
            for s in self.registry.live()
            if s.id not in excluded and not s.draining and s.room(self.min_free) >= size
        ]
        candidates = self._allowed(candidates, holders, policy)
        if not candidates:
            return None
        spread = {s.id: self.spread(s, holders) for s in candidates}
        furthest = max(spread.values())
        return self._best([s for s in candidates if spread[s.id] == furthest])

    def spread(self, slave: Slave, holders: list[Slave]) -> int:
        """How far ``slave`` is from the nearest of ``holders`` (what a new replica maximises)."""
        if not holders:
            return 0
        return min(self.topology.distance(slave.host, h.host) for h in holders)

    def chain(self, first: Slave, size: int, policy: Policy, count: int) -> list[Slave]:
        """Up to ``count`` more slaves to stream a new version on to, after ``first``."""
        chosen: list[Slave] = []
        holders = [first]
        for _ in range(count):
            nxt = self.for_replica(holders, size, policy)
            if nxt is None:
                break
            chosen.append(nxt)
            holders.append(nxt)
        return chosen

    def surplus(self, holders: list[Slave], keep: int) -> list[Slave]:
        """Which of ``holders`` to drop so that ``keep`` remain: each time one from the
        location holding the most of them, the fullest slave there first."""
        remaining = list(holders)
        dropped: list[Slave] = []
        location = self.topology.location
        while len(remaining) > keep:
            crowd = Counter(location(s.host) for s in remaining)
            crowded = max(crowd.values())
            pool = [s for s in remaining if crowd[location(s.host)] == crowded]
            victim = min(pool, key=lambda s: (s.room(self.min_free), -s.stored, s.id))
            remaining.remove(victim)
            dropped.append(victim)
        return dropped

    def committed(self, slave_id: str, size: int) -> None:
        """``size`` bytes were just stored on a slave: count them before its next heartbeat
        does, so the next file's placement sees them (see the module docstring)."""
        slave = self.registry.get(slave_id)
        if slave is not None:
            slave.stored += size
            slave.free -= size

    # --- the rules ------------------------------------------------------------------

    def _allowed(
        self, candidates: list[Slave], holders: list[Slave], policy: Policy
    ) -> list[Slave]:
        topology = self.topology
        if policy.location:
            candidates = [s for s in candidates if topology.within(s.host, policy.location)]
        if policy.distance is not None and holders:
            limit = policy.distance
            candidates = [
                s
                for s in candidates
                if all(topology.distance(s.host, h.host) <= limit for h in holders)
            ]
        return candidates

    def _best(self, candidates: list[Slave]) -> Slave:
        """Among the roomiest (within FREE_TIE), the least busy, then the least stored."""
        roomiest = max(s.room(self.min_free) for s in candidates)
        peers = [s for s in candidates if s.room(self.min_free) >= roomiest * (1 - FREE_TIE)]
        return min(peers, key=lambda s: (s.active, s.stored, s.id))
