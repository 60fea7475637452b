"""The conversations with the master: clients' requests and slaves' reports (over TLS).

A connection to the master starts unidentified and may send one of the
:data:`GREETINGS` only. ``login`` makes it a client session, which may send
the :data:`CLIENT_REQUESTS`; ``register`` makes it a slave's link, which sends
:data:`SLAVE_REPORTS`. Anything else before a greeting ends the connection
(:func:`refusal` says with which reply); afterwards it gets E_INVALID and the
session carries on. Requests on one connection are answered in order.

Client -> master::

    login(version, user, password)     -> LoginReply(user, rights)
    logout                             -> ok, then the master hangs up
    ping                               -> PingReply(time)
    stat(path, cache)                  -> StatReply(entry, lease)   entry: Entry, with slaves;
                                          cache: lease it (lease: seconds it may be kept)
    ls(path)                           -> LsReply(names, isdir, ...) columns; a file
                                          lists as itself
    mkdir(path)                        creates missing parents  -> ok
    rm(path, recursive)                -> ok
    move(src, dst, replace)            -> ok; replace: over a file or empty directory,
                                          atomically (POSIX rename)
    copy(src, dst, replace)            the bytes are copied slave-side -> ok
    set-time(path, mtime)              the modification time, as utime sets it -> ok
    open(path, mode, create)           -> ReadGrant | WriteGrant (mode bits: READ, WRITE...;
                                          create: allow | exclusive | never)
    close(lease, receipt)              commit a write -> CloseReply(entry)
    abort(lease)                       drop a write, keeping the old version -> ok
    sysinfo                            -> SysinfoReply(master, slaves, capacity)
    quota                              -> QuotaReply(user, used, files, quota)
    fsck(path)                         slaves re-hash their copies -> FsckReply
    bad-replica(oid, version, slave)   a reader got bytes failing their block sums
                                       there: the master has the slave check -> ok
    shutdown(slave?)                   admin only: one slave, or all and the master
    replicate(path, number, hireliable)
                                       a path's own replica count -> ReplicateReply
    decommission(slave, cancel)        admin only: drain a slave -> DecommissionReply
    adopt(discard)                     admin only: leave safe mode, adopting (or
                                       giving up) what the namespace does not know
    cache-release(seq)                 forgot what invalidate #seq named (no reply)

Master -> client, unasked (:data:`PUSHES`, before or between replies)::

    invalidate(seq, paths)             forget these leased stat answers, then send
                                       cache-release(seq) (see sector.master.cache_leases)

Slave -> master::

    join(version, token, slave_id, request)
                                       -> JoinReply(certificate), then the master hangs up
    register(version, slave_id, host, port, usage, objects, software, cluster)
                                       -> RegisterReply(key, heartbeat, slave_id, delete,
                                                        cluster, inventory, renamed)
    heartbeat(usage)                   -> ok
    inventory(objects)                 now and then -> InventoryReply(delete, renamed)
    quarantined(objects)               replicas found damaged and moved aside -> ok
    bad-source(obj, source)            a copy from that slave got bytes failing
                                       their sums: have it check its replica -> ok
    committed(writes)                  writes this slave committed, recorded as their
                                       clients' close would -> CommittedReply(outcomes)

``join`` is how a slave becomes a member: it sends a join token the operator
made and a request for a certificate of the key it just made; the master
answers with the certificate (see :mod:`sector.certs`). ``register`` is
accepted only on a connection whose TLS client certificate is a member's, and
names the slave that certificate was issued to; the reply's key is that
slave's own (:func:`sector.protocol.tokens.slave_key`).

Requests that wait on slaves or threads (``long_running``: login, copy,
fsck, shutdown, close) get ``Working`` frames every second until their reply, so a
client can time out a silent master quickly without cutting off a long copy.

A ``ReadGrant`` names the replicas to read from and carries a read token; a
``WriteGrant`` names the one slave to write to, a write token and the lease
that ``close`` (with the slave's signed receipt) or ``abort`` ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import msgspec

from ..errors import E_INVALID, E_SECURITY, NotSupportedError
from .data import ChainLink, CommitReply, NonNegative, ObjectId, ObjectInfo, ObjectPath
from .messages import (
    PROTOCOL_VERSION,
    READ,
    Done,
    Error,
    InvalidMessage,
    Message,
    Reply,
    Request,
    Vocabulary,
    replies_to,
)
from .paths import ROOT, is_within

#: (host, port) of a slave's data port.
Address = tuple[str, int]
#: What opening for writing does about the file (``Open.create``): make it if missing
#: (Sector's way), make it only if missing (``O_EXCL``: E_EXIST when it is there or
#: being created), or never make it (E_NOEXIST when missing).
Create = Literal["allow", "exclusive", "never"]
#: A slave's id: it names the slave in its certificate, the master's records and log lines.
SlaveId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


# --- what replies carry ---------------------------------------------------------------


class Entry(Message):
    """One directory entry, as ``stat`` and ``ls`` show it.

    ``slaves`` (``host:port`` of the live holders of the current version) is
    filled in by ``stat`` only: an ``ls`` of a large directory would pay one
    replica look-up per entry for a column nobody reads there. ``timestamp``
    is the last change (a file's last commit), ``created`` when the entry
    appeared (0 when the master did not record it: files from before it did).
    """

    name: str
    isdir: bool
    size: int
    timestamp: float
    version: int
    checksum: str
    slaves: list[str] = []
    created: float = 0.0


class Usage(Message):
    """A slave's disk: what it reports on joining and in every heartbeat."""

    total: NonNegative
    free: NonNegative
    stored: NonNegative
    files: NonNegative
    #: The file system under the data directory (``host/st_dev/f_fsid``): slaves sharing
    #: one disk report the same id, and their capacity is counted once.
    fs: str = ""
    #: File bytes received from writers and sent to readers since the slave started
    #: (counters: the master exports them to Prometheus, which copes with their resets).
    received: NonNegative = 0
    sent: NonNegative = 0
    #: The slave machine's load average over the last minute.
    load: float = 0.0
    #: The most the slave will store (its MAX_DATA_SIZE); 0: no limit but the disk.
    limit: int = 0
    #: Why the slave cannot serve as it should right now (it cannot accept connections:
    #: out of file descriptors...); empty when healthy. New files go elsewhere meanwhile.
    trouble: str = ""


class Capacity(Message):
    """The live slaves' storage, each file system counted once (``Registry.capacity``).

    ``stored`` is what the slaves hold for Sector (every replica); ``total``
    and ``free`` are the disks', shared or not.
    """

    slaves: int = 0
    disks: int = 0
    total: int = 0
    free: int = 0
    stored: int = 0


class Health(Message):
    """How safe the files are: what ``sysinfo``, ``df`` and the dashboard show.

    ``under_replicated``: files with fewer live replicas than they want (but
    at least one); ``lost``: files no live slave holds; ``copying``: replicas
    being made now; ``queued``: files waiting for a copy; ``draining``: slaves
    being decommissioned; ``safe_mode``: why the master deletes nothing (empty
    when it is not in safe mode); ``scanned``: False until the master has
    checked every file once after starting (the counts are partial until then).
    """

    under_replicated: int = 0
    lost: int = 0
    copying: int = 0
    queued: int = 0
    draining: int = 0
    safe_mode: str = ""
    scanned: bool = False


class MasterInfo(Message):
    started: float
    address: str
    files: int
    dirs: int
    size: int
    replica_num: int
    health: Health = Health()


class SlaveInfo(Message):
    id: str
    address: str
    status: str
    total: int
    free: int
    stored: int
    files: int
    started: float
    active: int
    #: The slave's file system (see :attr:`Usage.fs`); its own id when it said none.
    fs: str = ""
    #: Where ``topology.conf`` puts it (``/dc1/rack2``; ``/`` when no line does).
    location: str = "/"
    #: Bytes it may store at most (MAX_DATA_SIZE); 0: no limit but the disk.
    limit: int = 0
    #: Why an alive slave is ``unhealthy`` (see :attr:`Usage.trouble`); empty otherwise.
    trouble: str = ""


class Rights(Message):
    """Where a user may read and write: the roots of its permissions.

    A path is readable at or below a ``read`` or ``write`` root, writable at or
    below a ``write`` root; ``admin`` may do anything. The master checks every
    request with these; a client may ask them ahead (the mount shows them as
    permission bits).
    """

    read: list[str] = []
    write: list[str] = []
    admin: bool = False

    def can_read(self, path: str) -> bool:
        return self.admin or any(is_within(path, root) for root in (*self.read, *self.write))

    def can_write(self, path: str) -> bool:
        return self.admin or any(is_within(path, root) for root in self.write)

    def leads_to(self, path: str) -> list[str]:
        """The names in ``path`` on the way to roots below it, when ``path`` itself is
        not readable: ``["home"]`` at ``/`` for a user who may read ``/home/alice``.

        Empty for a readable path and for one that leads nowhere. What a browser
        (the mount) may show of such a directory, so the user can reach its own.
        """
        if self.can_read(path):
            return []
        below = ROOT if path == ROOT else path + "/"
        return sorted(
            {
                root[len(below) :].split("/")[0]
                for root in (*self.read, *self.write)
                if root.startswith(below)
            }
        )


class Problem(Message):
    """One thing ``fsck`` found: ``problem`` is missing, damaged, unreachable or
    under-replicated (``detail``: how many replicas count, of how many wanted).
    ``repaired``: an ``fsck --repair`` brought the file back to its target."""

    path: str
    slave: str | None
    problem: str
    detail: str = ""
    repaired: bool = False


# --- replies ----------------------------------------------------------------------------


class LoginReply(Reply, tag="login"):
    """Welcome: the user's name and what it may read and write. ``lease_timeout``: the
    master's CLIENT_TIMEOUT (0: none), after which the write leases of a client it has
    not heard from expire - a client with files open for writing pings it sooner."""

    user: str
    rights: Rights = msgspec.field(default_factory=Rights)
    lease_timeout: float = 0.0


class JoinReply(Reply, tag="join"):
    """The slave's certificate (PEM), issued by the master for the key the slave sent."""

    certificate: bytes


class RegisterReply(Reply, tag="register"):
    """Welcome: this slave's token key, how often to report, and what to delete before serving.

    Stale objects travel here rather than as a separate order so that a slave
    drops them before it serves anyone, with no window for a race. ``cluster``
    is the master's cluster id: a slave that belongs to another cluster must not
    serve this master (nor delete anything it says). ``inventory``: seconds
    between the slave's full inventories (see :class:`Inventory`); 0: never.
    """

    key: bytes
    heartbeat: float
    slave_id: str
    delete: list[ObjectId] = []
    cluster: str = ""
    inventory: float = 0.0
    renamed: list[ObjectPath] = []
    #: DATA_ENCRYPTION: serve clients' reads and writes over TLS only.
    data_encryption: bool = False


class InventoryReply(Reply, tag="inventory"):
    """What to delete (orphans, superseded versions) and which objects' paths changed."""

    delete: list[ObjectId] = []
    renamed: list[ObjectPath] = []


class PingReply(Reply, tag="ping"):
    time: float


class StatReply(Reply, tag="stat"):
    """``lease``: seconds the asker may answer ``stat`` of this path from its cache,
    counted from when it *sent* the request (so that its lease ends before the
    master's); 0.0 when it did not ask (``Stat.cache``). See :class:`Invalidate`."""

    entry: Entry
    lease: float = 0.0


class Invalidate(Reply, tag="invalidate"):
    """Pushed by the master, not asked for: forget the cached ``stat`` of ``paths``.

    It may arrive before any reply, or while the client reads nothing (a client
    reads it before it next answers from its cache). The change that recalled the
    paths is acknowledged to nobody until the client sends ``CacheRelease(seq)``
    or its lease on them runs out.
    """

    seq: int
    paths: list[str]


class LsReply(Reply, tag="ls"):
    """A directory's entries as columns: entry ``i`` is ``names[i]``, ``isdir[i]``...

    The fields of :class:`Entry` but ``slaves`` (see there), in name order.
    Why columns (protocol version 2; version 1 sent a list of Entry): seven
    homogeneous arrays decode in 0.2-0.55x the time of as many small structs, and
    encode from the master's columns with no object per entry (``python -m
    bench.codec``). A receiver checks :meth:`is_even` before zipping them.
    """

    # Sequence: a sender may pass tuples (the master's cached columns); decoded as lists
    names: Sequence[str]
    isdir: Sequence[bool]
    sizes: Sequence[int]
    timestamps: Sequence[float]
    versions: Sequence[int]
    checksums: Sequence[str]
    created: Sequence[float]

    def __len__(self) -> int:
        return len(self.names)

    def is_even(self) -> bool:
        """Whether every column has one value per name (a peer could send otherwise)."""
        count = len(self.names)
        return all(len(column) == count for column in self._columns())

    def entries(self) -> list[Entry]:
        """The listing as :class:`Entry` values (a convenience: the columns are cheaper)."""
        return [
            Entry(name, isdir, size, timestamp, version, checksum, [], created)
            for name, isdir, size, timestamp, version, checksum, created in zip(
                *self._columns(), strict=True
            )
        ]

    def _columns(self) -> tuple[Sequence[Any], ...]:
        """Every column, in :class:`Entry`'s order (``slaves`` left out, as ``ls`` does)."""
        return (
            self.names,
            self.isdir,
            self.sizes,
            self.timestamps,
            self.versions,
            self.checksums,
            self.created,
        )


class ReadGrant(Reply, tag="read-grant"):
    """Read one version of a file: from any of ``replicas``, each with its own token.

    ``tokens[i]`` is for ``replicas[i]`` (every slave checks tokens with a key of
    its own); ``token`` is the first of them. An empty file may come with no
    replicas: there is nothing to fetch.
    """

    oid: int
    version: int
    size: int
    checksum: str
    token: bytes
    replicas: list[Address]
    tokens: list[bytes] = []
    #: Read over TLS (SF_MODE.SECURE, or the cluster's DATA_ENCRYPTION).
    secure: bool = False

    def token_for(self, address: tuple[str, int]) -> bytes:
        """The token to show the replica at ``address`` (one of ``replicas``)."""
        for index, (host, port) in enumerate(self.replicas):
            if (host, int(port)) == (address[0], int(address[1])) and index < len(self.tokens):
                return self.tokens[index]
        return self.token


class WriteGrant(Reply, tag="write-grant"):
    """Write the next version of a file on ``slave``; ``size`` is what it starts from.

    ``chain`` (HiRELIABLE writes): the slaves ``slave`` streams the bytes on to as
    they arrive, each with its token; they go in the ``write`` request.
    """

    lease: int
    oid: int
    version: int
    size: int
    token: bytes
    slave: Address
    chain: list[ChainLink] = []
    #: Write over TLS (SF_MODE.SECURE, or the cluster's DATA_ENCRYPTION).
    secure: bool = False


class CloseReply(Reply, tag="close"):
    entry: Entry


class CommittedReply(Reply, tag="committed"):
    """What each reported write came to, in order: exactly what its client's ``close``
    would have got (the file's new entry, or why the commit was refused)."""

    outcomes: list[CloseReply | Error]


class SysinfoReply(Reply, tag="sysinfo"):
    master: MasterInfo
    slaves: list[SlaveInfo]
    #: Added after ``slaves``: what ``df``, a mount's ``statfs`` and the dashboard show.
    capacity: Capacity = Capacity()


class FsckReply(Reply, tag="fsck"):
    files: int
    replicas: int
    problems: list[Problem]


class ReplicateReply(Reply, tag="replicate"):
    """How many files the new setting covers (they are recounted in the background)."""

    files: int


class DecommissionReply(Reply, tag="decommission"):
    """The slave's id and how many files it holds (all copied elsewhere before it is
    drained)."""

    slave: str
    files: int


class AdoptReply(Reply, tag="adopt"):
    """What ``adopt`` brought into the namespace: files at their recorded paths, files
    put in ``/lost+found`` (no path known, or the path taken), and the cluster id."""

    files: int
    lost_found: int
    cluster: str


class QuotaReply(Reply, tag="quota"):
    """What the user owns (the current versions it wrote) against its ``quota``
    (bytes; 0: none)."""

    user: str
    used: int
    files: int
    quota: int


class ShutdownReply(Reply, tag="shutdown"):
    """The ids of the slaves stopped, and ``master`` when the master stops too."""

    stopped: list[str]


# --- greetings --------------------------------------------------------------------------


class Login(Request, tag="login"):
    """A client's greeting. ``version`` comes first so it is readable whatever follows."""

    version: int
    user: str
    password: str

    replies = (LoginReply,)
    long_running = True  # the password hash runs on a thread


class Join(Request, tag="join"):
    """A would-be slave's greeting: a join token, and a certificate request for its key."""

    version: int
    token: str
    slave_id: SlaveId
    request: bytes

    replies = (JoinReply,)


class Register(Request, tag="register"):
    """A member slave's greeting: who it is, where it serves, everything it holds, and
    the cluster it belongs to (empty for a slave that never registered)."""

    version: int
    slave_id: SlaveId
    host: str
    port: int
    usage: Usage
    objects: list[ObjectInfo] = []
    #: The slave's software release (``sector.__version__``), shown by the dashboard.
    software: str = ""
    cluster: str = ""

    replies = (RegisterReply,)


# --- a client's requests ----------------------------------------------------------------


class Logout(Request, tag="logout"):
    replies = (Done,)


class Ping(Request, tag="ping"):
    replies = (PingReply,)


class Stat(Request, tag="stat"):
    """``cache``: ask for a lease to keep the reply (see :class:`StatReply`)."""

    path: str
    cache: bool = False

    replies = (StatReply,)


class CacheRelease(Request, tag="cache-release"):
    """The client forgot the paths of every :class:`Invalidate` up to ``seq``; no reply
    (a reply would take a place among the replies of requests in flight)."""

    seq: int


class Ls(Request, tag="ls"):
    path: str

    replies = (LsReply,)


class Mkdir(Request, tag="mkdir"):
    path: str

    replies = (Done,)


class Rm(Request, tag="rm"):
    path: str
    recursive: bool = True

    replies = (Done,)


class Move(Request, tag="move"):
    """Rename. With ``replace``, as POSIX ``rename(2)``: an existing file at ``dst``
    (or an empty directory, for a directory) is replaced in the same transaction."""

    src: str
    dst: str
    replace: bool = False

    replies = (Done,)


class Copy(Request, tag="copy"):
    """Copy a file, slave-side. With ``replace`` the copy replaces a file at ``dst``
    in the transaction that records it."""

    src: str
    dst: str
    replace: bool = False

    replies = (Done,)
    long_running = True  # the slave copies the bytes meanwhile


class SetTime(Request, tag="set-time"):
    """Set an entry's modification time (seconds since the epoch), as ``utime`` does.

    A file's next commit sets it again, to the commit's time.
    """

    path: str
    mtime: float

    replies = (Done,)


class Open(Request, tag="open"):
    """Open for reading or (with a write bit in ``mode``) for writing a new version.

    ``create`` applies to writing only; "exclusive" is decided by the master
    alone, so two clients racing to create one path never both succeed.
    """

    path: str
    mode: int = READ
    create: Create = "allow"

    replies = (ReadGrant, WriteGrant)


class Close(Request, tag="close"):
    """Commit a write: the lease, the receipt the slave signed at commit, and those of
    the slaves down its chain (``more``, HiRELIABLE)."""

    lease: int
    receipt: bytes
    more: list[bytes] = []

    replies = (CloseReply,)
    # the lease belonged to the session that broke; a new session cannot close it
    survives_reconnect = False
    # a HiRELIABLE close whose chain lost a slave waits for the copy that replaces it
    long_running = True


def recorded(commit: CommitReply) -> CloseReply | Error | None:
    """The master's answer to a commit its slave reported (``CommitReply.closed``, see
    ``Write.record``), as the answer to ``close`` would be; None when the slave did not
    report it (a HiRELIABLE write, its master link down): the writer closes itself."""
    if not commit.closed:
        return None
    outcome = replies_to(Close).decode(commit.closed)
    return outcome if isinstance(outcome, (CloseReply, Error)) else None


class Abort(Request, tag="abort"):
    lease: int

    replies = (Done,)


class Sysinfo(Request, tag="sysinfo"):
    replies = (SysinfoReply,)


class Fsck(Request, tag="fsck"):
    """Check every replica under ``path``; with ``repair`` (administrators only), also copy
    what is missing at once, skipping the repair queue, before answering."""

    path: str
    repair: bool = False

    replies = (FsckReply,)
    long_running = True  # slaves re-read what they hold


class ReportBadReplica(Request, tag="bad-replica"):
    """Bytes of ``oid`` version ``version`` from slave ``slave`` (``host:port``, as the
    grant named it) failed their block sums. The master has that slave check the
    replica, which is quarantined and re-copied if damaged; the reply does not wait."""

    oid: int
    version: int
    slave: str

    replies = (Done,)


class Replicate(Request, tag="replicate"):
    """Set how many replicas a path and everything under it keep (``number`` 0: no count
    of its own: replica.conf and REPLICA_NUM decide), and whether their writes are
    HiRELIABLE (None: no setting of its own). Replaces the path's earlier setting."""

    path: str
    number: int = 0
    hireliable: bool | None = None

    replies = (ReplicateReply,)


class Decommission(Request, tag="decommission"):
    """Admin only: copy everything a slave (id or ``host:port``) holds elsewhere, after
    which its replicas no longer count; ``cancel`` stops that."""

    slave: str
    cancel: bool = False

    replies = (DecommissionReply,)


class Adopt(Request, tag="adopt"):
    """Admin only: leave safe mode. By default the files the slaves hold and the
    namespace does not know are added to it (at the paths the slaves recorded);
    with ``discard`` they are given up instead, and deleted."""

    discard: bool = False

    replies = (AdoptReply,)


class Quota(Request, tag="quota"):
    """How much the logged-in user owns, and may."""

    replies = (QuotaReply,)


class Shutdown(Request, tag="shutdown"):
    """Stop one slave (by id or ``host:port``), or with None every slave and the master."""

    slave: str | None = None

    replies = (ShutdownReply,)
    long_running = True  # the slaves are told first


# --- a slave's reports ------------------------------------------------------------------


class Heartbeat(Request, tag="heartbeat"):
    """The slave is alive, with this much space. ``writes``: the leases whose writes it
    received bytes for since its last heartbeat (they must not expire meanwhile)."""

    usage: Usage
    writes: list[int] = []

    replies = (Done,)


class Inventory(Request, tag="inventory"):
    """Everything the slave holds, sent now and then (``RegisterReply.inventory``), so
    that objects nobody will ever read - left by a crash - are collected without
    waiting for the slave to register again."""

    objects: list[ObjectInfo]

    replies = (InventoryReply,)


class Quarantined(Request, tag="quarantined"):
    """Replicas this slave found damaged (its scrub, a first read) and moved aside:
    they are gone, and never reported again."""

    objects: list[ObjectId]

    replies = (Done,)


class BadSource(Request, tag="bad-source"):
    """While copying ``obj`` from the slave at ``source`` (``host:port``), this slave got
    bytes that failed their block sums: the master has that slave check its replica,
    as it does when a reader says so (:class:`ReportBadReplica`)."""

    obj: ObjectId
    source: str

    replies = (Done,)


class CommittedWrite(Message):
    """One write a slave committed: its lease and the receipt the slave signed (the
    one its client would bring to ``close``)."""

    lease: int
    receipt: bytes


class Committed(Request, tag="committed"):
    """Writes this slave has just committed (fsynced and published) whose clients wait,
    on their data connection, for the master to record them.

    Recorded as the clients' own ``close`` would record them, one outcome each
    (:class:`CommittedReply`), so that creating a small file costs its client one
    request to the master (``open``) instead of two. The slave sends the writes
    that committed while its previous report was on its way in one report: the
    master's records of a burst of creates are made together, as the slave's
    flushes are (see ``slave/storage.py``). A HiRELIABLE write is closed by its
    client (the chain's missing replicas may have to be made first).
    """

    writes: list[CommittedWrite]

    replies = (CommittedReply,)
    long_running = True  # a HiRELIABLE write's missing copies are made before its outcome


# --- connection states ------------------------------------------------------------------

GREETINGS = Vocabulary("the greetings", Login, Register, Join)
CLIENT_REQUESTS = Vocabulary(
    "a client's requests",
    Logout,
    Ping,
    Stat,
    Ls,
    Mkdir,
    Rm,
    Move,
    Copy,
    SetTime,
    Open,
    Close,
    Abort,
    Sysinfo,
    Fsck,
    Shutdown,
    ReportBadReplica,
    Replicate,
    Decommission,
    Adopt,
    Quota,
    CacheRelease,
)
#: What the master sends a client unasked, between or before replies.
PUSHES = Vocabulary("the master's pushes", Invalidate)
SLAVE_REPORTS = Vocabulary(
    "a slave's reports", Heartbeat, Inventory, Quarantined, BadSource, Committed
)


_ANSWERS: dict[type[Request], Vocabulary] = {}


def answers_to(request_type: type[Request]) -> Vocabulary:
    """What a client may read after sending ``request_type`` to the master: its replies
    (:func:`~.messages.replies_to`) or a push (:data:`PUSHES`) that comes first."""
    vocabulary = _ANSWERS.get(request_type)
    if vocabulary is None:
        replies = replies_to(request_type)
        vocabulary = _ANSWERS[request_type] = Vocabulary(
            f"{replies.name} or a push", *replies.types, *PUSHES.types
        )
    return vocabulary


def check_version(version: int) -> None:
    """Refuse a peer speaking another protocol version, saying which side to upgrade."""
    if version != PROTOCOL_VERSION:
        raise NotSupportedError(
            f"protocol version {version} is not spoken here (this master speaks version "
            f"{PROTOCOL_VERSION}): run the same Sector release on every machine"
        )


def refusal(exc: InvalidMessage) -> Error:
    """The last reply to an unidentified peer whose first frame is not a valid greeting.

    A greeting of another protocol version gets E_SUPPORT saying so (its fields
    may not even decode: the version is read from the raw frame), a malformed
    greeting E_INVALID, and anything else E_SECURITY.
    """
    if exc.expected is None:
        return Error(E_SECURITY, "log in (or register) first")
    raw = exc.raw
    version = raw[1] if isinstance(raw, list) and len(raw) > 1 else None
    if isinstance(version, int) and not isinstance(version, bool):
        try:
            check_version(version)
        except NotSupportedError as unsupported:
            return Error.of(unsupported)
    return Error(E_INVALID, exc.detail)
