"""The conversation on a slave's data port, and the client's half of it as a state machine.

Plain TCP; there is no greeting, because every request that touches data
proves itself with a token the master signed (:mod:`.tokens`). Clients read
and write; the master sends admin orders (with an admin token) to the same
port. All of it is :data:`SLAVE_REQUESTS`.

Client -> slave::

    read(offset, length, token?)   -> ReadReply(length, sums), then that many raw
                                      bytes; ``sums`` are the block sums of every
                                      block they touch, for the reader to check
                                      (no token, inside a write session: the bytes
                                      written so far, for RW mode, without sums)
    write(token, chain, record)    start a write session; no reply (with a chain, the
                                   slave streams the write on to the next slaves; with
                                   record, it has the master record the commit)
    put(offset, length)            then ``length`` raw bytes; no reply
    truncate(length)               cut the new version to ``length`` bytes (or extend
                                   it with zeros); no reply
    commit                         -> CommitReply(receipt, size, checksum, more,
                                      closed); the receipt goes to the master with
                                      ``close``, or went already (``record``): then
                                      ``closed`` is the master's answer to it
    abort                          end the write session, keep nothing; no reply

A write streams without waiting for replies, so its errors are sticky: the
slave remembers the first (a frame it could not read included) and answers
``commit`` with it. A ``put`` it cannot read ends the connection, since
where its data ends is then unknown.

Master -> slave (each with an admin token)::

    delete(objects, ended)         -> DeleteReply(deleted); ended: leases whose tokens die
    copy(src, dst)                 -> CopyReply(size, checksum)
    fetch(obj, size, checksum, sources, read_tokens)
                                   read the object from another slave -> FetchReply
    verify(objects)                -> VerifyReply(damaged, missing)
    shutdown                       -> ok

:class:`DataSession` is the client's side as data: bytes in, replies out, no
sockets. The blocking client drives it over a socket; an asyncio program (a
slave fetching a replica from another slave) drives it the same way.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

import msgspec

from . import checksum
from .framing import HEADER_SIZE, ProtocolError, body_length, encode
from .messages import Done, Message, Reply, Request, Vocabulary, replies_to

NonNegative = Annotated[int, msgspec.Meta(ge=0)]
#: An id or version as the master stores it: SQLite integers are signed 64-bit.
StoredInt = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class ObjectId(Message):
    """One version of one file's bytes on a slave: ``[oid, version]`` on the wire."""

    oid: StoredInt
    version: StoredInt


class ObjectInfo(Message):
    """A stored object as a slave reports it when joining.

    ``age``: seconds since the slave stored it (its own clock: no two machines'
    clocks are compared). ``path``: the file's path when this version was
    written (or last heard of), kept beside the object so that a namespace
    can be rebuilt from the slaves (``sector fsck --adopt``).
    """

    oid: StoredInt
    version: StoredInt
    size: NonNegative
    checksum: str
    age: float = 0.0
    path: str = ""


class ObjectPath(Message):
    """Where in the namespace an object's file is now (a rename the slave should note)."""

    oid: int
    version: int
    path: str


# --- replies ----------------------------------------------------------------------------


class ReadReply(Reply, tag="read"):
    """``length`` raw bytes follow (fewer than asked only at the end of the data).

    ``sums`` holds the block sums (:mod:`.checksum`) of the blocks those bytes
    touch, first to last: a reader asking for whole blocks checks every byte
    against them before using it.
    """

    length: NonNegative
    sums: bytes = b""

    raw_follows = True


class CommitReply(Reply, tag="commit"):
    """Committed here. ``more``: the receipts of the slaves further down the write's
    chain that committed it too (HiRELIABLE), for the master to count.

    ``closed``: when the slave reported the commit to the master itself (see
    ``protocol.master.Committed``), the master's answer, encoded as it would
    answer the client's ``close`` (a ``CloseReply`` or an ``Error``): the
    write is then over, and the client sends no ``close``. Empty: the client
    closes with ``receipt`` as before (the slave's master link was down, or the
    write is HiRELIABLE).
    """

    receipt: bytes
    size: int
    checksum: str
    more: list[bytes] = []
    closed: bytes = b""


class DeleteReply(Reply, tag="delete"):
    deleted: int


class CopyReply(Reply, tag="copy"):
    size: int
    checksum: str


class FetchReply(Reply, tag="fetch"):
    """The object is stored, and its bytes were checked against the checksum asked for."""

    size: int
    checksum: str


class VerifyReply(Reply, tag="verify"):
    damaged: list[ObjectId]
    missing: list[ObjectId]


# --- a client's requests ----------------------------------------------------------------


class Read(Request, tag="read"):
    offset: NonNegative
    length: NonNegative
    token: bytes | None = None

    replies = (ReadReply,)


class ChainLink(Message):
    """A slave further down a HiRELIABLE write's chain, and its own write token."""

    host: str
    port: int
    token: bytes


