"""The namespace operations clients ask for: stat, ls, mkdir, rm, move, copy, set-time.

``move`` and ``copy`` with ``replace`` put their result over an existing file
(or, for ``move``, an empty directory) the way POSIX ``rename(2)`` does: the
old entry goes in the same transaction that makes the new one, and its bytes
are then deleted on its slaves.

Each checks the user's permission, then the leases (nothing moves onto a path
a writer is creating, nothing is removed while written), then asks the
:class:`~.namespace.Namespace`. Removing files has their slaves drop the bytes
(batched, see :mod:`.links`); copying asks a slave holding the source to copy
it locally, so the bytes never cross the network.
"""

from __future__ import annotations

from ..errors import ResourceError, SectorError, SectorExistsError, SectorIsADirectoryError
from ..protocol.data import CopyObject, ObjectId
from ..protocol.master import (
    Copy,
    Entry,
    Ls,
    LsReply,
    Mkdir,
    Move,
    Rm,
    SetTime,
    Stat,
    StatReply,
)
from ..protocol.messages import Done, Error, Reply, handles
from ..protocol.paths import normalize
from .cache_leases import CacheLeases
from .leases import Leases
from .links import Links
from .namespace import Namespace, Removal
from .placement import Placement
from .quotas import Quotas
from .replication import Replication
from .sessions import Session
from .store import Row, Store


def entry(row: Row, slaves: list[str] | None = None) -> Entry:
    """The wire's view of a namespace row."""
    return Entry(
        row.name or "/",
        row.is_dir,
        row.size,
        row.mtime,
        row.version,
        row.checksum,
        slaves or [],
        row.created,
    )


class Tree:
    def __init__(
        self,
        store: Store,
        namespace: Namespace,
        leases: Leases,
        placement: Placement,
        links: Links,
        replication: Replication,
        cache_leases: CacheLeases,
    ):
        self.store, self.namespace, self.leases = store, namespace, leases
        self.cache_leases = cache_leases
        self.placement, self.links, self.replication = placement, links, replication
        self.quotas = Quotas(store)

    @handles(Stat)
    def stat(self, session: Session, request: Stat) -> Reply:
        path = normalize(request.path)
        session.user.check_read(path)
        row = self.namespace.stat(path)
        found = entry(row, None if row.is_dir else self.placement.addresses(row))
        if not request.cache:
            return StatReply(found)
        above = self.namespace.directory_ids(path)
        return StatReply(found, self.cache_leases.grant(session, path, row.id, above))

    @handles(Ls)
    def ls(self, session: Session, request: Ls) -> Reply:
        path = normalize(request.path)
        session.user.check_read(path)
        listed = self.namespace.list(path)
        return LsReply(
            listed.names,
            listed.is_dir,
            listed.sizes,
            listed.mtimes,
            listed.versions,
            listed.checksums,
            listed.created,
        )

    @handles(Mkdir)
    def mkdir(self, session: Session, request: Mkdir) -> Reply:
        path = normalize(request.path)
        session.user.check_write(path)
        self.leases.check_not_creating(path)
        self.namespace.mkdir(path)
        return Done()

    @handles(Rm)
    def rm(self, session: Session, request: Rm) -> Reply:
        path = normalize(request.path)
        session.user.check_write(path)
        session.user.check_removable(path)
        row = self.namespace.stat(path)
        self.leases.check_not_writing(row.id, path)
        self._delete_copies(self.namespace.remove(path, request.recursive, row))
        return Done()

    def _delete_copies(self, removal: Removal) -> None:
        """Have the slaves drop the bytes of removed (or replaced) files, batched per slave."""
        by_slave: dict[str, list[ObjectId]] = {}
        for slave_id, oid, version in removal.copies:
            by_slave.setdefault(slave_id, []).append(ObjectId(oid, version))
        for slave_id, objects in by_slave.items():
            self.links.delete_on(slave_id, objects)

    @handles(Move)
    def move(self, session: Session, request: Move) -> Reply:
        """Rename, or with ``replace`` also put ``src`` where ``dst`` is (POSIX rename(2))."""
        src, dst = normalize(request.src), normalize(request.dst)
        session.user.check_write(src)
        session.user.check_write(dst)
        session.user.check_removable(src)
        self.leases.check_not_creating(dst)
        if request.replace:
            session.user.check_removable(dst)  # replacing a write root removes it too
            self._check_replaceable(dst)
        _, replaced = self.namespace.move(src, dst, request.replace)
        self._delete_copies(replaced)
        return Done()

    def _check_replaceable(self, path: str) -> None:
        """E_BUSY when the file at ``path`` is being written: its writer commits to it."""
        target = self.namespace.find(path)
        if target is not None and not target.is_dir:
            self.leases.check_not_writing(target.id, path)

    @handles(SetTime)
    def set_time(self, session: Session, request: SetTime) -> Reply:
        path = normalize(request.path)
        session.user.check_write(path)
        self.namespace.set_mtime(path, request.mtime)
        return Done()

    @handles(Copy)
    async def copy(self, session: Session, request: Copy) -> Reply:
        """Have a slave copy the bytes; with ``replace`` the copy replaces a file at ``dst``
        in the transaction that records it (nobody sees ``dst`` missing meanwhile)."""
        src, dst = normalize(request.src), normalize(request.dst)
        session.user.check_read(src)
        session.user.check_write(dst)
        row = self.namespace.file(src)
        target = self.namespace.find(dst)
        if target is None:
            self.namespace.check_new(dst)
        elif not request.replace:
            raise SectorExistsError(path=dst)
        elif target.is_dir:
            raise SectorIsADirectoryError("is a directory: a file cannot replace it", dst)
        self.leases.check_not_creating(dst)
        if request.replace:
            self._check_replaceable(dst)
        # the copy is the copier's; a file it replaces frees what it held
        self.quotas.check(session.user, row.size, target, dst)
        holders = self.placement.for_read(row)
        if not holders:
            raise ResourceError("no live slave holds the source file", src)
        link = self.links.to(holders[0])
        oid = self.store.allocate_id()
        self.leases.reserve_path(dst)
        self.leases.hold(oid, 1)  # no inventory may take the new object for garbage
        try:
            reply = await link.call(
                CopyObject(ObjectId(row.id, row.version), ObjectId(oid, 1), path=dst)
            )
            if isinstance(reply, Error):
                raise reply.exception(src)
            # the slave took its time: look at dst again, it may have changed meanwhile
            if request.replace:
                self._check_replaceable(dst)
            replaced = Removal([], [])
            with self.store.transaction():
                existing = self.namespace.find(dst) if request.replace else None
                if existing is not None:
                    replaced = self.namespace.clear_for(existing, dst, incoming_dir=False)
                self.namespace.create_file(dst, oid, row.size, 1, reply.checksum, session.user.name)
                self.store.set_replica(oid, link.slave.id, 1)
        except SectorError:
            link.delete_later([ObjectId(oid, 1)])
            raise
        finally:
            self.leases.free_path(dst)
            self.leases.unhold(oid, 1)
        self._delete_copies(replaced)
        self.replication.changed(oid)
        return Done()
