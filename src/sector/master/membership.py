"""Slaves joining, reporting and leaving.

A slave registers with everything it holds; the master adopts the replicas
it expects and, in the same reply, names the stale ones for the slave to
delete before it serves anyone. Heartbeats keep it alive in the registry; a
closed connection or a silence longer than ``SLAVE_TIMEOUT`` marks it dead,
and clients are no longer sent there.
"""

from __future__ import annotations

import asyncio
import logging
from ipaddress import IPv4Network, IPv6Network

from ..config import address_allowed
from ..errors import E_SECURITY, SectorError
from ..protocol.data import ObjectId, ObjectInfo
from ..protocol.master import Heartbeat, Register, RegisterReply, check_version
from ..protocol.messages import Done, Error, Reply, handles
from .leases import Leases
from .links import Links
from .slaves import Registry, Slave
from .store import Store

log = logging.getLogger("sector.master")


class Membership:
    def __init__(
        self,
        registry: Registry,
        links: Links,
        store: Store,
        leases: Leases,
        key: bytes,
        acl: list[IPv4Network | IPv6Network],
        heartbeat_interval: float,
    ):
        self.registry, self.links, self.store, self.leases = registry, links, store, leases
        self.key, self.acl, self.heartbeat_interval = key, acl, heartbeat_interval

    @handles(Register)
    def register(self, address: str, request: Register) -> tuple[Reply, Slave | None]:
        """A slave (re)joins: the reply to send, and the slave when it is accepted."""
        if not address_allowed(address, self.acl):
            return Error(E_SECURITY, f"slave address {address} not allowed"), None
        try:
            check_version(request.version)
        except SectorError as exc:
            return Error.of(exc), None
        host = request.host or address
        slave = self.registry.register(
            request.slave_id, host, request.port, request.usage, request.software
        )
        self.links.to(slave)
        stale = self._reconcile(slave, request.objects)
        log.info(
            "slave %s joined from %s:%d (%d objects, %d stale)",
            slave.id,
            host,
            slave.port,
            len(request.objects),
            len(stale),
        )
        return RegisterReply(self.key, self.heartbeat_interval, slave.id, stale), slave

    @handles(Heartbeat)
    def heartbeat(self, slave: Slave, report: Heartbeat) -> Reply | None:
        """Record a heartbeat; None when a newer registration replaced this slave."""
        if not self.registry.is_current(slave):
            return None
        self.registry.update(slave, report.usage)
        return Done()

    def disconnected(self, slave: Slave) -> None:
        """A live slave keeps its connection open (and re-registers after any break),
        so a closed one means it is gone: stop sending clients there."""
        if self.registry.is_current(slave) and slave.alive:
            slave.alive = False
            log.warning("slave %s at %s:%d disconnected", slave.id, *slave.address)

    def _reconcile(self, slave: Slave, objects: list[ObjectInfo]) -> list[ObjectId]:
        """Adopt the replicas we expect; return the ones the slave must delete."""
        reported = {o.oid: (o.version, o.checksum) for o in objects}
        current = self.store.versions(reported)
        stale = []
        with self.store.transaction():
            for oid, _ in list(self.store.replicas_on(slave.id)):
                if oid not in reported:
                    self.store.drop_replica(oid, slave.id)
            for oid, (version, checksum) in reported.items():
                if current.get(oid) == version and checksum == self._checksum(oid):
                    self.store.set_replica(oid, slave.id, version)
                elif self.leases.is_writing(oid) or self.leases.holds(oid, version):
                    continue  # a write in flight: its bytes are not stale yet
                else:
                    self.store.drop_replica(oid, slave.id)
                    stale.append(ObjectId(oid, version))
        return stale

    def _checksum(self, oid: int) -> str:
        row = self.store.get(oid)
        return row.checksum if row else ""

    async def watch(self, slave_timeout: float) -> None:
        """Declare dead, forever, the slaves that stop sending heartbeats."""
        interval = max(0.05, min(1.0, slave_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            for slave in self.registry.expire():
                log.warning("slave %s at %s:%d stopped answering", slave.id, *slave.address)
