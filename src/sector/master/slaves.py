"""The slaves the master knows: who they are, where, how full, and whether alive.

Liveness is read from an injected clock (:mod:`sector.clock`): a slave is
alive while its heartbeats keep coming, and :meth:`Registry.expire` declares
dead whoever has been silent longer than ``SLAVE_TIMEOUT``. Where files go is
:mod:`.placement`'s business, and talking to a slave :mod:`.links`'.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from ..clock import Clock
from ..config import TopologyRule, topology_location
from ..protocol.master import Capacity, SlaveInfo, Usage


@dataclass
class Slave:
    id: str
    host: str
    port: int
    started: float
    last_seen: float
    total: int = 0
    free: int = 0
    stored: int = 0
    files: int = 0
    #: the file system the slave stores on (slave/storage.py ``filesystem_id``): slaves
    #: sharing one disk report the same, and their capacity is counted once
    fs: str = ""
    #: The most it will store (its MAX_DATA_SIZE); 0: no limit but the disk.
    limit: int = 0
    #: what the slave says keeps it from serving (see Usage.trouble): "" when healthy
    trouble: str = ""
    alive: bool = True
    #: Being decommissioned: it serves reads and is a source of copies, but takes no new
    #: replica and its own no longer count towards any file's target.
    draining: bool = False
    #: Transfers granted to this slave and not yet finished (placement prefers idle slaves).
    active: int = 0
    #: File bytes received and sent since the slave started, as its last report said.
    received: int = 0
    sent: int = 0
    #: The slave machine's one-minute load average, as its last report said.
    load: float = 0.0
    #: The slave's software release, and where ``topology.conf`` puts its address.
    software: str = ""
    location: str = "/"

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def counts(self) -> bool:
        """Whether its replicas count towards their files' targets (alive, not draining)."""
        return self.alive and not self.draining

    def room(self, min_free: int) -> int:
        """Bytes it may still take: free disk above ``min_free``, within its own limit."""
        room = self.free - min_free
        if self.limit:
            room = min(room, self.limit - self.stored)
        return room

    def status(self, drained: bool = False) -> str:
        """``alive``; ``unhealthy`` while it says it cannot serve (no new files go
        there, and readers try it last); ``draining``/``drained`` while decommissioned;
        ``dead`` once silent or disconnected."""
        if not self.alive:
            return "dead"
        if self.draining:
            return "drained" if drained else "draining"
        return "unhealthy" if self.trouble else "alive"

    def describe(self, reveal: bool = True, salt: bytes = b"", drained: bool = False) -> SlaveInfo:
        """The slave as ``sysinfo`` shows it.

        Only administrators see where slaves are (``reveal``): for anyone else
        the id, address and location are blank and the file system id (which
        holds the host name) is replaced by a keyed digest of it, still equal
        for slaves sharing a disk so that capacity is counted once. A slave's
        address lets a peer aim at it; users reach slaves through grants, which
        name only the slaves holding what they may read or write.
        """
        fs = self.fs or self.id
        if not reveal:
            fs = hmac.new(salt, fs.encode(), "sha256").hexdigest()[:16]
        return SlaveInfo(
            id=self.id if reveal else "",
            address=f"{self.host}:{self.port}" if reveal else "",
            status=self.status(drained),
            total=self.total,
            free=self.free,
            stored=self.stored,
            files=self.files,
            started=self.started,
            active=self.active,
            fs=fs,
            location=self.location if reveal else "",
            limit=self.limit,
            trouble=self.trouble if self.alive else "",
        )


class Registry:
    def __init__(self, clock: Clock, timeout: float, topology: list[TopologyRule] | None = None):
        self.clock = clock
        self.timeout = timeout
        self.topology = topology or []
        self.slaves: dict[str, Slave] = {}

    def register(
        self, slave_id: str, host: str, port: int, usage: Usage, software: str = ""
    ) -> Slave:
        """A slave (re)joins; it replaces any earlier registration under the same id."""
        slave = Slave(slave_id, host, port, self.clock.time(), self.clock.monotonic())
        slave.software = software
        slave.location = topology_location(host, self.topology)
        self.slaves[slave_id] = slave
        self.update(slave, usage)
        return slave

    def update(self, slave: Slave, usage: Usage) -> None:
        """A heartbeat: the slave is alive now, with this much space."""
        slave.last_seen = self.clock.monotonic()
        slave.alive = True
        slave.total, slave.free = usage.total, usage.free
        slave.stored, slave.files = usage.stored, usage.files
        slave.fs, slave.limit = usage.fs, usage.limit
        slave.received, slave.sent, slave.load = usage.received, usage.sent, usage.load
        slave.trouble = usage.trouble

    def is_current(self, slave: Slave) -> bool:
        """Whether ``slave`` is still the registration of record for its id."""
        return self.slaves.get(slave.id) is slave

    def expire(self) -> list[Slave]:
        """Mark slaves silent for longer than the timeout as dead; return them."""
        now = self.clock.monotonic()
        lost = []
        for slave in self.slaves.values():
            if slave.alive and now - slave.last_seen > self.timeout:
                slave.alive = False
                lost.append(slave)
        return lost

    def capacity(self) -> Capacity:
        """The live slaves' storage with each file system counted once: the one place
        ``sysinfo``, ``df``, a mount's ``statfs``, the dashboard and /metrics take it from.

        Slaves on one disk (those of ``sector up``) report the same ``fs`` and the
        disk's size once; a slave that names no file system counts as its own. Of
        slaves sharing a disk the one with the smallest id speaks for it, so the
        figure does not flip between them from one heartbeat to the next.
        """
        live = sorted(self.live(), key=lambda s: s.id)
        disks: dict[str, Slave] = {}
        for slave in live:
            disks.setdefault(slave.fs or slave.id, slave)
        return Capacity(
            slaves=len(live),
            disks=len(disks),
            total=sum(s.total for s in disks.values()),
            free=sum(s.free for s in disks.values()),
            stored=sum(s.stored for s in live),
        )

    def heartbeat_age(self, slave: Slave) -> float:
        """Seconds since ``slave`` was last heard from."""
        return max(0.0, self.clock.monotonic() - slave.last_seen)

    def forgotten(self, after: float) -> list[Slave]:
        """Remove, and return, the slaves dead and silent for longer than ``after`` seconds
        (LOST_SLAVE_RETRY_TIME): they no longer show in ``sysinfo``."""
        now = self.clock.monotonic()
        gone = [s for s in self.slaves.values() if not s.alive and now - s.last_seen > after]
        for slave in gone:
            del self.slaves[slave.id]
        return gone

    def get(self, slave_id: str) -> Slave | None:
        return self.slaves.get(slave_id)

    def live(self) -> list[Slave]:
        return [s for s in self.slaves.values() if s.alive]

    def is_live(self, slave_id: str) -> bool:
        slave = self.slaves.get(slave_id)
        return slave is not None and slave.alive

    def find(self, name: str) -> Slave | None:
        """A slave by id or by ``host:port``, as ``sysinfo`` shows them."""
        return next(
            (s for s in self.slaves.values() if name in (s.id, "{}:{}".format(*s.address))),
            None,
        )
