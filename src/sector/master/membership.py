"""Slaves joining, reporting and leaving.

Membership first: a slave *joins* once, with a join token the operator made
(``sector conf init --role slave``, ``sector conf join-token``, or ``sector
up`` for its own slaves), and gets a certificate for the key it made itself
(:mod:`sector.certs`). From then on it *registers* over TLS showing that
certificate, and the master checks, before anything else is believed, that
the certificate is a slave's, issued by this master, for the very slave id
the registration names - and that the address is in ``slave_acl.conf``. Only
then does the slave get its key (its own, :func:`~sector.protocol.tokens.slave_key`),
and only then are clients sent to it. A peer that is not a member never sees
a key and is never listed. The first join pins the slave id to its key (the
metadata keeps the key's fingerprint): a join token certifies that id again
only for that key, so whoever holds a token cannot take a member's id, and
with it the member's token key.

A slave registers with everything it holds; the master adopts the replicas
it expects and, in the same reply, names the stale ones for the slave to
delete before it serves anyone. Heartbeats keep it alive in the registry; a
closed connection or a silence longer than ``SLAVE_TIMEOUT`` marks it dead at
once - clients are no longer sent there - and its files are re-replicated
(:mod:`.replication`). Now and then a slave sends its whole inventory again
(:class:`~sector.protocol.master.Inventory`), reconciled the same way, so
objects a crash left behind are collected without waiting for a restart.

Reconciling is keyed by object *and version*: a slave may hold version 1 of a
file (committed) and version 2 (written, never committed: the master died
before the close), and each is judged on its own. An object is

* **current** (the file's version and checksum): counted as a replica;
* **in flight** (a write lease of this master covers it): left alone;
* **unknown** (an id this namespace never handed out): the namespace is
  younger than the cluster - safe mode (:mod:`.safety`), kept for ``--adopt``;
* **an orphan** (newer than the file's version, no lease: its writer's master
  died): deleted once older than the orphan grace (the data token lifetime,
  after which no write with a token of the old master can still begin);
* **stale** (file removed, or an older version, or the same version with other
  bytes): deleted - unless in safe mode, where nothing is.

A slave of another cluster (its ``cluster.id``) is refused; if this master's
namespace is empty, that is how a lost or mistyped metadata directory shows,
and the master goes into safe mode keeping what the slave holds for
``sector fsck --adopt``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network

from ..certs import ROLE_SLAVE, Authority, CertificateError, check_join_token, requested_key
from ..clock import Clock
from ..config import address_allowed
from ..errors import E_SECURITY, SecurityError
from ..protocol.data import ObjectId, ObjectInfo, ObjectPath
from ..protocol.master import (
    Heartbeat,
    Inventory,
    InventoryReply,
    Join,
    JoinReply,
    Register,
    RegisterReply,
    check_version,
)
from ..protocol.messages import Done, Error, Reply, handles
from ..protocol.tokens import KeyRing
from .leases import Leases
from .links import Links
from .replication import Replication
from .safety import Safety
from .sessions import Peer
from .slaves import Registry, Slave
from .store import Store

log = logging.getLogger("sector.master")


@dataclass
class Reconciled:
    """What one inventory came to."""

    #: Objects the slave must delete.
    stale: list[ObjectId] = field(default_factory=list)
    #: Files it holds the current version of.
    current: list[int] = field(default_factory=list)
    #: Objects whose recorded path is out of date (renamed since).
    renamed: list[ObjectPath] = field(default_factory=list)
    #: Objects with ids this namespace never handed out.
    unknown: list[ObjectInfo] = field(default_factory=list)


class Membership:
    def __init__(
        self,
        registry: Registry,
        links: Links,
        store: Store,
        leases: Leases,
        replication: Replication,
        safety: Safety,
        keys: KeyRing,
        authority: Authority,
        acl: list[IPv4Network | IPv6Network],
        heartbeat_interval: float,
        clock: Clock,
        inventory_interval: float = 0.0,
        orphan_grace: float = 600.0,
        data_encryption: bool = False,
    ):
        self.registry, self.links, self.store, self.leases = registry, links, store, leases
        self.replication, self.safety = replication, safety
        self.keys, self.authority = keys, authority
        self.acl, self.heartbeat_interval, self.clock = acl, heartbeat_interval, clock
        self.inventory_interval = inventory_interval
        self.orphan_grace = orphan_grace
        self.data_encryption = data_encryption

    @handles(Join)
    def join(self, peer: Peer, request: Join) -> tuple[Reply, None]:
        """A new slave asks for its certificate: the reply, then the connection ends."""
        try:
            self._check_address(peer)
            check_version(request.version)
            try:
                check_join_token(request.token, self.authority.cert, self.clock.time())
                key = requested_key(request.request)
                self._check_key(request.slave_id, key)
                certificate = self.authority.issue(request.request, request.slave_id)
            except CertificateError as exc:
                raise SecurityError(f"join refused: {exc}") from None
            self.store.pin_member_key(request.slave_id, key)
        except SecurityError as exc:
            log.warning("slave %s at %s may not join: %s", request.slave_id, peer.address, exc)
            return Error.of(exc), None
        log.info("slave %s joined the cluster from %s", request.slave_id, peer.address)
        return JoinReply(certificate), None

    @handles(Register)
    def register(self, peer: Peer, request: Register) -> tuple[Reply, Slave | None]:
        """A member slave (re)joins: the reply to send, and the slave when it is accepted.

        Nothing is recorded unless every check passes: a refused peer leaves no
        trace in the registry, and never sees a key.
        """
        try:
            self._check_member(peer, request.slave_id)
            check_version(request.version)
        except SecurityError as exc:
            log.warning(
                "refused the registration of %r from %s: %s",
                request.slave_id,
                peer.address,
                exc.detail,
            )
            return Error.of(exc), None
        refusal = self._check_cluster(request)
        if refusal is not None:
            return refusal, None
        found = self._reconcile(request.slave_id, request.objects)
        host = request.host or peer.address
        slave = self.registry.register(
            request.slave_id, host, request.port, request.usage, request.software
        )
        self.links.to(slave)
        log.info(
            "slave %s joined from %s:%d (%d objects, %d stale)",
            slave.id,
            host,
            slave.port,
            len(request.objects),
            len(found.stale),
        )
        self.replication.slave_joined(slave, found.current)
        reply = RegisterReply(
            self.keys(slave.id),
            self.heartbeat_interval,
            slave.id,
            found.stale,
            self.store.cluster_id,
            self.inventory_interval,
            found.renamed,
            self.data_encryption,
        )
        return reply, slave

    def _check_key(self, slave_id: str, key: str) -> None:
        """A join token certifies new slaves, and an old one only with the key it joined
        with: otherwise whoever holds a token could take a member's id, and with it that
        member's token key (the key that opens every token signed for it)."""
        pinned = self.store.member_key(slave_id)
        if pinned is not None and pinned != key:
            raise CertificateError(
                f"slave id {slave_id!r} is a member already, with another key: a new slave "
                "needs an id of its own (start it on an empty data directory)"
            )

    def _check_address(self, peer: Peer) -> None:
        if not address_allowed(peer.address, self.acl):
            raise SecurityError(f"slave address {peer.address} not allowed (slave_acl.conf)")

    def _check_member(self, peer: Peer, slave_id: str) -> None:
        """The address ACL, then the certificate: a slave's, issued for ``slave_id``."""
        self._check_address(peer)
        identity = peer.identity
        if identity is None or identity.role != ROLE_SLAVE:
            raise SecurityError(
                "only a member slave may register: join the cluster first "
                "(a join token from `sector conf join-token` on the master's machine)"
            )
        if identity.name != slave_id:
            raise SecurityError(
                f"this certificate was issued to slave {identity.name!r}, not {slave_id!r}"
            )

    def _check_cluster(self, request: Register) -> Error | None:
        """Refuse a slave of another cluster (and see in it a lost namespace, if ours is empty)."""
        ours = self.store.cluster_id
        if not request.cluster or request.cluster == ours:
            return None
        if self.store.is_empty():
            self.safety.enter(
                f"slave {request.slave_id} belongs to cluster {request.cluster} and this "
                "master's namespace is empty (a lost or mistyped metadata directory?)"
            )
            self.safety.met(request.slave_id, request.cluster, request.objects)
        log.error(
            "refused slave %s: it belongs to cluster %s, this master to %s",
            request.slave_id,
            request.cluster,
            ours,
        )
        return Error(
            E_SECURITY,
            f"this master serves cluster {ours}, and the slave belongs to cluster "
            f"{request.cluster}: point it at its own master, or rebuild this master's "
            "namespace from its slaves with `sector fsck --adopt`",
        )

    @handles(Heartbeat)
    def heartbeat(self, slave: Slave, report: Heartbeat) -> Reply | None:
        """Record a heartbeat; None when a newer registration replaced this slave."""
        if not self.registry.is_current(slave):
            return None
        was_alive = slave.alive
        self.registry.update(slave, report.usage)
        self.leases.renew(report.writes, slave.last_seen)
        if not was_alive:  # back from a silence: what it holds counts again
            self.replication.slave_joined(
                slave, [oid for oid, _ in self.store.replicas_on(slave.id)]
            )
        return Done()

    @handles(Inventory)
    def inventory(self, slave: Slave, report: Inventory) -> Reply | None:
        """A slave's periodic inventory: collect what nobody will read, note renames."""
        if not self.registry.is_current(slave):
            return None
        found = self._reconcile(slave.id, report.objects, joining=False)
        if found.stale:
            log.info("slave %s: %d stale objects to delete", slave.id, len(found.stale))
        return InventoryReply(found.stale, found.renamed)

    def disconnected(self, slave: Slave) -> None:
        """A live slave keeps its connection open (and re-registers after any break),
        so a closed one means it is gone: stop sending clients there."""
        if self.registry.is_current(slave) and slave.alive:
            slave.alive = False
            log.warning("slave %s at %s:%d disconnected", slave.id, *slave.address)
            self.replication.slave_lost(slave)

    def _reconcile(
        self, slave_id: str, objects: list[ObjectInfo], joining: bool = True
    ) -> Reconciled:
        """Sort a slave's objects (see the module docstring); record its replicas when it
        is ``joining``.

        A periodic inventory changes no replica record and deletes only what is
        older than the orphan grace: it was taken a moment ago, and a commit, a
        copy or a trim may have happened since (the records those make are the
        truth; a registration, with nothing in flight on the slave, rebuilds them).
        """
        found = Reconciled()
        ceiling, adopted = self.store.id_ceiling(), self.store.adopted
        current = self.store.current({o.oid for o in objects})
        paths: dict[int, str] = {}
        for obj in objects:
            known = current.get(obj.oid)
            if known is not None and known[:2] == (obj.version, obj.checksum):
                found.current.append(obj.oid)
            elif self.leases.is_writing(obj.oid) or self.leases.holds(obj.oid, obj.version):
                continue  # a write in flight: its bytes are not stale yet
            elif (
                obj.oid >= ceiling
                or (known is not None and obj.version > known[2])
                or (known is None and obj.oid in adopted)
            ):  # an id or a version never handed out here, or maybe one not adopted yet
                found.unknown.append(obj)
            elif obj.age < self.orphan_grace and not (
                joining and (known is None or obj.version < known[0])
            ):
                continue  # an orphan, but young: collected by a later inventory
            else:
                found.stale.append(ObjectId(obj.oid, obj.version))
        if found.current:
            paths = self.store.paths(found.current)
        by_oid = {o.oid: o for o in objects if o.oid in paths}
        for oid in found.current:
            obj = by_oid.get(oid)
            if obj is not None and obj.path != paths[oid]:
                found.renamed.append(ObjectPath(oid, obj.version, paths[oid]))
        if joining:
            holding = set(found.current)
            with self.store.transaction():
                for oid, _ in list(self.store.replicas_on(slave_id)):
                    if oid not in holding:
                        self.store.drop_replica(oid, slave_id)
                for oid in found.current:
                    self.store.set_replica(oid, slave_id, current[oid][0])
        if found.unknown:
            self.safety.enter(
                f"slave {slave_id} holds {len(found.unknown)} objects this namespace never "
                "handed out (is the metadata older than the cluster?)"
            )
            self.safety.met(slave_id, self.store.cluster_id, found.unknown)
        if not self.safety.deletes_allowed():
            found.stale = []
        return found

    async def watch(self, slave_timeout: float, forget_after: float = 0.0) -> None:
        """Declare dead the slaves that stop sending heartbeats, and forget those dead for
        longer than ``forget_after`` seconds (LOST_SLAVE_RETRY_TIME; 0: never)."""
        interval = max(0.05, min(1.0, slave_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            for slave in self.registry.expire():
                log.warning("slave %s at %s:%d stopped answering", slave.id, *slave.address)
                self.replication.slave_lost(slave)
            if forget_after:
                for slave in self.registry.forgotten(forget_after):
                    self.forget(slave)

    def forget(self, slave: Slave) -> None:
        """A slave gone for good: its replica records go (it is re-reconciled if it ever
        registers again: nothing it holds is deleted on this account)."""
        oids = [oid for oid, _ in self.store.replicas_on(slave.id)]
        with self.store.transaction():
            for oid in oids:
                self.store.drop_replica(oid, slave.id)
        self.links.forget(slave.id)
        log.warning(
            "slave %s at %s:%d forgotten after LOST_SLAVE_RETRY_TIME (%d replica records)",
            slave.id,
            *slave.address,
            len(oids),
        )
        self.replication.recount(oids)
