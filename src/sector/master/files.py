"""Open files: read grants, write leases, and the commit that ends a write.

``open`` for reading hands out a token for the file's current version and the
live slaves holding it. ``open`` for writing takes a lease (one writer per
file) and names one slave; the new version becomes the file's content only
when ``close`` brings back the receipt that slave signed, in one transaction.
A lease that ends any other way (``abort``, or the session going away)
leaves the previous version in place and has the slave drop the new bytes.

A HiRELIABLE write (the open mode, or the path's setting) names a chain of
slaves: the first streams the bytes on to the others as they arrive, each
signs a receipt at commit, and ``close`` records every replica the receipts
prove and makes any missing one (a chain slave died) before it answers. Other
writes get their extra replicas in the background (:mod:`.replication`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence

from ..clock import Clock
from ..errors import (
    InvalidError,
    NoDiskError,
    ResourceError,
    SectorError,
    SectorExistsError,
    SectorIsADirectoryError,
    SectorNotFoundError,
    SecurityError,
)
from ..protocol import tokens
from ..protocol.data import ChainLink, LeaseEnd, ObjectId
from ..protocol.master import (
    Abort,
    Close,
    CloseReply,
    Committed,
    CommittedReply,
    Create,
    Open,
    ReadGrant,
    WriteGrant,
)
from ..protocol.messages import (
    ALL_MODE_BITS,
    APPEND,
    HIRELIABLE,
    READ,
    SECURE,
    TRUNC,
    WRITE,
    Done,
    Error,
    Reply,
    handles,
)
from ..protocol.paths import normalize
from ..protocol.tokens import ReadClaims, Receipt, WriteClaims
from .leases import Lease, Leases
from .links import Links
from .namespace import Namespace
from .placement import Placement
from .quotas import Quotas
from .replication import Replication
from .sessions import Session
from .slaves import Slave
from .store import Row, Store
from .tree import entry

log = logging.getLogger("sector.master")

#: Commits reported by slaves that a client may still ``close`` (its slave lost the answer).
RECORDED_KEPT = 4096


class Files:
    def __init__(
        self,
        store: Store,
        namespace: Namespace,
        leases: Leases,
        placement: Placement,
        links: Links,
        replication: Replication,
        keys: tokens.KeyRing,
        token_ttl: float,
        clock: Clock,
        data_encryption: bool = False,
    ):
        self.store, self.namespace, self.leases = store, namespace, leases
        self.placement, self.links, self.replication = placement, links, replication
        self.targets = replication.targets
        self.keys, self.token_ttl, self.clock = keys, token_ttl, clock
        self.quotas = Quotas(store)
        #: DATA_ENCRYPTION: every grant says "over TLS", whatever the mode asks
        self.data_encryption = data_encryption
        #: Leases whose slaves reported their commits lately -> (session, file id): a
        #: client whose slave lost our answer closes with its receipt, and gets it again.
        self._recorded: dict[int, tuple[Session, int]] = {}

    @handles(Open)
    def open(self, session: Session, request: Open) -> Reply:
        path, mode = normalize(request.path), request.mode
        if mode <= 0 or mode & ~ALL_MODE_BITS:
            raise InvalidError(f"bad open mode {mode!r}", path)
        if mode & (WRITE | TRUNC | APPEND):
            return self._open_write(session, path, mode, request.create)
        session.user.check_read(path)
        row = self.namespace.file(path)
        holders = self.placement.for_read(row, near=session.address)
        if not holders and row.size:  # an empty file needs no slave to be read
            raise ResourceError("no live slave holds this file", path)
        # one token per replica, each signed with the key of the slave that checks it
        claims = ReadClaims(row.id, row.version)
        signed = [self._sign(s.id, claims) for s in holders]
        return ReadGrant(
            row.id,
            row.version,
            row.size,
            row.checksum,
            signed[0] if signed else b"",
            [s.address for s in holders],
            signed,
            self._secure(mode),
        )

    def _open_write(self, session: Session, path: str, mode: int, create: Create) -> Reply:
        session.user.check_write(path)
        if mode & READ:
            session.user.check_read(path)
        row = self.namespace.find(path)
        if row is not None and create == "exclusive":
            raise SectorExistsError("exists already (exclusive create)", path)
        if row is not None and row.is_dir:
            raise SectorIsADirectoryError("is a directory", path)
        if row is None:
            if create == "never":
                raise SectorNotFoundError(path=path)
            self.namespace.check_new(path)
            if create == "exclusive" and self.leases.is_creating(path):
                # another client's new file: it will exist when that client closes it
                raise SectorExistsError("being created by another client", path)
            self.leases.check_not_creating(path)
            policy = self.targets.policy_for_new(path, self.namespace.find)
            oid, version, base, size = self.store.allocate_id(), 1, 0, 0
            slave = self.placement.for_write(policy=policy)
        else:
            self.leases.check_not_writing(row.id, path)
            policy = self.targets.policy(row)
            oid, version = row.id, self.store.issue_version(row.id)
            if mode & TRUNC or row.size == 0:
                base, size = 0, 0
                slave = self.placement.for_write(policy=policy)
            else:  # the new version starts as a copy of the old, on a slave holding it
                base, size = row.version, row.size
                holders = [s for s in self.placement.for_read(row) if not s.draining]
                if not holders:
                    raise ResourceError("no live slave holds this file", path)
                slave = holders[0]
        chain: list[Slave] = []
        if (mode & HIRELIABLE or policy.hireliable) and policy.number > 1:
            chain = self.placement.chain(slave, size, policy, policy.number - 1)
        expires = self.clock.time() + self.token_ttl
        room = self.quotas.room(session.user, row)
        lease = self.leases.grant(
            session,
            oid,
            version,
            path,
            row is None,
            slave.id,
            expires,
            tuple(s.id for s in chain),
            policy.number if mode & HIRELIABLE or policy.hireliable else 0,
        )
        for chosen in (slave, *chain):
            chosen.active += 1
        claims = WriteClaims(oid, version, base, lease.id, slave.id, path, room)
        token = self.keys.sign(slave.id, claims, expires)
        links = [
            # the chain's slaves start from nothing: the first passes the base on to them
            ChainLink(
                s.host,
                s.port,
                self.keys.sign(
                    s.id, WriteClaims(oid, version, 0, lease.id, s.id, path, room), expires
                ),
            )
            for s in chain
        ]
        return WriteGrant(
            lease.id, oid, version, size, token, slave.address, links, self._secure(mode)
        )

    def _secure(self, mode: int) -> bool:
        """Whether the data connection goes over TLS: SF_MODE.SECURE or DATA_ENCRYPTION."""
        return self.data_encryption or bool(mode & SECURE)

    def _sign(self, slave_id: str, claims: tokens.Claims) -> bytes:
        return self.keys.sign(slave_id, claims, self.clock.time() + self.token_ttl)

    @handles(Close)
    def close(self, session: Session, request: Close) -> Reply | Awaitable[Reply]:
        recorded = self._recorded.get(request.lease)
        if recorded is not None and recorded[0] is session:
            # its slave reported the commit, and lost our answer on the way back
            row = self.store.get(recorded[1])
            if row is not None:
                return CloseReply(entry(row))
        lease = self.leases.owned(session, request.lease)
        return self._record(lease, request.receipt, request.more)

    @handles(Committed)
    def committed(self, slave: Slave, report: Committed) -> Reply | Awaitable[Reply]:
        """Writes ``slave`` committed, recorded for their clients (who send no ``close``).

        Each gets what its client's ``close`` would have got, the error too: one
        write's refusal is its own. A lease is recorded only on the word of the
        slave it named (its receipt is signed with that slave's key as well).
        """
        outcomes: list[Reply | Awaitable[Reply]] = []
        for write in report.writes:
            try:
                lease = self.leases.get(write.lease)
                if lease is None or lease.slave_id != slave.id:
                    raise InvalidError("no such open file (was the master restarted?)")
                outcomes.append(self._record(lease, write.receipt, []))
                self._recorded[lease.id] = (lease.session, lease.oid)
                if len(self._recorded) > RECORDED_KEPT:
                    del self._recorded[next(iter(self._recorded))]
            except SectorError as exc:
                outcomes.append(Error.of(exc))
        if all(isinstance(outcome, Reply) for outcome in outcomes):
            return CommittedReply(outcomes)  # type: ignore[arg-type]
        return self._committed_later(outcomes)

    async def _committed_later(self, outcomes: list[Reply | Awaitable[Reply]]) -> Reply:
        """The reply once the writes that had to wait (HiRELIABLE copies) are done."""
        done: list[Reply] = []
        for outcome in outcomes:
            if isinstance(outcome, Reply):
                done.append(outcome)
                continue
            try:
                done.append(await outcome)
            except SectorError as exc:
                done.append(Error.of(exc))
        return CommittedReply(done)  # type: ignore[arg-type]

    def _record(self, lease: Lease, signed: bytes, more: list[bytes]) -> Reply | Awaitable[Reply]:
        """Check the slave's receipt for ``lease`` and make its write the file's content:
        the end of every write, whether its client or its slave brings the receipt."""
        try:
            # signed by the slave the lease named, with its own key: no other slave can forge it
            key = self.keys(lease.slave_id)
            receipt = tokens.verify(key, signed, Receipt, self.clock.time())
        except tokens.TokenError as exc:
            raise SecurityError(
                f"commit receipt refused: {exc.detail}", lease.path, code=exc.code
            ) from None
        expected = (lease.oid, lease.version, lease.slave_id, lease.id)
        if (receipt.oid, receipt.version, receipt.slave, receipt.lease) != expected:
            raise SecurityError("commit receipt does not match the open file", lease.path)
        user = lease.session.user
        try:  # the user's other writes may have filled the quota since this one began
            self.quotas.check(user, receipt.size, self.store.get(lease.oid), lease.path)
        except NoDiskError:
            self._release(lease.id, discard=True)
            raise
        also = self._chained(lease, receipt, more)
        try:
            row = self._commit(lease, receipt.size, receipt.checksum, also)
        finally:
            self._release(lease.id, discard=False)
        if lease.wanted > 1 + len(also):
            return self._complete(row, lease.wanted)
        return CloseReply(entry(row))

    def _chained(self, lease: Lease, first: Receipt, more: list[bytes]) -> list[str]:
        """The chain's slaves that committed the same bytes, by their receipts."""
        committed: list[str] = []
        wanted = (lease.oid, lease.version, lease.id, first.size, first.checksum)
        for token in more:
            for slave_id in lease.chain:  # each signed with its own slave's key
                if slave_id in committed:
                    continue
                try:
                    receipt = tokens.verify(self.keys(slave_id), token, Receipt, self.clock.time())
                except tokens.TokenError:
                    continue
                same = (receipt.oid, receipt.version, receipt.lease, receipt.size, receipt.checksum)
                if same == wanted and receipt.slave == slave_id:
                    committed.append(slave_id)
                break
        return committed

    async def _complete(self, row: Row, wanted: int) -> Reply:
        """A HiRELIABLE close whose chain lost a slave: the missing replicas are made now."""
        await self.replication.complete(row, wanted)
        return CloseReply(entry(row))

    def _commit(self, lease: Lease, size: int, checksum: str, also: Sequence[str] = ()) -> Row:
        """Make the written version the file's content: one transaction."""
        stale: list[tuple[str, int]] = []
        with self.store.transaction():
            owner = lease.session.user.name  # the writer owns what it wrote (quotas.py)
            if lease.created:
                self.namespace.create_file(
                    lease.path, lease.oid, size, lease.version, checksum, owner
                )
            else:
                if self.store.get(lease.oid) is None:
                    raise SectorNotFoundError("file was removed while being written", lease.path)
                stale = self.store.replicas(lease.oid)
                self.store.update_content(lease.oid, size, lease.version, checksum, owner=owner)
                for slave_id, _ in stale:
                    self.store.drop_replica(lease.oid, slave_id)
            for slave_id in (lease.slave_id, *also):
                self.store.set_replica(lease.oid, slave_id, lease.version)
        for slave_id, old_version in stale:
            self.links.delete_on(slave_id, [ObjectId(lease.oid, old_version)])
        for slave_id in (lease.slave_id, *also):
            self.placement.committed(slave_id, size)
        self.replication.changed(lease.oid)
        row = self.store.get(lease.oid)
        assert row is not None
        return row

    @handles(Abort)
    def abort(self, session: Session, request: Abort) -> Reply:
        lease = self.leases.owned(session, request.lease)
        self._release(lease.id, discard=True)
        return Done()

    async def expire_leases(self, timeout: float) -> None:
        """End, now and then, the write leases of clients silent for ``timeout`` seconds
        (CLIENT_TIMEOUT): the file keeps its last committed version, and another writer
        may open it. The silent client's ``close`` later fails: its lease is gone."""
        while True:
            await asyncio.sleep(max(0.05, min(1.0, timeout / 4)))
            self.expire(timeout)

    def expire(self, timeout: float) -> None:
        for lease in self.leases.idle(self.clock.monotonic(), timeout):
            log.warning(
                "write lease %d on %s expired: its client was silent for %.0fs",
                lease.id,
                lease.path,
                timeout,
            )
            self._release(lease.id, discard=True)

    def abandon(self, session: Session) -> None:
        """The client left: writes it never closed keep their previous version."""
        for lease_id in list(session.leases):
            self._release(lease_id, discard=True)

    def _release(self, lease_id: int, discard: bool) -> None:
        lease = self.leases.release(lease_id)
        if lease is None:
            return
        for slave_id in lease.slaves:
            slave = self.placement.registry.get(slave_id)
            if slave is not None:
                slave.active = max(0, slave.active - 1)
            if discard:
                # The slave may already have committed the bytes; nobody will point at them.
                # And the lease's token must start no write any more (the slave may never
                # have seen it: a client that aborts before writing, or goes away).
                self.links.delete_on(
                    slave_id,
                    [ObjectId(lease.oid, lease.version)],
                    [LeaseEnd(lease.id, lease.expires)],
                )
