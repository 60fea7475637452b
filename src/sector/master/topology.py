"""Where slaves sit (``topology.conf``) and how far apart two of them are.

A location is a path of levels, ``/dc1/rack2``, given to an address range by
``topology.conf`` (:func:`sector.config.topology_location`, which also gives
each registered slave its ``location``); an address no line covers sits at
the root, ``/``.

Distance follows Sector's: two slaves on one host are 0 apart (one machine
fails as a whole), and otherwise ``levels + 1 - shared`` where ``levels`` is
the depth of the deepest location configured and ``shared`` the number of
leading levels their locations have in common. With ``/dc/rack`` locations:
same rack 1, same data centre 2, different data centres 3. Replicas are
placed as far apart as this allows, and ``REPLICATION_DISTANCE`` caps it.
"""

from __future__ import annotations

from ..config import TopologyRule, topology_location
from ..protocol.paths import components


class Topology:
    def __init__(self, rules: list[TopologyRule]):
        self.rules = rules
        self.levels = max((len(components(r.location)) for r in rules), default=0)
        self._cache: dict[str, tuple[str, ...]] = {}

    def location(self, host: str) -> tuple[str, ...]:
        """The levels of ``host``'s location (empty: the root, for unmapped addresses)."""
        found = self._cache.get(host)
        if found is None:
            found = self._cache[host] = self._lookup(host)
        return found

    def _lookup(self, host: str) -> tuple[str, ...]:
        return tuple(components(topology_location(host, self.rules)))

    def path(self, host: str) -> str:
        """``host``'s location as a path, as ``sysinfo`` shows it."""
        return "/" + "/".join(self.location(host))

    def distance(self, host_a: str, host_b: str) -> int:
        """How far apart two hosts are (see the module docstring); 0 for the same host."""
        if host_a == host_b:
            return 0
        a, b = self.location(host_a), self.location(host_b)
        shared = 0
        for level_a, level_b in zip(a, b, strict=False):
            if level_a != level_b:
                break
            shared += 1
        return self.levels + 1 - shared

    def within(self, host: str, location: str) -> bool:
        """Whether ``host`` sits at ``location`` or below it (REPLICATION_LOCATION)."""
        wanted = tuple(components(location))
        return self.location(host)[: len(wanted)] == wanted
