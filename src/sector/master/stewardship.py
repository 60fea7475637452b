"""What people decide about replication: counts per path, draining slaves, safe mode.

* ``replicate`` (``sector replicate PATH N``): a path's own replica count and
  HiRELIABLE setting, kept on its entry (see :mod:`.targets`); every file under
  it is recounted, and copied or trimmed, in the background.
* ``decommission`` (``sector decommission SLAVE``): the slave is drained - every
  replica it holds is copied elsewhere while it keeps serving reads - and only
  then stops counting; ``sysinfo`` shows it ``draining``, then ``drained``.
* ``adopt`` (``sector fsck --adopt`` / ``--leave-safe-mode``): the way out of
  safe mode (:mod:`.safety`). Adopting brings what the slaves hold and the
  namespace does not know into the namespace: each object at the path its
  slave recorded beside it (``paths.log``), the newest version of each file
  (a file the namespace knows at an older version is brought up to it), and
  when two files claim one path the newer file (the higher id) keeps it.
  The path is the one the slave last heard of - at the write, or at its last
  inventory after a rename (``INVENTORY_INTERVAL``) - so a file renamed since
  comes back under its older name; one with no path known, or whose path is
  taken, goes to ``/lost+found/<id>.<version>``. A master whose namespace was
  lost takes the slaves' cluster id, so they accept it again. Adopt once every
  slave has reported (``sysinfo`` counts those seen): a slave that turns up
  later with files the namespace does not know puts the master back in safe
  mode - an adoption's ids are never taken for deleted ones - and adopting
  again brings them in. Leaving with ``discard`` instead gives those objects
  up: they are deleted as stale. Either way the master's lease ids leap past
  any its namespace's earlier life may have used: slaves take a lease's token
  once, and a younger namespace's counter may be behind theirs.
"""

from __future__ import annotations

import logging

from ..errors import InvalidError, SectorNotFoundError, SectorPermissionError
from ..protocol.data import ObjectInfo
from ..protocol.master import (
    Adopt,
    AdoptReply,
    Decommission,
    DecommissionReply,
    Replicate,
    ReplicateReply,
)
from ..protocol.messages import Reply, handles
from ..protocol.paths import InvalidPath, join, normalize
from .leases import Leases
from .namespace import Namespace
from .replication import Replication
from .safety import Safety
from .sessions import Session
from .slaves import Registry
from .store import Store

log = logging.getLogger("sector.master")

LOST_AND_FOUND = "/lost+found"
#: How far above the highest adopted id new ids start (see _bring_in).
ID_JUMP = 1 << 32


