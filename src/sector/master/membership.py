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
a key and is never listed.

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

from ..certs import ROLE_SLAVE, Authority, CertificateError, check_join_token
from ..clock import Clock
from ..config import address_allowed
from ..errors import SecurityError
from ..protocol.data import ObjectId, ObjectInfo
from ..protocol.master import (
    Heartbeat,
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
from .sessions import Peer
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
        keys: KeyRing,
        authority: Authority,
        acl: list[IPv4Network | IPv6Network],
        heartbeat_interval: float,
        clock: Clock,
        data_encryption: bool = False,
    ):
        self.registry, self.links, self.store, self.leases = registry, links, store, leases
        self.keys, self.authority = keys, authority
        self.acl, self.heartbeat_interval, self.clock = acl, heartbeat_interval, clock
        self.data_encryption = data_encryption

    @handles(Join)
    def join(self, peer: Peer, request: Join) -> tuple[Reply, None]:
        """A new slave asks for its certificate: the reply, then the connection ends."""
        try:
            self._check_address(peer)
            check_version(request.version)
            try:
                check_join_token(request.token, self.authority.cert, self.clock.time())
                certificate = self.authority.issue(request.request, request.slave_id)
            except CertificateError as exc:
                raise SecurityError(f"join refused: {exc}") from None
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
        stale = self._reconcile(request.slave_id, request.objects)
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
            len(stale),
        )
        welcome = RegisterReply(
            self.keys(slave.id), self.heartbeat_interval, slave.id, stale, self.data_encryption
        )
        return welcome, slave

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

    def _reconcile(self, slave_id: str, objects: list[ObjectInfo]) -> list[ObjectId]:
        """Adopt the replicas we expect; return the ones the slave must delete."""
        reported = {o.oid: (o.version, o.checksum) for o in objects}
        current = self.store.versions(reported)
        stale = []
        with self.store.transaction():
            for oid, _ in list(self.store.replicas_on(slave_id)):
                if oid not in reported:
                    self.store.drop_replica(oid, slave_id)
            for oid, (version, checksum) in reported.items():
                if current.get(oid) == version and checksum == self._checksum(oid):
                    self.store.set_replica(oid, slave_id, version)
                elif self.leases.is_writing(oid) or self.leases.holds(oid, version):
                    continue  # a write in flight: its bytes are not stale yet
                else:
                    self.store.drop_replica(oid, slave_id)
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