class Write(Request, tag="write"):
    """Start a write. With a ``chain``, the slave streams every byte it receives on
    to ``chain[0]`` (which passes them to the rest) as they arrive, and commits
    there too before it answers the commit."""

    token: bytes
    chain: list[ChainLink] = []
    #: The slave reports the commit to the master itself and answers ``commit`` with the
    #: master's outcome (``CommitReply.closed``): the client then sends no ``close``.
    record: bool = False


class Put(Request, tag="put"):
    offset: NonNegative
    length: NonNegative

    raw_follows = True


class Truncate(Request, tag="truncate"):
    """Inside a write session: the new version is ``length`` bytes long from now on."""

    length: NonNegative


class Commit(Request, tag="commit"):
    replies = (CommitReply,)


class AbortWrite(Request, tag="abort"):
    pass


# --- the master's orders ----------------------------------------------------------------


class AdminRequest(Request):
    """An order only the master may give, with an admin token for exactly this order.

    The master's link to the slave signs each order in one place, just before
    sending (``token`` is replaced by name), over its :meth:`digest`: a token
    seen on the wire is good for no other order, and only once.
    """

    def digest(self) -> bytes:
        """SHA-256 of the order as sent, without its token: what its token vouches for."""
        unsigned = msgspec.structs.replace(self, token=b"")  # type: ignore[call-arg]
        return hashlib.sha256(encode(unsigned)).digest()


class LeaseEnd(Message):
    """A write lease that ended without a commit (aborted, its client gone): its
    token must start no write from now on. ``until`` is when the token expires."""

    lease: int
    until: float


class DeleteObjects(AdminRequest, tag="delete"):
    objects: list[ObjectId]
    token: bytes = b""
    #: Leases that ended without a commit (their objects are among ``objects``).
    ended: list[LeaseEnd] = []

    replies = (DeleteReply,)


class CopyObject(AdminRequest, tag="copy"):
    src: ObjectId
    dst: ObjectId
    token: bytes = b""
    #: The copy's path in the namespace, kept beside it (see ObjectInfo.path).
    path: str = ""

    replies = (CopyReply,)


class FetchObject(AdminRequest, tag="fetch"):
    """Make a replica: read ``obj`` from one of ``sources`` (other slaves' data ports,
    tried in turn, resuming at the same offset) each with its own read token
    (``read_tokens``, in the same order: a source checks it with its own key), and
    keep it only if all ``size`` bytes arrived and match ``checksum``."""

    obj: ObjectId
    size: NonNegative
    checksum: str
    sources: list[tuple[str, int]]
    read_tokens: list[bytes]
    path: str = ""
    token: bytes = b""

    replies = (FetchReply,)


class VerifyObjects(AdminRequest, tag="verify"):
    objects: list[ObjectId]
    token: bytes = b""

    replies = (VerifyReply,)


class StopSlave(AdminRequest, tag="shutdown"):
    token: bytes = b""

    replies = (Done,)


SLAVE_REQUESTS = Vocabulary(
    "a slave's requests",
    Read,
    Write,
    Put,
    Truncate,
    Commit,
    AbortWrite,
    DeleteObjects,
    CopyObject,
    FetchObject,
    VerifyObjects,
    StopSlave,
)


# --- the client's half, sans IO ---------------------------------------------------------


class OutOfTurn(RuntimeError):
    """Our own code broke the conversation's rules (a bug here, not the peer's fault)."""


