"""The cluster at a glance, read from the master's parts: what the dashboard and
``/metrics`` show, computed in one place so the two never disagree.

Nothing here is kept up to date on the request path: every figure is read
from the part that owns it when asked - slaves and capacity from the
:class:`~.slaves.Registry`, open files from :class:`~.leases.Leases`, totals
from the :class:`~.store.Store` - except the namespace totals, which cost a
scan of the whole table and are reused for :data:`TOTALS_TTL` seconds
(a dashboard polling every second and a Prometheus scraping every 15 seconds
would otherwise each pay it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..clock import Clock
from ..protocol.master import Capacity
from .leases import Leases
from .slaves import Registry
from .store import Store

#: Seconds the namespace totals (files, directories, bytes) are reused.
TOTALS_TTL = 2.0

LIVE, DEAD = "live", "dead"


@dataclass(frozen=True)
class Health:
    """Replication's state; None where nothing tracks it (yet)."""

    under_replicated: int | None = None
    lost: int | None = None
    repairs: int | None = None
    draining: int | None = None


@dataclass(frozen=True)
class Overview:
    started: float
    address: str
    files: int
    dirs: int
    size: int
    replica_num: int
    capacity: Capacity
    #: ``live``/``dead`` (and ``draining`` once slaves can drain) -> how many.
    slaves_by_state: dict[str, int]
    leases: int
    health: Health


class Status:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        leases: Leases,
        clock: Clock,
        address: Callable[[], str],
        replica_num: int,
        health: Callable[[], Health] = Health,
    ):
        self.store, self.registry, self.leases = store, registry, leases
        self.clock = clock
        self.address = address
        self.replica_num = replica_num
        #: Replication's figures, from the part that tracks them.
        self.health = health
        self.started = clock.time()
        self._totals: tuple[int, int, int] = (0, 0, 0)
        self._totals_read = float("-inf")

    def totals(self) -> tuple[int, int, int]:
        """(files, directories, bytes) of the namespace, at most TOTALS_TTL seconds old."""
        now = self.clock.monotonic()
        if now - self._totals_read >= TOTALS_TTL:
            self._totals = self.store.totals()
            self._totals_read = now
        return self._totals

    def overview(self) -> Overview:
        files, dirs, size = self.totals()
        health = self.health()
        live = sum(slave.alive for slave in self.registry.slaves.values())
        states = {LIVE: live, DEAD: len(self.registry.slaves) - live}
        if health.draining is not None:
            states["draining"] = health.draining
        return Overview(
            started=self.started,
            address=self.address(),
            files=files,
            dirs=dirs,
            size=size,
            replica_num=self.replica_num,
            capacity=self.registry.capacity(),
            slaves_by_state=states,
            leases=len(self.leases),
            health=health,
        )
