"""The slave process: a data server for clients and a link to the master.

Data connections use asyncio's low-level socket calls so bulk bytes move with
``sendfile`` (reads) and ``recv_into`` a reused buffer (writes) and are never
copied into Python objects. Every request carries a token the master signed;
a request without a valid one is refused and the connection stays usable.
A write's errors are sticky: the client streams without waiting for replies,
and learns of any failure from the reply to ``commit``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import mmap
import os
import resource
import socket
import ssl
from collections.abc import Callable
from typing import IO, Any, TypeVar

import msgspec

from .. import __version__, certs
from ..clock import SYSTEM, Clock
from ..config import JOIN_TOKEN_FILE, SlaveSettings
from ..errors import (
    E_SECURITY,
    E_SUPPORT,
    InvalidError,
    NoDiskError,
    SectorBusyError,
    SectorConnectionError,
    SectorError,
    SectorNotFoundError,
    SecurityError,
)
from ..protocol import checksum, tokens
from ..protocol.data import (
    SLAVE_REQUESTS,
    AbortWrite,
    AdminRequest,
    ChainLink,
    Commit,
    CommitReply,
    CopyObject,
    CopyReply,
    DeleteObjects,
    DeleteReply,
    FetchObject,
    LeaseEnd,
    ObjectId,
    ObjectInfo,
    ObjectPath,
    Put,
    Read,
    ReadReply,
    StopSlave,
    Truncate,
    VerifyObjects,
    VerifyReply,
    Write,
)
from ..protocol.framing import ProtocolError, encode
from ..protocol.master import (
    BadSource,
    Committed,
    CommittedWrite,
    Heartbeat,
    Inventory,
    Join,
    JoinReply,
    Quarantined,
    Register,
    RegisterReply,
    Usage,
)
from ..protocol.messages import (
    PROTOCOL_VERSION,
    Done,
    Error,
    InvalidMessage,
    Reply,
    Request,
    Working,
    handler_table,
    handles,
    replies_to,
    tag_of,
)
from ..protocol.tokens import AdminClaims, Claims, ReadClaims, Receipt, WriteClaims
from ..transport import (
    TLS_HANDSHAKE,
    Channel,
    TlsChannel,
    certificate_der,
    check_master,
    client_tls_context,
    dial,
    read_body,
    server_tls_context,
    sock_peek,
    write_message,
)
from . import copies
from .chain import Downstream
from .commits import GroupCommit
from .scrub import Scrub
from .spent import Spent
from .storage import (
    CLUSTER_FILE,
    DamagedObject,
    Storage,
    StoredObject,
    WriteSession,
    disk_error,
)

log = logging.getLogger("sector.slave")

RECV_BUFFER = 4 * 1024 * 1024
#: A received chunk at least this large is written on a helper thread while the next
#: one arrives: profiling a 1 GiB upload (``python -m bench.profile --phase upload``)
#: showed the loop spending 44 % in pwrite + hash and 35 % in recv, one after the other.
THREADED_WRITE = 1024 * 1024
RECEIPT_TTL = 3600.0
REGISTERED_FILE = "slave.registered"
#: Read handles a data connection keeps open for the next request on the same file.
OPEN_FILES = 16

#: File descriptors kept for everything but data connections (object files, the
#: master link, logs, the scrub): a full house of connections still leaves room to work.
RESERVED_DESCRIPTORS = 128
#: Milliseconds sent bytes may stay unacknowledged before the kernel drops the
#: connection (TCP_USER_TIMEOUT): a client that stopped reading a large read.
SEND_TIMEOUT_MS = 600_000
TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", 18)

C = TypeVar("C", bound=Claims)
T = TypeVar("T")


def _descriptor_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class JoinRefused(Exception):
    """This slave cannot become a member (no join token, or the master refused it)."""


class Refused(Exception):
    """The master will not have us, or we will not have it; the message says why."""


class SlaveServer:
    def __init__(self, settings: SlaveSettings, clock: Clock = SYSTEM):
        self.settings = settings
        self.clock = clock
        self.storage = Storage(settings.data_dir, clock)
        #: Commits that arrive while the disk is busy wait and go together.
        self.commits = GroupCommit(self.storage)
        self.key: bytes | None = None
        self.registered = asyncio.Event()
        self.started = clock.time()
        self._listener: socket.socket | None = None
        self._tasks: set[asyncio.Task] = set()
        self._stopping = asyncio.Event()
        self.address: tuple[str, int] = (settings.host, settings.port)
        #: File bytes received from writers and sent to readers: reported in heartbeats.
        self.received = 0
        self.sent = 0
        self._master_der = certificate_der(settings.cert)
        #: write leases and orders already accepted once (see spent.py)
        self.spent = Spent(clock)
        #: the data connections being served
        self.connections: set[DataConnection] = set()
        #: connections served at most: the descriptor limit, less room for files and logs
        self.max_connections = max(16, _descriptor_limit() - RESERVED_DESCRIPTORS)
        #: why the slave cannot serve as it should (reported to the master); "" when fine
        self.trouble = ""
        self._report_now = asyncio.Event()
        #: DATA_ENCRYPTION, as the master said at registration
        self.encrypted_only = False
        self._tls: tuple[float, ssl.SSLContext] | None = None  # (certificate mtime, context)
        #: the process's exit status once stopped: 1 after a refused join
        self.exit_code = 0
        #: Lease -> when its write last received bytes (see _writes).
        self.writing: dict[int, float] = {}
        #: When any write last received bytes (the scrub waits for a quiet moment).
        self.wrote_at = float("-inf")
        #: Reports of sources that sent a copy bad bytes, for the master (see copies.py).
        self.suspects: list[BadSource] = []
        self._last_report = clock.monotonic()
        #: The registered link to the master, while there is one (see record_commit).
        self._link: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        #: One report at a time on the link: heartbeats and commits take turns.
        self._asking = asyncio.Lock()
        #: Commits waiting for the report that takes them to the master.
        self._to_record: list[tuple[CommittedWrite, asyncio.Future[bytes]]] = []
        self._recorder: asyncio.Task | None = None

    @property
    def slave_id(self) -> str:
        return self.storage.slave_id

    async def start(self) -> tuple[str, int]:
        listener = socket.create_server(
            (self.settings.host, self.settings.port), reuse_port=False, backlog=512
        )
        listener.setblocking(False)
        self._listener = listener
        self.address = listener.getsockname()[:2]
        self._spawn(self._accept_loop())
        self._spawn(self._master_loop())
        if self.settings.scrub_rate > 0:
            scrub = Scrub(
                self.storage, self.settings.scrub_rate, self.clock, last_write=lambda: self.wrote_at
            )
            self._spawn(scrub.run())
        log.info(
            "slave %s serving %s on %s:%d", self.slave_id, self.settings.data_dir, *self.address
        )
        return self.address

    async def serve_forever(self) -> None:
        await self._stopping.wait()

    def stop(self) -> None:
        self._stopping.set()

    async def close(self) -> None:
        self._mark_registered(False)
        if self._listener is not None:
            self._listener.close()
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _accept_loop(self) -> None:
        """Accept data connections for as long as the slave runs, whatever happens.

        Out of file descriptors (or memory), ``accept`` fails: the slave waits a
        moment (up to a second, doubling) and tries again, serving the
        connections it has meanwhile and telling the master it is in trouble.
        It also stops short of the limit (:attr:`max_connections`): a
        connection beyond it is closed at once, so that files can still be
        opened for the connections being served. Issue 9: 2,000 idle
        connections under a 1,024-descriptor limit killed this loop for good.
        """
        loop = asyncio.get_running_loop()
        assert self._listener is not None
        pause = 0.0
        while True:
            try:
                conn, _ = await loop.sock_accept(self._listener)
            except asyncio.CancelledError:
                raise
            except OSError as exc:
                pause = min(max(0.05, pause * 2), 1.0)
                self._in_trouble(f"cannot accept connections: {exc.strerror or exc}")
                await asyncio.sleep(pause)
                continue
            pause = 0.0
            if len(self.connections) >= self.max_connections:
                conn.close()
                self._in_trouble(f"refusing connections: {self.max_connections} open")
                continue
            self._in_trouble("")
            try:
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                # a peer that stops reading what we send is dropped by the kernel
                conn.setsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT, SEND_TIMEOUT_MS)
            except OSError:
                conn.close()
                continue
            self._spawn(DataConnection(self, conn).serve())

    def _in_trouble(self, why: str) -> None:
        """Note why the slave cannot serve (or that it can again: ``why`` empty); the
        master hears of a change at once rather than at the next heartbeat."""
        if why == self.trouble:
            return
        if why and not self.trouble:
            log.warning("%s", why)
        elif not why:
            log.info("accepting connections again")
        self.trouble = why
        self._report_now.set()

    async def _master_loop(self) -> None:
        """Stay registered with the master; re-register after any break, forever.

        A slave without a membership certificate from this master joins first
        (:meth:`_join`); a refused join is final: the slave stops, saying why.
        A master that refuses the registration (or that we refuse: another
        cluster's) is tried again every two seconds - it may be put right.
        """
        delay = 0.1
        refused = ""
        while True:
            writer = None
            try:
                if not certs.issued_by(self.settings.own_cert, self.settings.cert):
                    await self._join()
                context = client_tls_context(
                    self.settings.cert, self.settings.own_cert, self.settings.own_key
                )
                reader, writer = await self._dial_master(context)
                welcome = await self._register(reader, writer)
                self.registered.set()
                self._mark_registered(True)
                log.info("registered with master %s:%d", *self.settings.master)
                delay, refused = 0.1, ""
                self._link = (reader, writer)
                await self._report(reader, writer, welcome)
            except asyncio.CancelledError:
                raise
            except JoinRefused as exc:
                log.error("%s", exc)
                self.exit_code = 1
                self.stop()
                return
            except Refused as exc:  # said once, then retried quietly: the master may change
                if str(exc) != refused:
                    log.error("master %s:%d refused us: %s", *self.settings.master, exc)
                    refused = str(exc)
                await asyncio.sleep(2.0)
            except Exception as exc:  # any failure means: reconnect later
                if self.registered.is_set():
                    log.warning("lost the master (%s); reconnecting", exc)
                self.registered.clear()
                self._mark_registered(False)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            finally:
                self._link = None
                if writer is not None:
                    writer.close()

    async def _report(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, welcome: RegisterReply
    ) -> None:
        """Heartbeats, and now and then the whole inventory, until the connection breaks."""
        loop = asyncio.get_running_loop()
        every = welcome.inventory
        next_inventory = loop.time() + every if every else None
        while True:
            await self._report_quarantined(reader, writer)
            self._report_now.clear()
            try:  # the heartbeat's time, or sooner when there is trouble to tell
                await asyncio.wait_for(self._report_now.wait(), welcome.heartbeat)
            except asyncio.TimeoutError:
                pass
            await self._ask(reader, writer, Heartbeat(self._usage(), self._writes()))
            if next_inventory is not None and loop.time() >= next_inventory:
                objects = [ObjectInfo(*item) for item in self.storage.inventory()]
                reply = await self._ask(reader, writer, Inventory(objects))
                self._apply(reply.delete, reply.renamed)
                next_inventory = loop.time() + every

    async def _ask(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, report: Request
    ) -> Any:
        """Send one report on the master link; its answer (a refusal ends the link).

        Reports take turns (a commit's report may be sent while the heartbeat
        loop waits): the master answers them in order, but each asker reads
        its own answer only.
        """
        async with self._asking:
            await write_message(writer, report)
            while True:  # a long-running report's answer may follow Working frames
                body = await asyncio.wait_for(read_body(reader), 60)
                if body is None:
                    raise ConnectionError("master closed the connection")
                reply = replies_to(type(report)).decode(body)
                if not isinstance(reply, Working):
                    break
        if isinstance(reply, Error):
            raise ConnectionError(f"master refused a {tag_of(type(report))}: {reply.msg}")
        return reply

    async def record_commit(self, lease: int, receipt: bytes) -> bytes:
        """Have the master record a write committed here, for its client: the master's
        answer, encoded as its answer to the client's ``close`` would be.

        Empty when the master could not be asked (no link), or its answer was
        lost with the link: the client then closes with the receipt itself (the
        master answers a ``close`` of a write it recorded already, see
        ``master/files.py``). Commits arriving while a report is on its way go
        together in the next one.
        """
        if self._link is None:
            return b""
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._to_record.append((CommittedWrite(lease, receipt), answer))
        if self._recorder is None or self._recorder.done():
            self._recorder = self._spawn(self._record_commits())
        return await answer

    async def _record_commits(self) -> None:
        """Report the waiting commits, a batch at a time, until none is left."""
        while self._to_record:
            batch, self._to_record = self._to_record, []
            outcomes = [b""] * len(batch)
            link = self._link
            try:
                if link is not None:
                    reply = await self._ask(*link, Committed([write for write, _ in batch]))
                    if len(reply.outcomes) == len(batch):
                        outcomes = [msgspec.msgpack.encode(o) for o in reply.outcomes]
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the link is out of step or gone: start it afresh
                log.warning("could not report %d commits to the master: %s", len(batch), exc)
                if link is not None:
                    link[1].close()
            finally:
                for (_, answer), outcome in zip(batch, outcomes, strict=True):
                    if not answer.done():
                        answer.set_result(outcome)

    def _apply(self, stale: list[ObjectId], renamed: list[ObjectPath]) -> None:
        for obj in stale:
            self.storage.delete(obj.oid, obj.version)
        for moved in renamed:
            self.storage.note_path(moved.oid, moved.version, moved.path)

    async def _dial_master(
        self, context: ssl.SSLContext
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TLS connection to the master - the master itself, not another member."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(*self.settings.master, ssl=context), 10
        )
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            check_master(ssl_object.getpeercert(binary_form=True), self._master_der)
        except BaseException:
            writer.close()
            raise
        return reader, writer

    async def _join(self) -> None:
        """Become a member: a new key, and the certificate the master issues for it.

        The key is made here and never leaves this machine; what travels is a
        certificate request and the operator's join token, over TLS to the
        master whose certificate we hold.
        """
        token = self.settings.read_join_token()
        if token is None:
            raise JoinRefused(
                f"this slave has no membership certificate for the master "
                f"{self.settings.cert}: give it a join token (`sector conf join-token` on the "
                f"master's machine) with --join or in {self.settings.conf_dir / JOIN_TOKEN_FILE}"
            )
        request = certs.make_request(self.settings.own_key, self.slave_id)
        reader, writer = await self._dial_master(client_tls_context(self.settings.cert))
        try:
            await write_message(writer, Join(PROTOCOL_VERSION, token, self.slave_id, request))
            body = await asyncio.wait_for(read_body(reader), 60)
        finally:
            writer.close()
        if body is None:
            raise ConnectionError("master closed the connection while we joined")
        reply = replies_to(Join).decode(body)
        if isinstance(reply, Error):
            if reply.code in (E_SECURITY, E_SUPPORT):
                raise JoinRefused(f"the master refused to let this slave join: {reply.msg}")
            raise ConnectionError(f"join failed: {reply.msg}")
        assert isinstance(reply, JoinReply)
        temp = self.settings.own_cert.with_suffix(".tmp")
        temp.write_bytes(reply.certificate)
        temp.replace(self.settings.own_cert)
        log.info("joined the cluster: certificate %s", self.settings.own_cert)

    async def _register(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> RegisterReply:
        """Introduce ourselves with everything we hold; the master's welcome.

        A master of another cluster is refused (:class:`Refused`) before any of
        its orders is carried out: it may not know our files, and would have
        them deleted.
        """
        advertised = self.address[0]
        if advertised in ("0.0.0.0", "::", ""):
            advertised = writer.get_extra_info("sockname")[0]
        objects = [ObjectInfo(*item) for item in self.storage.inventory()]
        ours = self.storage.cluster_id
        greeting = Register(
            PROTOCOL_VERSION,
            self.slave_id,
            advertised,
            self.address[1],
            self._usage(),
            objects,
            __version__,
            ours,
        )
        await write_message(writer, greeting)
        body = await asyncio.wait_for(read_body(reader), 60)
        if body is None:
            raise ConnectionError("master closed the connection during registration")
        reply = replies_to(Register).decode(body)
        if isinstance(reply, Error):
            raise Refused(reply.msg)
        assert isinstance(reply, RegisterReply)
        if ours and reply.cluster != ours:
            raise Refused(
                f"it serves cluster {reply.cluster or '(none)'} and this slave belongs to "
                f"cluster {ours} ({self.settings.data_dir / CLUSTER_FILE})"
            )
        if not ours and reply.cluster:
            self.storage.join_cluster(reply.cluster)
        self.key = reply.key
        self.encrypted_only = reply.data_encryption
        self._apply(reply.delete, reply.renamed)
        return reply

    async def _report_quarantined(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Tell the master which replicas were quarantined here and which sources sent a
        copy bad bytes; kept for next time if that fails."""
        pending = self.storage.quarantined[:]
        if pending:
            await self._ask(reader, writer, Quarantined([ObjectId(*o) for o in pending]))
            del self.storage.quarantined[: len(pending)]
        while self.suspects:
            await self._ask(reader, writer, self.suspects[0])
            self.suspects.pop(0)

    def suspect(self, obj: ObjectId, source: str) -> None:
        """A copy got bytes failing their sums from ``source``: the master will hear of it."""
        self.suspects.append(BadSource(obj, source))

    async def dial_slave(self, address: tuple[str, int], timeout: float) -> Channel:
        """A data connection to another slave (a replica copy, a HiRELIABLE chain): over
        TLS, showing our membership certificate and checking theirs, when the cluster
        encrypts its data connections (DATA_ENCRYPTION); plain TCP otherwise."""
        context = None
        if self.encrypted_only:
            context = client_tls_context(
                self.settings.cert, self.settings.own_cert, self.settings.own_key
            )
        channel = await dial(asyncio.get_running_loop(), address, context, timeout)
        if isinstance(channel, TlsChannel):
            identity = certs.identity(channel.peer_certificate())
            if identity is None or identity.role != certs.ROLE_SLAVE:
                channel.sock.close()
                raise SecurityError(f"{address[0]}:{address[1]} is not a slave of this cluster")
        return channel

    def tls_context(self) -> ssl.SSLContext | None:
        """The context of TLS data connections: this slave's membership certificate as
        its server certificate (clients check it chains to the master's). Remade when
        the certificate changes (a new join); None before the slave has one."""
        try:
            stamp = self.settings.own_cert.stat().st_mtime
        except FileNotFoundError:
            return None
        if self._tls is None or self._tls[0] != stamp:
            context = server_tls_context(self.settings.own_cert, self.settings.own_key)
            self._tls = (stamp, context)
        return self._tls[1]

    def wrote(self, lease: int) -> None:
        """Bytes arrived for the write under ``lease``: the master hears it is alive."""
        self.writing[lease] = self.wrote_at = self.clock.monotonic()

    def _writes(self) -> list[int]:
        """Leases whose writes received bytes since the last heartbeat (the master keeps
        their leases from expiring while their clients talk only to us)."""
        since = self._last_report
        self._last_report = self.clock.monotonic()
        return [lease for lease, when in self.writing.items() if when >= since]

    def _usage(self) -> Usage:
        return Usage(
            **self.storage.usage(),
            received=self.received,
            sent=self.sent,
            load=os.getloadavg()[0],
            limit=self.settings.max_data_size,
            trouble=self.trouble,
        )

    def _mark_registered(self, registered: bool) -> None:
        """``slave.registered`` exists exactly while we are registered: launchers wait on it."""
        path = self.settings.data_dir / REGISTERED_FILE
        if registered:
            path.write_text("{}:{}\n".format(*self.settings.master))
        else:
            path.unlink(missing_ok=True)

    def claims(self, token: bytes | None, kind: type[C]) -> C:
        """What ``token`` allows, if the master signed it for us and for this; else raise."""
        return self._verified(token, kind)[0]

    def _verified(self, token: bytes | None, kind: type[C]) -> tuple[C, float | None]:
        if self.key is None:
            raise SectorConnectionError("slave is not registered with a master yet")
        claims, expires = tokens.verified(self.key, token, kind, self.clock.time())
        if isinstance(claims, (WriteClaims, AdminClaims)) and claims.slave != self.slave_id:
            raise SecurityError("token was issued for another slave")
        return claims, expires

    def start_write(self, token: bytes) -> WriteClaims:
        """The claims of a write token, which starts one write session and no other."""
        claims, expires = self._verified(token, WriteClaims)
        if not self.spent.spend(("lease", claims.lease), expires):
            raise SecurityError("this write token has been used already (one write per lease)")
        return claims

    def obey(self, order: AdminRequest) -> None:
        """Check that the master gave exactly this order, and only once; else raise."""
        claims, expires = self._verified(order.token, AdminClaims)  # type: ignore[attr-defined]
        if claims.digest != order.digest():
            raise SecurityError("the order is not the one its token was signed for")
        if not self.spent.spend(("order", claims.digest, order.token), expires):  # type: ignore[attr-defined]
            raise SecurityError("this order was carried out already (a token is good once)")

    def lease_ended(self, lease: LeaseEnd) -> None:
        """The master says ``lease`` ended unused: its token must start no write."""
        self.spent.spend(("lease", lease.lease), lease.until)

    def check_space(self, size: int) -> None:
        limit = self.settings.max_data_size
        if limit and self.storage.stored_bytes + size > limit:
            raise NoDiskError("slave storage limit (MAX_DATA_SIZE) reached")

    def sign_receipt(self, receipt: Receipt) -> bytes:
        assert self.key is not None
        return tokens.sign(self.key, receipt, self.clock.time() + RECEIPT_TTL)


class DataConnection:
    """One client (or master) connection to the slave's port.

    Requests are decoded with :data:`~sector.protocol.data.SLAVE_REQUESTS` and
    answered by the ``@handles`` methods below, through the same kind of table
    the master uses. A handler returns its reply, or None for the requests that
    get none (the write stream).
    """

    def __init__(self, server: SlaveServer, sock: socket.socket):
        self.server = server
        self.storage = server.storage
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.handlers = handler_table(self, vocabulary=SLAVE_REQUESTS)
        #: Between ``write`` and ``commit``/``abort``: the client is streaming and
        #: reads no reply, so errors wait in ``write_error`` for the commit.
        self.in_write = False
        self.write: WriteSession | None = None
        self.write_error: SectorError | None = None
        self.write_limit = -1  # bytes the new version may reach (the writer's quota)
        self.open_files: dict[tuple[int, int], tuple[StoredObject, IO[bytes]]] = {}
        self.write_path = ""
        #: The writer asked us to have the master record its commit (Write.record).
        self.write_record = False
        #: The next slave of a HiRELIABLE write's chain (see chain.py).
        self.downstream: Downstream | None = None
        self._buffer: mmap.mmap | None = None  # made by the first put
        self.spare: mmap.mmap | None = None
        # the watchdog (see serve): what the connection is doing, and since when
        self.state = "new"
        self.since = self.loop.time()
        self._task: asyncio.Task | None = None
        self._watch: asyncio.TimerHandle | None = None
        #: the byte stream: plain, or TLS (decided by the client's first byte)
        self.channel = Channel(self.loop, sock)

    async def serve(self) -> None:
        """Answer requests until the peer leaves, breaks the rules, or wastes our time.

        A watchdog closes the connection when the peer sends nothing for too
        long: ``STALL_TIMEOUT`` after connecting or in the middle of a request
        (a frame or a put's bytes), ``IDLE_TIMEOUT`` between requests. Between
        requests of a write session there is no limit (the mount keeps a file
        open for writing as long as a program does); sending is the kernel's to
        time out (TCP_USER_TIMEOUT).
        """
        self._task = asyncio.current_task()
        self.server.connections.add(self)
        self._arm()
        try:
            self.channel = await self._open_channel()
            while (body := await self.channel.read_body(self._progress)) is not None:
                self._enter("serving")
                reply = await self._answer(body)
                if reply is not None:
                    await self.channel.sendall(encode(reply))
                self._enter("idle")
        except (ConnectionError, ProtocolError, OSError) as exc:  # ssl.SSLError is an OSError
            log.debug("data connection ended: %s", exc)
        except asyncio.CancelledError:
            pass  # the slave is shutting down, or the watchdog gave up on the peer
        except Exception:
            log.exception("dropping a data connection after an unexpected error")
        finally:
            self.server.connections.discard(self)
            if self._watch is not None:
                self._watch.cancel()
            self._end_write()
            for _, handle in self.open_files.values():
                handle.close()
            self.sock.close()

    def _check_channel(self) -> None:
        """In a cluster that encrypts data connections (DATA_ENCRYPTION), file bytes go
        over TLS only: a plain connection may carry the master's orders, nothing else."""
        if self.server.encrypted_only and not self.channel.secure:
            raise SecurityError(
                "this cluster encrypts its data connections (DATA_ENCRYPTION): use TLS"
            )

    async def _open_channel(self) -> Channel:
        """Plain TCP, or TLS when the client starts with a TLS handshake (SF_MODE.SECURE,
        or DATA_ENCRYPTION): one port serves both, told apart by the first byte."""
        first = await sock_peek(self.loop, self.sock)
        if first[:1] != bytes([TLS_HANDSHAKE]):
            return Channel(self.loop, self.sock)
        context = self.server.tls_context()
        if context is None:
            raise ConnectionError("a TLS connection before this slave has its certificate")
        channel = TlsChannel(self.loop, self.sock, context)
        await channel.handshake()
        return channel

    # --- the watchdog -------------------------------------------------------------------

    def _patience(self) -> float | None:
        """Seconds the peer may stay silent now; None: no limit."""
        settings = self.server.settings
        if self.state in ("new", "receiving"):
            return settings.stall_timeout
        if self.state == "idle" and not self.in_write:
            return settings.idle_timeout
        return None  # working for the peer, or between the requests of a write

    def _enter(self, state: str) -> None:
        self.state, self.since = state, self.loop.time()
        self._arm()

    def _progress(self) -> None:
        """Bytes arrived: the peer is alive, and inside a request if it was not."""
        self.since = self.loop.time()
        if self.state != "receiving":
            self._enter("receiving")

    def _arm(self) -> None:
        patience = self._patience()
        if patience is not None and self._watch is None:
            self._watch = self.loop.call_at(self.since + patience, self._check)

    def _check(self) -> None:
        self._watch = None
        patience = self._patience()
        if patience is None:
            return  # re-armed when the state changes
        if self.loop.time() < self.since + patience:
            self._watch = self.loop.call_at(self.since + patience, self._check)
            return
        log.info("closing a data connection silent for %.0f s (%s)", patience, self.state)
        if self._task is not None:
            self._task.cancel()

    @property
    def buffer(self) -> mmap.mmap:
        """The receive buffer of puts: page-aligned (mmap), for O_DIRECT writes; made on
        first use, so that a connection that only reads costs no 4 MiB."""
        if self._buffer is None:
            self._buffer = mmap.mmap(-1, RECV_BUFFER)
        return self._buffer

    async def _answer(self, body: bytearray) -> Reply | None:
        """The one error boundary: a refused request becomes its Error reply.

        A request that gets no reply (the write stream: ``write``, ``put``,
        ``abort``) cannot be answered with an error either, and neither can a
        frame we cannot read while the client is streaming a write: those
        become the write's sticky error, reported at ``commit``. A frame that
        may announce raw bytes but cannot be read ends the connection: where
        its data ends is unknowable.
        """
        try:
            request = SLAVE_REQUESTS.decode(body)
        except InvalidMessage as exc:
            if exc.announces_raw_bytes:
                raise
            return self._refuse(InvalidError(exc.detail), answer=not self.in_write)
        try:
            if isinstance(request, AdminRequest):
                self.server.obey(request)
            return await self.handlers[type(request)](request)
        except SectorError as exc:
            return self._refuse(exc, answer=bool(request.replies))

    def _refuse(self, exc: SectorError, answer: bool) -> Error | None:
        if answer:
            return Error.of(exc)
        self.in_write = True
        self.write_error = self.write_error or exc
        return None

    @handles(Read)
    async def _read(self, request: Read) -> Reply | None:
        """Bytes by ``sendfile``, after the sums of the blocks they touch.

        The reader checks the bytes against those sums (the slave cannot: it
        never sees bytes it sends with ``sendfile``); see :mod:`sector.protocol.checksum`.
        """
        self._check_channel()
        offset, length = request.offset, request.length
        if request.token is None and self.write is not None:
            data = self.write.read_at(offset, length)
            await self.channel.sendall(encode(ReadReply(len(data))) + data)
            self.server.sent += len(data)
            return None
        claims = self.server.claims(request.token, ReadClaims)
        obj, handle = self._open_object(claims.oid, claims.version)
        count = max(0, min(length, obj.size - offset))
        sums = b""
        if count:
            touched = checksum.blocks(offset, offset + count)
            if obj.sums_checked:
                sums = self.storage.sums_of(obj, touched.start, len(touched))
            else:  # the first read checks the whole sums file, and may rebuild it
                sums = await self._on_disk(self.storage.sums_of, obj, touched.start, len(touched))
        await self.channel.sendall(encode(ReadReply(count, sums)))
        if count:
            await self.channel.sendfile(handle, offset, count)
            self.server.sent += count
        return None

    def _open_object(self, oid: int, version: int) -> tuple[StoredObject, IO[bytes]]:
        """The object and a handle on it, kept open for the next request on the same file.

        The index is asked every time, so an object quarantined, deleted or
        replaced since is never served from a handle opened before.
        """
        key = (oid, version)
        obj = self.storage.find(oid, version)
        cached = self.open_files.pop(key, None)
        if cached is not None:
            if cached[0] is obj:
                self.open_files[key] = cached
                return cached
            cached[1].close()
        if obj is None:
            raise SectorNotFoundError("this slave does not hold that file version")
        handle = open(obj.path, "rb")  # noqa: SIM115 - kept open for the connection
        if len(self.open_files) >= OPEN_FILES:
            self.open_files.pop(next(iter(self.open_files)))[1].close()
        self.open_files[key] = (obj, handle)
        return obj, handle

    async def _on_disk(self, action: Callable[..., T], *args: object) -> T:
        """Run a slow storage call on a thread; what a damaged object means to the peer."""
        try:
            return await self.loop.run_in_executor(None, action, *args)
        except DamagedObject:
            raise SectorNotFoundError(
                "this slave's copy does not match its checksum and was quarantined"
            ) from None
        except FileNotFoundError as exc:
            raise SectorNotFoundError(str(exc)) from None
        except OSError as exc:
            raise disk_error(exc) from None

    @handles(Write)
    async def _begin_write(self, request: Write) -> None:
        self._end_write()
        self.in_write = True
        try:
            self._check_channel()
            claims = self.server.start_write(request.token)
            self.write_limit = claims.limit
            oid, version = claims.oid, claims.version
            if self.storage.find(oid, version) is not None:
                raise SectorBusyError("that version is already committed")
            begin = functools.partial(
                WriteSession.begin, self.storage, oid, version, claims.lease, claims.base
            )
            # Starting empty is one open(): cheaper than a hop to a thread and back;
            # copying (and checking) a base version is not.
            self.write = await self._on_disk(begin) if claims.base else begin()
            self.write_path = claims.path
            self.write_record = request.record
            self.server.wrote(claims.lease)
        except SectorError as exc:
            self.write_error = exc
        except OSError as exc:
            self.write_error = disk_error(exc)
        if request.chain and self.write_error is None:
            await self._start_chain(request.chain)

    async def _start_chain(self, chain: list[ChainLink]) -> None:
        """HiRELIABLE: stream this write on to the next slave (with the base copied here)."""
        assert self.write is not None
        self.downstream = Downstream(chain[0], chain[1:], self.server.dial_slave)
        await self.downstream.open()
        if self.write.size:
            await self.downstream.put_file(self.write.temp, self.write.size)

    @handles(Put)
    async def _put(self, request: Put) -> None:
        """Receive ``length`` raw bytes into the write session (or drop them after an error)."""
        self._enter("receiving")  # the bytes are part of the request: they must keep coming
        offset, remaining = request.offset, request.length
        if not self.in_write:
            self.in_write = True  # so that commit reports this, not a reply out of turn
            self.write_error = self.write_error or InvalidError("put without a write session")
        if self.write is not None and self.write_error is None:
            try:
                self.server.check_space(max(0, offset + remaining - self.write.size))
                self._check_limit(offset + remaining)
            except SectorError as exc:
                self.write_error = exc
        if self.write is not None:
            self.server.wrote(self.write.lease)
        position = offset
        in_flight: asyncio.Future | None = None
        spare = False  # which buffer to fill: never the one a thread is writing from
        try:
            while remaining:
                view = self._spare_buffer() if spare else memoryview(self.buffer)
                wanted = min(remaining, len(view))
                filled = await self.channel.recv_exact_into(view[:wanted], self._progress)
                if filled < wanted:
                    raise ConnectionError("connection closed during a put")
                if in_flight is not None:
                    await in_flight
                    in_flight = None
                if self.write is not None and self.write_error is None:
                    chunk = view[:filled]
                    down = self.downstream
                    if filled >= THREADED_WRITE:
                        # the disk write runs on a thread while the next buffer fills,
                        # and a HiRELIABLE chain's next slave gets the chunk meanwhile
                        in_flight = self.loop.run_in_executor(
                            None, self._write_chunk, position, chunk
                        )
                        if down is not None and down.alive:
                            in_flight = asyncio.gather(in_flight, down.put(position, chunk))
                        spare = not spare
                    else:
                        self._write_chunk(position, chunk)
                        if down is not None and down.alive:
                            await down.put(position, chunk)
                position += filled
                remaining -= filled
                self.server.received += filled
        finally:
            if in_flight is not None:
                await in_flight

    def _check_limit(self, end: int) -> None:
        """Refuse to grow the new version past the writer's quota (WriteClaims.limit):
        the write fails here, at the put that would pass it, and keeps nothing."""
        assert self.write is not None
        if 0 <= self.write_limit < end and end > self.write.size:
            raise NoDiskError(
                f"quota exceeded: this file may grow to {self.write_limit} bytes "
                "(the writer's QUOTA)"
            )

    @handles(Truncate)
    async def _truncate(self, request: Truncate) -> None:
        """Cut or zero-extend the version being written; a failure is the write's sticky error."""
        if not self.in_write:
            self.in_write = True  # so that commit reports this, not a reply out of turn
            self.write_error = self.write_error or InvalidError("truncate without a write session")
        if self.write is None or self.write_error is not None:
            return
        try:
            self.server.check_space(max(0, request.length - self.write.size))
            self._check_limit(request.length)  # zero-extending counts against the quota too
            self.write.truncate(request.length)
        except SectorError as exc:
            self.write_error = exc
        except OSError as exc:
            self.write_error = disk_error(exc)

    def _write_chunk(self, position: int, view: memoryview) -> None:
        """Write (and hash) one received chunk; a disk error becomes the sticky error.

        The chunk always starts at the start of a page-aligned (mmap) buffer.
        """
        assert self.write is not None
        try:
            self.write.write_at(position, view, aligned=True)
        except OSError as exc:
            self.write_error = disk_error(exc)

    def _spare_buffer(self) -> memoryview:
        """The second receive buffer, made on first use (only large puts need it)."""
        if self.spare is None:
            self.spare = mmap.mmap(-1, RECV_BUFFER)
        return memoryview(self.spare)

    @handles(Commit)
    async def _commit(self, request: Commit) -> Reply:
        error, write, down = self.write_error, self.write, self.downstream
        record = self.write_record and down is None  # a chain's copies are the client's to count
        self.write = self.downstream = None
        self._end_write()
        if write is not None:
            self.server.writing.pop(write.lease, None)
        if error is None and write is None:
            error = InvalidError("commit without a write session")
        if error is not None:
            if write is not None:
                write.discard()
            if down is not None:
                down.close()
            raise error
        assert write is not None
        # the chain's slaves commit (and fsync) while we do
        chained = asyncio.ensure_future(down.commit()) if down is not None else None
        try:
            size, checksum = await self.server.commits.commit(write)
        except OSError as exc:
            write.discard()
            if chained is not None:
                chained.cancel()
                down.close()  # type: ignore[union-attr]
            raise disk_error(exc) from None
        self.storage.note_path(write.oid, write.version, self.write_path)
        receipt = Receipt(
            write.oid, write.version, size, checksum, self.server.slave_id, write.lease
        )
        more = await chained if chained is not None else []
        signed = self.server.sign_receipt(receipt)
        closed = b""
        if record:
            closed = await self.server.record_commit(write.lease, signed)
        return CommitReply(signed, size, checksum, more, closed)

    @handles(AbortWrite)
    async def _abort(self, request: AbortWrite) -> None:
        self._end_write()

    def _end_write(self) -> None:
        if self.downstream is not None:  # the next slave drops its part when we hang up
            self.downstream.close()
            self.downstream = None
        if self.write is not None:
            self.server.writing.pop(self.write.lease, None)
            self.write.discard()
            self.write = None
        self.write_error = None
        self.write_record = False
        self.in_write = False

    # --- the master's orders (the admin token was checked by _answer) ---------------------

    @handles(DeleteObjects)
    async def _delete(self, request: DeleteObjects) -> Reply:
        for lease in request.ended:
            self.server.lease_ended(lease)
        removed = sum(self.storage.delete(o.oid, o.version) for o in request.objects)
        return DeleteReply(removed)

    @handles(CopyObject)
    async def _copy(self, request: CopyObject) -> Reply:
        src, dst = request.src, request.dst
        size, digest = await self._on_disk(
            self.storage.copy, (src.oid, src.version), (dst.oid, dst.version)
        )
        self.storage.note_path(dst.oid, dst.version, request.path)
        return CopyReply(size, digest)

    @handles(FetchObject)
    async def _fetch(self, request: FetchObject) -> Reply:
        return await copies.fetch(self.server, request)

    @handles(VerifyObjects)
    async def _verify(self, request: VerifyObjects) -> Reply:
        """Re-read each object whole; damaged ones are quarantined as they are found."""
        damaged: list[ObjectId] = []
        missing: list[ObjectId] = []
        for obj in request.objects:
            good = await self.loop.run_in_executor(None, self.storage.verify, obj.oid, obj.version)
            if good is None:
                missing.append(obj)
            elif not good:
                damaged.append(obj)
        return VerifyReply(damaged, missing)

    @handles(StopSlave)
    async def _shutdown(self, request: StopSlave) -> Reply:
        log.info("shutdown requested by the master")
        self.server.stop()
        return Done()


__all__ = ["SlaveServer"]
