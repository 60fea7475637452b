"""The master process: a TLS server for clients and slaves.

One asyncio event loop owns everything (store, leases, slave registry), so no
locks are needed: each request runs to completion between awaits. Requests on a
connection are answered in order; a request that fails gets an error reply and
the connection carries on, and a connection that sends garbage is closed
without disturbing anyone else.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Awaitable

from ..config import MasterSettings, address_allowed
from ..errors import (
    E_ACL,
    E_SECURITY,
    InvalidError,
    ResourceError,
    SectorError,
    SectorIsADirectoryError,
    SectorNotFoundError,
    SectorPermissionError,
    SecurityError,
)
from ..protocol import tokens
from ..protocol.data import CopyObject, ObjectId, ObjectInfo, StopSlave, VerifyObjects
from ..protocol.master import (
    CLIENT_REQUESTS,
    Abort,
    Close,
    CloseReply,
    Copy,
    Entry,
    Fsck,
    FsckReply,
    Heartbeat,
    Login,
    LoginReply,
    Logout,
    Ls,
    LsReply,
    MasterInfo,
    Mkdir,
    Move,
    Open,
    Ping,
    PingReply,
    Problem,
    ReadGrant,
    Register,
    RegisterReply,
    Rm,
    Shutdown,
    ShutdownReply,
    Stat,
    StatReply,
    Sysinfo,
    SysinfoReply,
    WriteGrant,
    check_version,
)
from ..protocol.messages import (
    ALL_MODE_BITS,
    APPEND,
    READ,
    TRUNC,
    WRITE,
    Done,
    Error,
    Reply,
    Request,
    handler_table,
    handles,
    is_expected,
)
from ..protocol.paths import normalize
from ..protocol.tokens import ReadClaims, Receipt, WriteClaims
from ..transport import server_tls_context
from .connection import MasterConnection
from .leases import Lease, Leases, Session
from .links import SlaveLink
from .namespace import Namespace
from .slaves import Registry, Slave
from .store import Row, Store
from .users import Users

log = logging.getLogger("sector.master")


class MasterServer:
    def __init__(self, settings: MasterSettings):
        self.settings = settings
        settings.home.mkdir(parents=True, exist_ok=True)
        self.store = Store(settings.home / "metadata.db")
        self.namespace = Namespace(self.store)
        self.users = Users.load(settings.conf_dir / "users")
        self.registry = Registry(settings.slave_timeout, settings.slave_min_disk_space)
        self.links: dict[str, SlaveLink] = {}
        self.key = self._load_key()
        self.leases = Leases()
        self.started = time.time()
        self.server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._stopping = asyncio.Event()
        self._client_ops = handler_table(self, vocabulary=CLIENT_REQUESTS)

    def _load_key(self) -> bytes:
        """The token key survives restarts, so grants in flight stay valid."""
        path = self.settings.home / "token.key"
        try:
            key = path.read_bytes()
            if len(key) == tokens.KEY_BYTES:
                return key
        except FileNotFoundError:
            pass
        key = secrets.token_bytes(tokens.KEY_BYTES)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key)
        return key

    async def start(self) -> tuple[str, int]:
        context = server_tls_context(self.settings.cert, self.settings.key)
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: MasterConnection(self),
            self.settings.host,
            self.settings.port,
            ssl=context,
            ssl_handshake_timeout=10,
        )
        host, port = self.server.sockets[0].getsockname()[:2]
        self.spawn(self._watch_slaves())
        log.info("master listening on %s:%d (metadata %s)", host, port, self.store.path)
        return host, port

    async def serve_forever(self) -> None:
        await self._stopping.wait()

    def stop(self) -> None:
        self._stopping.set()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for link in self.links.values():
            link.close()
        for task in list(self._tasks):
            task.cancel()
        self.store.close()

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def login(self, request: Login, address: str) -> tuple[Reply, Session | None]:
        """Check a login; the reply to send, and the new session when it succeeded."""
        if not address_allowed(address, self.settings.master_acl):
            return Error(E_ACL, f"{address} may not reach this master"), None
        loop = asyncio.get_running_loop()
        try:
            check_version(request.version)
            # scrypt is slow on purpose; keep it off the event loop.
            user = await loop.run_in_executor(
                None, self.users.authenticate, request.user, request.password, address
            )
        except SectorError as exc:
            return Error.of(exc), None
        log.info("user %s logged in from %s", user.name, address)
        return LoginReply(user.name), Session(user, address)

    def end_session(self, session: Session) -> None:
        """The client left: writes it never closed keep their previous version."""
        for lease_id in list(session.leases):
            self._release(lease_id, discard=True)

    def dispatch(self, session: Session, request: Request) -> Reply | Awaitable[Reply]:
        """Answer a client request; the few that must wait return an awaitable reply."""
        handler = self._client_ops[type(request)]
        try:
            reply = handler(session, request)
        except Exception as exc:
            return _failure(request, exc)
        if isinstance(reply, Reply):
            return reply
        return _guarded(request, reply)

    @handles(Logout)
    def _op_logout(self, session: Session, request: Logout) -> Reply:
        session.logged_out = True  # the connection hangs up once this reply is out
        return Done()

    @handles(Ping)
    def _op_ping(self, session: Session, request: Ping) -> Reply:
        return PingReply(time.time())

    @handles(Stat)
    def _op_stat(self, session: Session, request: Stat) -> Reply:
        path = normalize(request.path)
        session.user.check_read(path)
        row = self.namespace.stat(path)
        return StatReply(self._entry(row, with_slaves=True))

    @handles(Ls)
    def _op_ls(self, session: Session, request: Ls) -> Reply:
        path = normalize(request.path)
        session.user.check_read(path)
        entry = self._entry
        return LsReply([entry(row) for row in self.namespace.list(path)])

    @handles(Mkdir)
    def _op_mkdir(self, session: Session, request: Mkdir) -> Reply:
        path = normalize(request.path)
        session.user.check_write(path)
        self.leases.check_not_creating(path)
        self.namespace.mkdir(path)
        return Done()

    @handles(Rm)
    def _op_rm(self, session: Session, request: Rm) -> Reply:
        path = normalize(request.path)
        session.user.check_write(path)
        row = self.namespace.stat(path)
        self.leases.check_not_writing(row.id, path)
        removal = self.namespace.remove(path, request.recursive, row)
        by_slave: dict[str, list[ObjectId]] = {}
        for slave_id, oid, version in removal.copies:
            by_slave.setdefault(slave_id, []).append(ObjectId(oid, version))
        for slave_id, objects in by_slave.items():
            self._delete_on(slave_id, objects)
        return Done()

    @handles(Move)
    def _op_move(self, session: Session, request: Move) -> Reply:
        src, dst = normalize(request.src), normalize(request.dst)
        session.user.check_write(src)
        session.user.check_write(dst)
        self.leases.check_not_creating(dst)
        self.namespace.move(src, dst)
        return Done()

    @handles(Copy)
    async def _op_copy(self, session: Session, request: Copy) -> Reply:
        src, dst = normalize(request.src), normalize(request.dst)
        session.user.check_read(src)
        session.user.check_write(dst)
        row = self.namespace.file(src)
        self.namespace.check_new(dst)
        self.leases.check_not_creating(dst)
        holders = self.registry.order_for_read(self._holders(row))
        if not holders:
            raise ResourceError("no live slave holds the source file", src)
        slave = holders[0]
        oid = self.store.allocate_id()
        self.leases.reserve_path(dst)
        try:
            reply = await self._link(slave).call(
                CopyObject(ObjectId(row.id, row.version), ObjectId(oid, 1))
            )
            if isinstance(reply, Error):
                raise reply.exception(src)
            with self.store.transaction():
                self.namespace.create_file(dst, oid, row.size, 1, reply.checksum)
                self.store.set_replica(oid, slave.id, 1)
        except SectorError:
            self._link(slave).delete_later([ObjectId(oid, 1)])
            raise
        finally:
            self.leases.free_path(dst)
        return Done()

    @handles(Open)
    def _op_open(self, session: Session, request: Open) -> Reply:
        path, mode = normalize(request.path), request.mode
        if mode <= 0 or mode & ~ALL_MODE_BITS:
            raise InvalidError(f"bad open mode {mode!r}", path)
        if mode & (WRITE | TRUNC | APPEND):
            return self._open_write(session, path, mode)
        session.user.check_read(path)
        row = self.namespace.file(path)
        holders = self.registry.order_for_read(self._holders(row))
        if not holders and row.size:  # an empty file needs no slave to be read
            raise ResourceError("no live slave holds this file", path)
        token = tokens.sign(
            self.key, ReadClaims(row.id, row.version), time.time() + self.settings.token_ttl
        )
        return ReadGrant(
            row.id, row.version, row.size, row.checksum, token, [s.address for s in holders]
        )

    def _open_write(self, session: Session, path: str, mode: int) -> Reply:
        session.user.check_write(path)
        if mode & READ:
            session.user.check_read(path)
        row = self.namespace.find(path)
        if row is not None and row.is_dir:
            raise SectorIsADirectoryError("is a directory", path)
        if row is None:
            self.namespace.check_new(path)
            self.leases.check_not_creating(path)
            oid, version, base, size = self.store.allocate_id(), 1, 0, 0
            slave = self.registry.choose_for_write()
        else:
            self.leases.check_not_writing(row.id, path)
            oid, version = row.id, row.version + 1
            if mode & TRUNC or row.size == 0:
                base, size = 0, 0
                slave = self.registry.choose_for_write()
            else:
                base, size = row.version, row.size
                holders = self.registry.order_for_read(self._holders(row))
                if not holders:
                    raise ResourceError("no live slave holds this file", path)
                slave = holders[0]
        lease = self.leases.grant(session, oid, version, path, row is None, slave.id)
        slave.active += 1
        claims = WriteClaims(oid, version, base, lease.id, slave.id)
        token = tokens.sign(self.key, claims, time.time() + self.settings.token_ttl)
        return WriteGrant(lease.id, oid, version, size, token, slave.address)

    @handles(Close)
    def _op_close(self, session: Session, request: Close) -> Reply:
        lease = self.leases.owned(session, request.lease)
        try:
            receipt = tokens.verify(self.key, request.receipt, Receipt, time.time())
        except tokens.TokenError as exc:
            raise SecurityError(
                f"commit receipt refused: {exc.detail}", lease.path, code=exc.code
            ) from None
        expected = (lease.oid, lease.version, lease.slave_id, lease.id)
        if (receipt.oid, receipt.version, receipt.slave, receipt.lease) != expected:
            raise SecurityError("commit receipt does not match the open file", lease.path)
        try:
            row = self._commit(lease, receipt.size, receipt.checksum)
        finally:
            self._release(lease.id, discard=False)
        return CloseReply(self._entry(row))

    def _commit(self, lease: Lease, size: int, checksum: str) -> Row:
        """Make the written version the file's content: one transaction."""
        stale: list[tuple[str, int]] = []
        with self.store.transaction():
            if lease.created:
                self.namespace.create_file(lease.path, lease.oid, size, lease.version, checksum)
            else:
                if self.store.get(lease.oid) is None:
                    raise SectorNotFoundError("file was removed while being written", lease.path)
                stale = self.store.replicas(lease.oid)
                self.store.update_content(lease.oid, size, lease.version, checksum)
                for slave_id, _ in stale:
                    self.store.drop_replica(lease.oid, slave_id)
            self.store.set_replica(lease.oid, lease.slave_id, lease.version)
        for slave_id, old_version in stale:
            self._delete_on(slave_id, [ObjectId(lease.oid, old_version)])
        row = self.store.get(lease.oid)
        assert row is not None
        return row

    @handles(Abort)
    def _op_abort(self, session: Session, request: Abort) -> Reply:
        lease = self.leases.owned(session, request.lease)
        self._release(lease.id, discard=True)
        return Done()

    @handles(Sysinfo)
    def _op_sysinfo(self, session: Session, request: Sysinfo) -> Reply:
        files, dirs, size = self.store.totals()
        # the bound address: the configured port may be 0 (any free port)
        address = (
            "{}:{}".format(*self.server.sockets[0].getsockname()[:2])
            if self.server is not None
            else f"{self.settings.host}:{self.settings.port}"
        )
        return SysinfoReply(
            MasterInfo(self.started, address, files, dirs, size, self.settings.replica_num),
            [s.describe() for s in self.registry.slaves.values()],
        )

    @handles(Fsck)
    async def _op_fsck(self, session: Session, request: Fsck) -> Reply:
        """Have each live slave re-read its replicas under a path and check their checksums.

        Only the replicas the metadata says hold the current version are
        checked; a file none of whose holders is alive is reported missing
        without asking anyone.
        """
        path = normalize(request.path)
        session.user.check_read(path)
        top = self.namespace.stat(path)
        files = [top] if not top.is_dir else self.store.descendants(top.id)
        found: list[tuple[int, str | None, str]] = []  # (oid, slave, problem)
        by_slave: dict[str, list[Row]] = {}
        replicas = 0
        for row in files:
            if row.is_dir:
                continue
            holders = self._holders(row)
            live = [h for h in holders if self.registry.is_live(h)]
            if not live:
                found.append((row.id, None, "missing"))
            for slave_id in live:
                by_slave.setdefault(slave_id, []).append(row)
                replicas += 1
        slave_ids = list(by_slave)
        replies = await asyncio.gather(
            *(
                self._link(self.registry.slaves[i]).call(
                    VerifyObjects([ObjectId(r.id, r.version) for r in by_slave[i]])
                )
                for i in slave_ids
            )
        )
        for slave_id, reply in zip(slave_ids, replies, strict=True):
            if isinstance(reply, Error):
                found.extend((r.id, slave_id, "unreachable") for r in by_slave[slave_id])
                continue
            found.extend((o.oid, slave_id, "missing") for o in reply.missing)
            found.extend((o.oid, slave_id, "damaged") for o in reply.damaged)
        problems = [Problem(self.store.path_of(oid), slave, what) for oid, slave, what in found]
        problems.sort(key=lambda p: (p.path, p.slave or ""))
        return FsckReply(sum(not r.is_dir for r in files), replicas, problems)

    @handles(Shutdown)
    async def _op_shutdown(self, session: Session, request: Shutdown) -> Reply:
        """Stop one slave (by id or host:port), or every slave and then this master."""
        if not session.user.admin:
            raise SectorPermissionError(f"user {session.user.name} is not an administrator")
        target = request.slave
        if target:
            slave = next(
                (
                    s
                    for s in self.registry.slaves.values()
                    if target in (s.id, "{}:{}".format(*s.address))
                ),
                None,
            )
            if slave is None:
                raise SectorNotFoundError(f"no slave {target!r} is known")
            reply = await self._link(slave).call(StopSlave())
            if isinstance(reply, Error):
                raise reply.exception(target)
            slave.alive = False
            return ShutdownReply([slave.id])
        live = self.registry.live()
        await asyncio.gather(*(self._link(s).call(StopSlave()) for s in live))
        for slave in live:
            slave.alive = False
        session.stop_master = True
        log.warning("cluster shutdown requested by %s", session.user.name)
        return ShutdownReply([s.id for s in live] + ["master"])

    def _release(self, lease_id: int, discard: bool) -> None:
        lease = self.leases.release(lease_id)
        if lease is None:
            return
        slave = self.registry.slaves.get(lease.slave_id)
        if slave is not None:
            slave.active = max(0, slave.active - 1)
        if discard:
            # The slave may already have committed the bytes; nobody will point at them.
            self._delete_on(lease.slave_id, [ObjectId(lease.oid, lease.version)])

    def _holders(self, row: Row) -> list[str]:
        return [slave for slave, version in self.store.replicas(row.id) if version == row.version]

    def _entry(self, row: Row, with_slaves: bool = False) -> Entry:
        slaves = []
        if with_slaves and not row.is_dir:
            slaves = [
                f"{s.host}:{s.port}"
                for i in self._holders(row)
                if (s := self.registry.slaves.get(i)) is not None
            ]
        return Entry(
            row.name or "/", row.is_dir, row.size, row.mtime, row.version, row.checksum, slaves
        )

    def _link(self, slave: Slave) -> SlaveLink:
        link = self.links.get(slave.id)
        if link is None or link.slave is not slave:
            if link is not None:
                link.close()
            link = self.links[slave.id] = SlaveLink(slave, self.key)
        return link

    def _delete_on(self, slave_id: str, objects: list[ObjectId]) -> None:
        """Have a slave drop objects, soon and in a batch (see :mod:`.links`)."""
        slave = self.registry.slaves.get(slave_id)
        if slave is not None:
            self._link(slave).delete_later(objects)

    def register_slave(self, first: Register, address: str) -> tuple[Reply, Slave | None]:
        """A slave (re)joins: the reply to send, and the slave when it is accepted."""
        if not address_allowed(address, self.settings.slave_acl):
            return Error(E_SECURITY, f"slave address {address} not allowed"), None
        try:
            check_version(first.version)
        except SectorError as exc:
            return Error.of(exc), None
        host = first.host or address
        slave = self.registry.register(first.slave_id, host, first.port, first.usage)
        self._link(slave)
        stale = self._reconcile(slave, first.objects)
        log.info(
            "slave %s joined from %s:%d (%d objects, %d stale)",
            first.slave_id,
            host,
            first.port,
            len(first.objects),
            len(stale),
        )
        reply = RegisterReply(self.key, self.settings.heartbeat_interval, first.slave_id, stale)
        return reply, slave

    def slave_heartbeat(self, slave: Slave, report: Heartbeat) -> Reply | None:
        """Record a heartbeat; None when a newer registration replaced this slave."""
        if self.registry.slaves.get(slave.id) is not slave:
            return None
        self.registry.update(slave, report.usage)
        return Done()

    def slave_disconnected(self, slave: Slave) -> None:
        """A live slave keeps its connection open (and re-registers after any break),
        so a closed one means it is gone: stop sending clients there."""
        if self.registry.slaves.get(slave.id) is slave and slave.alive:
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
                row_version = current.get(oid)
                if row_version == version and checksum == self._checksum(oid):
                    self.store.set_replica(oid, slave.id, version)
                elif self.leases.is_writing(oid) or self.leases.holds(oid, version):
                    continue
                else:
                    self.store.drop_replica(oid, slave.id)
                    stale.append(ObjectId(oid, version))
        return stale

    def _checksum(self, oid: int) -> str:
        row = self.store.get(oid)
        return row.checksum if row else ""

    async def _watch_slaves(self) -> None:
        interval = max(0.05, min(1.0, self.settings.slave_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            for slave in self.registry.expire():
                log.warning("slave %s at %s:%d stopped answering", slave.id, *slave.address)


def _failure(request: Request, exc: Exception) -> Error:
    """The error reply for an exception raised while handling ``request``."""
    if not is_expected(exc):
        log.error("unexpected failure handling %s", type(request).__name__, exc_info=exc)
    return Error.of(exc)


async def _guarded(request: Request, pending: Awaitable[Reply]) -> Reply:
    try:
        return await pending
    except Exception as exc:
        return _failure(request, exc)


__all__ = ["MasterServer"]