class Stewardship:
    def __init__(
        self,
        store: Store,
        namespace: Namespace,
        registry: Registry,
        replication: Replication,
        safety: Safety,
        leases: Leases,
    ):
        self.store, self.namespace, self.registry = store, namespace, registry
        self.replication, self.safety, self.leases = replication, safety, leases

    @handles(Replicate)
    def replicate(self, session: Session, request: Replicate) -> Reply:
        path = normalize(request.path)
        session.user.check_write(path)
        if request.number < 0:
            raise InvalidError("a replica count cannot be negative", path)
        row = self.namespace.stat(path)
        with self.store.transaction():
            self.store.set_replication(row.id, request.number or None, request.hireliable)
        files = (
            [row.id]
            if not row.is_dir
            else [r.id for r in self.store.descendants(row.id) if not r.is_dir]
        )
        self.replication.recount(files)
        log.info(
            "%s set %s to %s replicas (HiRELIABLE %s): %d files",
            session.user.name,
            path,
            request.number or "the rules'",
            request.hireliable,
            len(files),
        )
        return ReplicateReply(len(files))

    @handles(Decommission)
    def decommission(self, session: Session, request: Decommission) -> Reply:
        _check_admin(session)
        slave = self.registry.find(request.slave)
        if slave is None:
            raise SectorNotFoundError(f"no slave {request.slave!r} is known")
        files = self.replication.decommission(slave, drain=not request.cancel)
        return DecommissionReply(slave.id, files)

    @handles(Adopt)
    def adopt(self, session: Session, request: Adopt) -> Reply:
        _check_admin(session)
        if not self.safety.on:
            raise InvalidError("the master is not in safe mode: there is nothing to adopt")
        strangers = list(self.safety.strangers.values())
        ours = self.store.cluster_id
        foreign = {s.cluster for s in strangers if s.cluster and s.cluster != ours}
        objects = [(s.slave_id, o) for s in strangers for o in s.objects]
        if request.discard:
            return self._discard(objects, foreign)
        if len(foreign) > 1:
            raise InvalidError(
                f"slaves of {len(foreign)} clusters ({', '.join(sorted(foreign))}) registered: "
                "stop those of the wrong cluster first"
            )
        if foreign and not self.store.is_empty():
            raise InvalidError(
                f"slaves of cluster {next(iter(foreign))} registered, and this master's "
                "namespace is not empty: it will not merge two clusters"
            )
        cluster = foreign.pop() if foreign else ours
        files, lost_found = self._bring_in(objects)
        self._leap_leases()
        with self.store.transaction():
            if cluster != ours:
                self.store.adopt_cluster_id(cluster)
        self.safety.leave()
        log.warning(
            "%s adopted %d files (%d in %s) into cluster %s",
            session.user.name,
            files,
            lost_found,
            LOST_AND_FOUND,
            cluster,
        )
        return AdoptReply(files, lost_found, cluster)

    def _discard(self, objects: list[tuple[str, ObjectInfo]], foreign: set[str]) -> Reply:
        """Give up what the namespace does not know: its ids count as used (and so as
        deleted), and the next inventories delete the objects.

        Not the files of slaves of another cluster (a lost namespace, a mistyped
        --home): they would stay refused, so nothing would be deleted and the
        cluster would be left without slaves - leaving safe mode would only hide
        the problem. Adopting them, or pointing them at their own master, is."""
        if foreign:
            raise InvalidError(
                f"the slaves seen belong to cluster {', '.join(sorted(foreign))}, not to this "
                "master's: leaving safe mode would not make them serve it. Adopt their files "
                "(sector fsck --adopt), or point them at their own master"
            )
        if objects:
            with self.store.transaction():
                self.store.raise_id_ceiling(max(o.oid for _, o in objects))
                for _, obj in objects:  # a version newer than the file's: an orphan now
                    self.store.raise_issued(obj.oid, obj.version)
        self._leap_leases()
        self.safety.leave()
        log.warning("safe mode left; %d unknown objects will be deleted", len(objects))
        return AdoptReply(0, 0, self.store.cluster_id)

    def _leap_leases(self) -> None:
        """Lease ids beyond any the slaves may have seen from the namespace's earlier life
        (its run counter may be behind: a slave takes each lease's token once)."""
        self.leases.start_ids_at(self.store.leap_lease_runs())

    def _bring_in(self, objects: list[tuple[str, ObjectInfo]]) -> tuple[int, int]:
        """Add each file (its newest version) to the namespace; (files, in lost+found)."""
        newest: dict[int, ObjectInfo] = {}
        holders: dict[tuple[int, int], set[str]] = {}
        for slave_id, obj in objects:
            holders.setdefault((obj.oid, obj.version), set()).add(slave_id)
            known = newest.get(obj.oid)
            if (
                known is None
                or obj.version > known.version
                or (obj.version == known.version and not known.path and obj.path)
            ):
                newest[obj.oid] = obj
        files = lost_found = 0
        with self.store.transaction():
            if newest:
                # New ids start far above the adopted ones: a slave not seen yet may hold
                # a file with a higher id than any seen, and it must never meet a new one.
                low, high = self.store.id_ceiling(), max(newest) + ID_JUMP
                self.store.raise_id_ceiling(high)
                self.store.mark_adopted(low, high)
            for oid in sorted(newest, reverse=True):  # the newer file keeps a contested path
                obj = newest[oid]
                row = self.store.get(oid)
                if row is not None:  # a known file, at a version written after our metadata
                    if obj.version <= row.version:
                        continue
                    self.store.update_content(oid, obj.size, obj.version, obj.checksum)
                    self.store.raise_issued(oid, obj.version)
                    for slave_id, _ in self.store.replicas(oid):
                        self.store.drop_replica(oid, slave_id)
                else:
                    path = self._free_path(obj.path)
                    if path is None:
                        path = join(LOST_AND_FOUND, f"{oid}.{obj.version}")
                        lost_found += 1
                    self.namespace.create_file(path, oid, obj.size, obj.version, obj.checksum)
                for slave_id in holders[(oid, obj.version)]:
                    self.store.set_replica(oid, slave_id, obj.version)
                files += 1
        self.replication.resettle()  # their slaves come back one by one: wait for them
        return files, lost_found

    def _free_path(self, recorded: str) -> str | None:
        """``recorded`` if a file can be created there now, else None."""
        if not recorded:
            return None
        try:
            path = normalize(recorded)
            self.namespace.check_new(path)
        except (InvalidPath, InvalidError, OSError):  # taken, or under a file
            return None
        return path


def _check_admin(session: Session) -> None:
    if not session.user.admin:
        raise SectorPermissionError(f"user {session.user.name} is not an administrator")