class DataSession:
    """The client's side of one data connection, as a state machine without a socket.

    Each method named for something to do returns the bytes to send and moves
    the state on. What arrives goes to :meth:`receive`, which returns the
    reply once a whole frame is in (None while it needs more). :attr:`wanted`
    is how many bytes to read next, never past the end of a frame: the raw
    bytes after a :class:`ReadReply` are left on the socket for the caller to
    ``recv_into`` its own buffer (zero copies), and reported back with
    :meth:`received_raw`. Likewise after :meth:`put` the caller sends the data
    itself (``sendall`` or ``sendfile``).

    ::

        idle ──write──► writing ──commit──► (CommitReply | Error) ──► idle
          │               │  └──abort──► idle
          └──read──►  (ReadReply | Error) ──► raw bytes ──► back where it was

    A reply that is not allowed at that point raises :class:`ProtocolError`
    and the session is broken for good: drop the connection.
    """

    def __init__(self) -> None:
        self.writing = False
        self.broken = False
        self._awaiting: Vocabulary | None = None
        self._asked = 0  # bytes a pending read asked for
        self._offset = 0  # where it starts
        self._verified_read = False  # whether it reads a stored file (with sums)
        self._frame = bytearray()  # the part of the frame received so far
        self._need = HEADER_SIZE  # bytes the current part (header, then body) needs
        self._in_body = False
        self._raw_left = 0

    @property
    def idle(self) -> bool:
        """Nothing in flight: the connection may go back to a pool."""
        return not (self.writing or self.broken or self._awaiting or self._raw_left)

    @property
    def wanted(self) -> int:
        """Bytes to read from the slave before the next call to :meth:`receive`."""
        if self._awaiting is None or self._raw_left:
            return 0
        return self._need - len(self._frame)

    @property
    def raw_pending(self) -> int:
        """Raw bytes of the last read still to arrive (the caller's to receive)."""
        return self._raw_left

    # --- what we send -------------------------------------------------------------------

    def read(self, offset: int, length: int, token: bytes | None = None) -> bytearray:
        """Ask for ``length`` bytes from ``offset``; without a token, of our own write."""
        self._check_quiet("read")
        self._expect(Read, asked=length)
        self._offset, self._verified_read = offset, token is not None
        return encode(Read(offset, length, token))

    def begin_write(
        self, token: bytes, chain: list[ChainLink] | None = None, record: bool = False
    ) -> bytearray:
        """Start writing; with a ``chain``, the slave passes the bytes on (HiRELIABLE); with
        ``record``, it has the master record the commit (see :attr:`Write.record`)."""
        self._check_quiet("start a write")
        if self.writing:
            raise OutOfTurn("a write session is already open")
        self.writing = True
        return encode(Write(token, chain or [], record))

    def put(self, offset: int, length: int) -> bytearray:
        """The frame announcing ``length`` bytes at ``offset``; the caller sends them next."""
        self._check_writing("put")
        return encode(Put(offset, length))

    def truncate(self, length: int) -> bytearray:
        """The frame that cuts (or zero-extends) the version being written to ``length``."""
        self._check_writing("truncate")
        return encode(Truncate(length))

    def commit(self) -> bytearray:
        self._check_writing("commit")
        self.writing = False
        self._expect(Commit)
        return encode(Commit())

    def abort(self) -> bytearray:
        self._check_writing("abort")
        self.writing = False
        return encode(AbortWrite())

    # --- what we receive ----------------------------------------------------------------

    def receive(self, data: bytes | bytearray | memoryview) -> Reply | None:
        """Take bytes read from the slave (at most :attr:`wanted`); the reply, once whole."""
        if len(data) > self.wanted:
            raise OutOfTurn(f"given {len(data)} bytes where {self.wanted} were wanted")
        if not self._frame and len(data) == self._need:
            part: bytes | bytearray | memoryview = data  # the common case: no copy
        else:
            self._frame += data
            if len(self._frame) < self._need:
                return None
            part = self._frame
        if not self._in_body:
            self._start_body(part)
            return None
        return self._finish(part)

    def received_raw(self, count: int) -> None:
        """The caller took ``count`` raw bytes of the last read off the connection."""
        if count > self._raw_left:
            raise OutOfTurn(f"{count} raw bytes taken where {self._raw_left} were due")
        self._raw_left -= count

    # --- the rules ----------------------------------------------------------------------

    def _start_body(self, header: bytes | bytearray | memoryview) -> None:
        try:
            self._need = body_length(header)
        except ProtocolError:
            self.broken = True
            raise
        self._frame = bytearray()
        self._in_body = True

    def _finish(self, body: bytes | bytearray | memoryview) -> Reply:
        assert self._awaiting is not None
        try:
            reply = self._awaiting.decode(body)
        except ProtocolError:
            self.broken = True
            raise
        self._awaiting = None
        self._frame = bytearray()
        self._need, self._in_body = HEADER_SIZE, False
        if isinstance(reply, ReadReply):
            if reply.length > self._asked:
                self.broken = True
                raise ProtocolError(f"slave sent {reply.length} bytes, {self._asked} were asked")
            due = self._sums_due(reply.length)
            if len(reply.sums) != due:
                self.broken = True
                raise ProtocolError(f"slave sent {len(reply.sums)} bytes of sums, {due} were due")
            self._raw_left = reply.length
        return reply

    def _sums_due(self, length: int) -> int:
        """A stored file's bytes come with the sums of their blocks; one's own writes not."""
        if not self._verified_read:
            return 0
        return len(checksum.blocks(self._offset, self._offset + length)) * checksum.SUM_SIZE

    def _expect(self, request_type: type[Request], asked: int = 0) -> None:
        self._awaiting = replies_to(request_type)
        self._asked = asked

    def _check_quiet(self, action: str) -> None:
        if self.broken:
            raise OutOfTurn(f"cannot {action}: the connection broke")
        if self._awaiting is not None or self._raw_left:
            raise OutOfTurn(f"cannot {action} before the last reply has been received")

    def _check_writing(self, action: str) -> None:
        self._check_quiet(action)
        if not self.writing:
            raise OutOfTurn(f"cannot {action} outside a write session")
