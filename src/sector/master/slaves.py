"""The slaves the master knows: their health, space and load, and placement.

Placement is deliberately simple and explainable: writes go to the live slave
with the most free space among those with the fewest transfers in flight;
reads go to live replicas, least busy first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..errors import NoDiskError, ResourceError
from ..protocol.master import SlaveInfo, Usage


@dataclass
class Slave:
    id: str
    host: str
    port: int
    total: int = 0
    free: int = 0
    stored: int = 0
    files: int = 0
    started: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.monotonic)
    alive: bool = True
    active: int = 0

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def describe(self) -> SlaveInfo:
        return SlaveInfo(
            id=self.id,
            address=f"{self.host}:{self.port}",
            status="alive" if self.alive else "dead",
            total=self.total,
            free=self.free,
            stored=self.stored,
            files=self.files,
            started=self.started,
            active=self.active,
        )


class Registry:
    def __init__(self, timeout: float, min_free: int):
        self.timeout = timeout
        self.min_free = min_free
        self.slaves: dict[str, Slave] = {}

    def register(self, slave_id: str, host: str, port: int, usage: Usage) -> Slave:
        slave = Slave(slave_id, host, port)
        self.slaves[slave_id] = slave
        self.update(slave, usage)
        return slave

    def update(self, slave: Slave, usage: Usage) -> None:
        slave.last_seen = time.monotonic()
        slave.alive = True
        slave.total, slave.free = usage.total, usage.free
        slave.stored, slave.files = usage.stored, usage.files

    def expire(self) -> list[Slave]:
        """Mark slaves silent for longer than the timeout as dead; return them."""
        now = time.monotonic()
        lost = []
        for slave in self.slaves.values():
            if slave.alive and now - slave.last_seen > self.timeout:
                slave.alive = False
                lost.append(slave)
        return lost

    def live(self) -> list[Slave]:
        return [s for s in self.slaves.values() if s.alive]

    def is_live(self, slave_id: str) -> bool:
        slave = self.slaves.get(slave_id)
        return slave is not None and slave.alive

    def choose_for_write(self, size_hint: int = 0) -> Slave:
        candidates = self.live()
        if not candidates:
            raise ResourceError("no live slave to store the file")
        roomy = [s for s in candidates if s.free - size_hint >= self.min_free]
        if not roomy:
            raise NoDiskError("no slave has enough free disk space")
        return min(roomy, key=lambda s: (s.active, -s.free))

    def order_for_read(self, slave_ids: list[str]) -> list[Slave]:
        holders = [self.slaves[i] for i in slave_ids if self.is_live(i)]
        return sorted(holders, key=lambda s: s.active)
