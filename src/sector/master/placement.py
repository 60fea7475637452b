"""Where bytes go and where they are read from.

Deliberately simple and explainable: writes go to the live slave with the
most free space among those with the fewest transfers in flight; reads go to
the live holders of the current version, least busy first. A slave that says
it is in trouble (it cannot accept connections) gets no new file and is read
from last.
"""

from __future__ import annotations

from ..errors import NoDiskError, ResourceError
from .slaves import Registry, Slave
from .store import Row, Store


class Placement:
    def __init__(self, registry: Registry, store: Store, min_free: int):
        self.registry = registry
        self.store = store
        #: A slave with less free space than this takes no new file (SLAVE_MIN_DISK_SPACE).
        self.min_free = min_free

    def holders(self, row: Row) -> list[str]:
        """Ids of the slaves recorded as holding the file's current version, alive or not."""
        return [slave for slave, version in self.store.replicas(row.id) if version == row.version]

    def for_read(self, row: Row) -> list[Slave]:
        """The live holders of the current version, least busy first."""
        registry = self.registry
        live = [s for i in self.holders(row) if (s := registry.get(i)) is not None and s.alive]
        return sorted(live, key=lambda s: (bool(s.trouble), s.active))

    def addresses(self, row: Row) -> list[str]:
        """``host:port`` of every known holder of the current version (``stat`` shows them)."""
        registry = self.registry
        return [f"{s.host}:{s.port}" for i in self.holders(row) if (s := registry.get(i))]

    def for_write(self, size_hint: int = 0) -> Slave:
        """The slave a new file (or a rewritten one) goes to."""
        candidates = [s for s in self.registry.live() if not s.trouble]
        if not candidates:
            raise ResourceError("no live slave to store the file")
        roomy = [s for s in candidates if s.free - size_hint >= self.min_free]
        if not roomy:
            raise NoDiskError("no slave has enough free disk space")
        return min(roomy, key=lambda s: (s.active, -s.free))
