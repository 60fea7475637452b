"""Damaged and lost replicas: how the master hears of them, and the one place it lets go.

A replica whose bytes no longer match its checksum is found in one of three
ways, and by then its slave has quarantined it (moved it aside, never to serve
or report it again) or does so as it checks it:

* a reader's block sums fail (:class:`ReportBadReplica`), or those of a slave
  copying a replica from another (:class:`BadSource`): the master has the
  source slave re-read that replica whole (``verify``), since a reader may be
  wrong or lying, and one check at a time per replica is ever in flight;
* the slave finds it itself - its scrub, or the first read of a replica whose
  sums file had to be rebuilt - and says so (:class:`Quarantined`), and the
  master asks it to confirm, as above;
* ``fsck`` has every slave re-read what it holds (:mod:`.admin`).

Each ends in :meth:`Integrity.replica_lost`, which forgets the replica (it is
never handed to a reader again) and hands the file to ``on_lost`` - the
replication queue, which copies it again from a good replica.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from ..errors import SectorNotFoundError
from ..protocol.data import ObjectId, VerifyObjects, VerifyReply
from ..protocol.master import BadSource, Quarantined, ReportBadReplica
from ..protocol.messages import Done, Reply, handles
from .links import Links
from .sessions import Session
from .slaves import Registry, Slave
from .store import Store

log = logging.getLogger("sector.master")

#: Called with (oid, version, slave id) for every replica given up: the re-copy's start.
OnLost = Callable[[int, int, str], None]


class Integrity:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        links: Links,
        spawn: Callable[[Coroutine[Any, Any, Any]], object],
        on_lost: OnLost | None = None,
    ):
        self.store, self.registry, self.links = store, registry, links
        self.spawn = spawn
        self.on_lost = on_lost
        self._checking: set[tuple[int, int, str]] = set()

    @handles(ReportBadReplica)
    def bad_replica(self, session: Session, request: ReportBadReplica) -> Reply:
        """A reader's word that a replica sent bad bytes: have its slave check it.

        The reader must be allowed to read the file; a replica the master does
        not count (any more) needs no check. The reply does not wait for the
        check, which re-reads the whole replica.
        """
        row = self.store.get(request.oid)
        if row is None or row.is_dir:
            raise SectorNotFoundError(f"no file has id {request.oid}")
        session.user.check_read(self.store.path_of(row.id))
        self._suspect(self.registry.find(request.slave), request.oid, request.version)
        return Done()

    @handles(BadSource)
    def bad_source(self, slave: Slave, report: BadSource) -> Reply:
        """A slave copying a replica got bad bytes from ``report.source``: check that one."""
        self._suspect(self.registry.find(report.source), report.obj.oid, report.obj.version)
        return Done()

    def _suspect(self, slave: Slave | None, oid: int, version: int) -> None:
        """Have ``slave`` check its replica of (oid, version), unless it is not counted
        (any more) or a check is already on its way."""
        if slave is None or not self._counted(oid, version, slave.id):
            return
        key = (oid, version, slave.id)
        if key not in self._checking:
            self._checking.add(key)
            self.spawn(self._check(slave, oid, version))

    async def _check(self, slave: Slave, oid: int, version: int) -> None:
        try:
            reply = await self.links.to(slave).call(VerifyObjects([ObjectId(oid, version)]))
        finally:
            self._checking.discard((oid, version, slave.id))
        if isinstance(reply, VerifyReply):
            for lost in reply.damaged:
                self.replica_lost(lost.oid, lost.version, slave.id, "damaged")
            for lost in reply.missing:
                self.replica_lost(lost.oid, lost.version, slave.id, "missing")
        else:  # unreachable: whether it is alive is membership's business
            log.warning("could not have slave %s check %d.%d: %s", slave.id, oid, version, reply)

    @handles(Quarantined)
    def quarantined(self, slave: Slave, report: Quarantined) -> Reply:
        """A slave set replicas aside on its own. Each is checked with the slave rather than
        dropped on the report's word: the report may arrive after a good copy took its
        place on the same slave (the master and the slave's link are different roads)."""
        for lost in report.objects:
            self._suspect(slave, lost.oid, lost.version)
        return Done()

    def replica_lost(self, oid: int, version: int, slave_id: str, why: str) -> bool:
        """The one place a damaged or vanished replica is given up; True if it was counted.

        It is no longer offered to readers, and the file goes to ``on_lost``
        to be copied again from a good replica.
        """
        if not self._counted(oid, version, slave_id):
            return False
        self.store.drop_replica(oid, slave_id)
        log.warning(
            "replica %d.%d on slave %s is %s: no longer counted", oid, version, slave_id, why
        )
        if self.on_lost is not None:
            self.on_lost(oid, version, slave_id)
        return True

    def _counted(self, oid: int, version: int, slave_id: str) -> bool:
        return (slave_id, version) in self.store.replicas(oid)
