"""The cluster as a whole: ping, sysinfo, fsck and shutdown."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable

from ..clock import Clock
from ..errors import SectorNotFoundError, SectorPermissionError
from ..protocol.data import ObjectId, StopSlave, VerifyObjects
from ..protocol.master import (
    Fsck,
    FsckReply,
    MasterInfo,
    Ping,
    PingReply,
    Problem,
    Quota,
    QuotaReply,
    Shutdown,
    ShutdownReply,
    Sysinfo,
    SysinfoReply,
)
from ..protocol.messages import Error, Reply, handles
from ..protocol.paths import normalize
from .links import Links
from .namespace import Namespace
from .placement import Placement
from .replication import Replication
from .sessions import Session
from .slaves import Registry
from .store import Row, Store

log = logging.getLogger("sector.master")


class Admin:
    def __init__(
        self,
        store: Store,
        namespace: Namespace,
        registry: Registry,
        placement: Placement,
        links: Links,
        replication: Replication,
        clock: Clock,
        address: Callable[[], str],
        replica_num: int,
        replica_lost: Callable[[int, int, str, str], bool],
    ):
        self.store, self.namespace = store, namespace
        self.registry, self.placement, self.links = registry, placement, links
        self.replication = replication
        self.clock = clock
        #: ``host:port`` the master is bound to (the configured port may be 0: any).
        self.address = address
        self.replica_num = replica_num
        #: Where a damaged or missing replica is given up (:meth:`.Integrity.replica_lost`).
        self.replica_lost = replica_lost
        self.started = clock.time()
        #: keys the file-system digests non-administrators see (Slave.describe)
        self._salt = secrets.token_bytes(16)

    @handles(Ping)
    def ping(self, session: Session, request: Ping) -> Reply:
        return PingReply(self.clock.time())

    @handles(Sysinfo)
    def sysinfo(self, session: Session, request: Sysinfo) -> Reply:
        files, dirs, size = self.store.totals()
        admin = session.user.admin
        replication = self.replication
        return SysinfoReply(
            MasterInfo(
                self.started,
                self.address(),
                files,
                dirs,
                size,
                self.replica_num,
                replication.health(),
            ),
            [
                slave.describe(admin, self._salt, replication.drained(slave.id))
                for slave in self.registry.slaves.values()
            ],
            self.registry.capacity(),
        )

    @handles(Quota)
    def quota(self, session: Session, request: Quota) -> Reply:
        user = session.user
        used, files = self.store.usage(user.name)
        return QuotaReply(user.name, used, files, user.quota)

    @handles(Fsck)
    async def fsck(self, session: Session, request: Fsck) -> Reply:
        """Have each live slave re-read its replicas under a path and check their checksums.

        Only the replicas the metadata says hold the current version are
        checked; a file none of whose holders is alive is reported missing
        without asking anyone. A slave quarantines each damaged replica as it
        finds it, and each damaged or missing one is given up here (and so
        copied again from a good one): a second fsck no longer lists it.
        With ``repair`` those copies are made now, before the reply, rather
        than in the repair queue's turn.
        """
        path = normalize(request.path)
        session.user.check_read(path)
        if request.repair and not session.user.admin:
            raise SectorPermissionError(
                f"user {session.user.name} is not an administrator: fsck --repair copies "
                "at once, ahead of everyone's reads"
            )
        top = self.namespace.stat(path)
        files = [top] if not top.is_dir else self.store.descendants(top.id)
        found: list[tuple[int, str | None, str, str]] = []  # (oid, slave, problem, detail)
        by_slave: dict[str, list[Row]] = {}
        replicas = 0
        policy = self.replication.targets.policy
        for row in files:
            if row.is_dir:
                continue
            live = [h for h in self.placement.holders(row) if self.registry.is_live(h)]
            if not live:
                found.append((row.id, None, "missing", ""))
            else:
                counted = sum(1 for h in live if not self.registry.slaves[h].draining)
                wanted = policy(row).number
                if counted < wanted and row.size:
                    found.append(
                        (row.id, None, "under-replicated", f"{counted} of {wanted} replicas")
                    )
            for slave_id in live:
                by_slave.setdefault(slave_id, []).append(row)
                replicas += 1
        slave_ids = list(by_slave)
        replies = await asyncio.gather(
            *(
                self.links.to(self.registry.slaves[i]).call(
                    VerifyObjects([ObjectId(r.id, r.version) for r in by_slave[i]])
                )
                for i in slave_ids
            )
        )
        for slave_id, reply in zip(slave_ids, replies, strict=True):
            if isinstance(reply, Error):
                found.extend((r.id, slave_id, "unreachable", "") for r in by_slave[slave_id])
                continue
            for problem, objects in (("missing", reply.missing), ("damaged", reply.damaged)):
                for obj in objects:
                    found.append((obj.oid, slave_id, problem, ""))
                    self.replica_lost(obj.oid, obj.version, slave_id, problem)
        repaired = await self._repair({oid for oid, *_ in found}) if request.repair else set()
        if not session.user.admin:  # which slave it is, is for administrators (see sysinfo)
            found = [(oid, slave and "", what, detail) for oid, slave, what, detail in found]
        problems = [
            Problem(self.store.path_of(oid), slave, what, detail, oid in repaired)
            for oid, slave, what, detail in found
        ]
        problems.sort(key=lambda p: (p.path, p.slave or ""))
        return FsckReply(sum(not r.is_dir for r in files), replicas, problems)

    async def _repair(self, oids: set[int]) -> set[int]:
        """Bring each file back to its target now (most endangered first); those that are."""
        rows = [row for oid in oids if (row := self.store.get(oid)) is not None and row.size]
        live = self.registry.is_live
        rows.sort(key=lambda r: sum(live(h) for h in self.placement.holders(r)))
        repaired = set()
        for row in rows:
            wanted = self.replication.targets.policy(row).number
            if await self.replication.complete(row, wanted) >= wanted:
                repaired.add(row.id)
        return repaired

    @handles(Shutdown)
    async def shutdown(self, session: Session, request: Shutdown) -> Reply:
        """Stop one slave (by id or host:port), or every slave and then this master."""
        if not session.user.admin:
            raise SectorPermissionError(f"user {session.user.name} is not an administrator")
        if request.slave:
            slave = self.registry.find(request.slave)
            if slave is None:
                raise SectorNotFoundError(f"no slave {request.slave!r} is known")
            reply = await self.links.to(slave).call(StopSlave())
            if isinstance(reply, Error):
                raise reply.exception(request.slave)
            slave.alive = False
            return ShutdownReply([slave.id])
        live = self.registry.live()
        await asyncio.gather(*(self.links.to(s).call(StopSlave()) for s in live))
        for slave in live:
            slave.alive = False
        session.stop_master = True
        log.warning("cluster shutdown requested by %s", session.user.name)
        return ShutdownReply([s.id for s in live] + ["master"])
