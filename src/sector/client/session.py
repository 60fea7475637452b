"""The blocking client: one TLS connection to the master, pooled data connections.

:class:`Client` is the richer API the PySector module functions are built on.
Its methods raise :mod:`sector.errors` exceptions (which also subclass the
matching built-ins), are safe to call from several threads, and survive a
master restart: a broken master connection is re-dialled and the session
logged in again before the call is retried once.
"""

from __future__ import annotations

import codecs
import dataclasses
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

import msgspec

from .. import certs
from ..config import parse_address, sector_home
from ..errors import (
    E_INITCTX,
    E_NOCERT,
    E_SECURITY,
    InvalidError,
    SectorConnectionError,
    SectorError,
    SectorIsADirectoryError,
    SectorLocalFileError,
    SecurityError,
)
from ..protocol import checksum
from ..protocol import master as wire
from ..protocol.framing import ProtocolError, encode
from ..protocol.messages import (
    PROTOCOL_VERSION,
    SECURE,
    TRUNC,
    WRITE,
    Error,
    Reply,
    Request,
    Vocabulary,
    Working,
)
from ..protocol.paths import InvalidPath, components, has_wildcard, join, matches, normalize
from ..transport import (
    FrameReader,
    certificate_der,
    check_master,
    client_tls_context,
    close_quietly,
    send_message,
    still_open,
)
from . import batch
from .cache import AttributeCache
from .file import SectorFile, SectorTextFile
from .leases import LeaseKeeper
from .modes import parse_mode

#: The mode strings that give a binary file (for the type checker; any valid one works).
BinaryMode = Literal["rb", "wb", "ab", "xb", "rb+", "wb+", "ab+", "xb+", "r+b", "w+b", "a+b", "x+b"]

CONNECT_TIMEOUT = 5.0
#: Seconds the master may stay silent before a call fails (``MASTER_TIMEOUT`` in
#: client.conf). Silent only: while it works on a long request (a copy waiting for
#: its slave) it says so every second, so no request of any length is cut off.
MASTER_TIMEOUT = 30.0
#: A data connection waits this long for a slave while writing (reads: DATA_TIMEOUT).
CALL_TIMEOUT = 600.0
#: Seconds a slave may send nothing while we read before the read moves to another
#: replica (``DATA_TIMEOUT`` in client.conf, ``SECTOR_DATA_TIMEOUT`` in the environment).
#: A slave that is merely busy answers well within it; one that is stopped or cut off
#: never does, and a read should not wait for it the way it waits for ``copy``.
DATA_TIMEOUT = 30.0
#: Requests a batch (:meth:`Client.call_many`) keeps unanswered on the master connection.
#: The window is refilled when half answered. Measured (one client, ``stat_many`` of 2,000
#: files, 2 shared cores): depth 1: 13k stat/s, 16: 24k, 32: 36k, 64: 37k, 128: 37k; the
#: master reads at most 256 ahead of its answers anyway (MAX_QUEUED).
PIPELINE_DEPTH = 64

T = TypeVar("T")
R = TypeVar("R")


class Stat(msgspec.Struct, gc=False):
    """What ``stat`` and ``ls`` return: PySector's fields first, then ours.

    A mutable ``msgspec`` Struct rather than a dataclass, kept out of the cycle
    collector (``gc=False``: it holds no references back to itself). A listing
    makes one per entry, and as tracked dataclasses they set off collections
    of the whole heap: one client listing 2,000 entries ran at ~0.7 M entries/s
    with the collector on and 1.7 M/s with it off. Convert one to a dict with
    ``msgspec.structs.asdict``, copy it with ``msgspec.structs.replace``.
    """

    name: str
    isdir: bool
    timestamp: float
    size: int
    version: int = 0
    checksum: str = ""
    slaves: list[str] = msgspec.field(default_factory=list)
    #: When it was created (a file: its first commit); 0.0 when the master did not record it.
    created: float = 0.0

    @classmethod
    def from_entry(cls, entry: wire.Entry) -> Stat:
        """The public view of a directory entry the master sent (already type-checked)."""
        return cls(
            entry.name,
            entry.isdir,
            entry.timestamp,
            entry.size,
            entry.version,
            entry.checksum,
            entry.slaves,
            entry.created,
        )

    @classmethod
    def listed(cls, listing: wire.LsReply) -> list[Stat]:
        """The public view of a listing the master sent (in columns: see ``LsReply``).

        Raises SectorConnectionError if its columns differ in length (the frames are
        intact: the connection stays usable).
        """
        if not listing.is_even():
            raise SectorConnectionError("the master sent a listing with columns of unequal length")
        # Stat's fields in its order, straight from the columns; iter(list, None) makes
        # each entry its own empty ``slaves`` (ls leaves them out; they are mutable)
        return list(
            map(
                cls,
                listing.names,
                listing.isdir,
                listing.timestamps,
                listing.sizes,
                listing.versions,
                listing.checksums,
                iter(list, None),
                listing.created,
            )
        )


def default_cert() -> Path:
    return sector_home() / "conf" / "master_node.cert"


class Client:
    """A logged-in session with one Sector master.

    >>> with Client("localhost", 6000) as c:           # doctest: +SKIP
    ...     c.login("test", "xxx", "~/.sector/conf/master_node.cert")
    ...     c.upload("notes.txt", "/docs/notes.txt")
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 6000,
        timeout: float = MASTER_TIMEOUT,
        *,
        data_timeout: float | None = None,
        cache: bool = False,
    ):
        """``timeout``: seconds the master may stay silent before a call fails
        (:data:`MASTER_TIMEOUT`, 30). ``data_timeout``: seconds a read waits for a
        silent slave before trying another replica; by default
        ``$SECTOR_DATA_TIMEOUT``, else :data:`DATA_TIMEOUT` (30).

        ``cache``: answer :meth:`stat` (and ``exists``, ``locate``) from memory
        while the master's lease on the earlier answer lasts (about a second).
        Never stale: the master recalls the lease before it acknowledges any
        change to that entry to anyone; the price is that such a change waits
        until this client lets go, or its lease ends when it is busy elsewhere
        (see :mod:`sector.client.cache`)."""
        if not timeout > 0:
            raise InvalidError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self.host, self.port = host, port
        #: Seconds of silence from the master after which a call fails with
        #: SectorConnectionError (and the connection is dialled afresh next time).
        self.timeout = float(timeout)
        self.data_timeout = (
            data_timeout
            if data_timeout is not None
            else data_timeout_from(os.environ.get("SECTOR_DATA_TIMEOUT"))
        )
        self._lock = threading.RLock()
        self._sock: ssl.SSLSocket | None = None
        self._reader: FrameReader | None = None
        self._credentials: tuple[str, str, Path] | None = None
        #: idle data connections by (host, port, over TLS)
        self._pool: dict[tuple[str, int, bool], list[socket.socket]] = {}
        self._pool_lock = threading.Lock()
        self.user: str | None = None
        #: What the logged-in user may read and write (``rights.can_write(path)``), as the
        #: master told us at login; it checks every request with the same rules.
        self.rights = wire.Rights()
        #: Pings the master while files are open for writing, so that their leases
        #: outlive CLIENT_TIMEOUT as long as this client does (see leases.py).
        self.leases = LeaseKeeper(lambda: self.call(wire.Ping()))
        #: The leased ``stat`` answers, when asked for (``cache=True``); else None.
        self.cache = AttributeCache() if cache else None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def login(self, user: str, password: str, cert: str | os.PathLike | None = None) -> None:
        """Connect over TLS, check the master against ``cert``, and authenticate.

        Raises SecurityError (E_NOCERT, E_SECURITY, E_ACCOUNT, E_PASSWORD,
        E_ACL) or SectorConnectionError when the master cannot be reached.
        """
        cert_path = Path(cert).expanduser() if cert else default_cert()
        if not cert_path.is_file():
            raise SecurityError(f"certificate {cert_path} not found", code=E_NOCERT)
        with self._lock:
            self._disconnect()
            self._credentials = (user, password, cert_path)
            self._connect()

    def _connect(self) -> None:
        assert self._credentials is not None
        user, password, cert_path = self._credentials
        context, master_der = master_trust(cert_path)
        try:
            raw = socket.create_connection(
                (self.host, self.port), timeout=min(CONNECT_TIMEOUT, self.timeout)
            )
        except OSError as exc:
            raise SectorConnectionError(
                f"cannot reach the master at {self.host}:{self.port}: {exc}"
            ) from None
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = context.wrap_socket(raw, server_hostname=self.host)
        except ssl.SSLCertVerificationError as exc:
            raw.close()
            raise untrusted_master(f"{self.host}:{self.port}", cert_path, exc) from None
        except (ssl.SSLError, OSError) as exc:
            raw.close()
            raise SectorConnectionError(f"TLS handshake with the master failed: {exc}") from None
        try:
            where = f"{self.host}:{self.port}"
            verify_master(sock.getpeercert(binary_form=True), master_der, where, cert_path)
        except SecurityError:
            sock.close()
            raise
        sock.settimeout(self.timeout)
        self._sock = sock
        self._reader = FrameReader(sock)
        try:
            reply = self._exchange(wire.Login(PROTOCOL_VERSION, user, password))
        except SectorError:
            self._disconnect()
            raise
        if isinstance(reply, Error):
            self._disconnect()
            raise reply.exception()
        self.user, self.rights = user, reply.rights
        self.leases.set_timeout(reply.lease_timeout)

    def logout(self) -> None:
        """End the session and its master connection; never raises."""
        with self._lock:
            if self._sock is not None:
                try:
                    self._exchange(wire.Logout())
                except SectorError:
                    pass
            self._disconnect()
            self._credentials = None
            self.user, self.rights = None, wire.Rights()
            self.leases.stop()

    def close(self) -> None:
        """Log out and drop every connection; never raises."""
        self.logout()
        with self._pool_lock:
            for sockets in self._pool.values():
                for sock in sockets:
                    sock.close()
            self._pool.clear()

    def _disconnect(self) -> None:
        if self.cache is not None:
            self.cache.clear()  # its leases belonged to this session; recalls to it are lost
        if self._sock is not None:
            close_quietly(self._sock)
            self._sock = None

    def _exchange(self, request: Request) -> Any:
        """Send ``request``, return the master's reply: one it may send, or an Error."""
        assert self._sock is not None
        try:
            send_message(self._sock, request)
            return self._next_reply(wire.answers_to(type(request)))
        except (OSError, ProtocolError) as exc:
            raise self._broken(exc) from None

    def _next_reply(self, vocabulary: Vocabulary) -> Any:
        """The next reply from the master, decoded with ``vocabulary`` (its request's
        :func:`~sector.protocol.master.answers_to`): the one place replies are read.

        ``Working`` frames (a long request still being worked on) are skipped:
        the timeout counts silence, each frame starts it again. Pushes (cache
        recalls) that come before the reply are dealt with on the way.
        """
        assert self._reader is not None
        while True:
            reply = vocabulary.decode(self._reader.read())
            if isinstance(reply, wire.Invalidate):
                self._recalled(reply)
            elif not isinstance(reply, Working):
                return reply

    def _drain(self) -> None:
        """Deal with the pushes that arrived while we read nothing, without waiting.

        Not what keeps the cache right - a change is acknowledged only once we
        let go or our lease is over, and ours ends first - but what lets a busy
        client let go at once, instead of holding the change up until its lease
        ends. A broken connection is dropped, with the cache, for the next call.
        """
        reader = self._reader
        if self._sock is None or reader is None:
            return
        try:
            while (body := reader.read_arrived()) is not None:
                self._recalled(wire.PUSHES.decode(body))
        except (OSError, ProtocolError) as exc:
            self._broken(exc)

    def _recalled(self, push: wire.Invalidate) -> None:
        """The master recalls cached answers: forget them, then say so (no reply comes)."""
        if self.cache is not None:
            self.cache.forget(push.paths)
        assert self._sock is not None
        send_message(self._sock, wire.CacheRelease(push.seq))

    def _broken(self, exc: OSError | ProtocolError) -> SectorConnectionError:
        """Drop the master connection after ``exc``; the error to raise for it."""
        self._disconnect()
        if isinstance(exc, TimeoutError):
            return _Silent(
                f"the master at {self.host}:{self.port} said nothing for {self.timeout:g} s "
                "(MASTER_TIMEOUT in client.conf)"
            )
        return SectorConnectionError(f"connection to the master broke: {exc}")

    def call(self, request: Request) -> Any:
        """Send one request (a message of :mod:`sector.protocol.master`) and return its reply.

        A failure comes back as the exception the master's error reply stands
        for. If the connection broke, it is dialled again, logged in, and the
        request sent once more (unless it cannot survive a new session).
        """
        if not isinstance(request, Request):
            raise TypeError(
                "call() takes a request message, e.g. "
                "call(sector.protocol.master.Stat(path='/')), not "
                f"{type(request).__name__}"
            )
        with self._lock:
            if self._credentials is None:
                raise SecurityError("not logged in: call login() first")
            for attempt in (1, 2):
                try:
                    if self._sock is None:
                        self._connect()
                    reply: Reply = self._exchange(request)
                    break
                except SectorConnectionError as exc:
                    # a silent master would most likely stay silent: fail now, in bounded time
                    if attempt == 2 or not request.survives_reconnect or isinstance(exc, _Silent):
                        raise
        if isinstance(reply, Error):
            raise reply.exception()
        return reply

    def call_many(self, requests: Iterable[Request]) -> list[Any]:
        """Send many requests at once and return, in order, each one's reply or the
        exception its error reply stands for (raised for none: compare
        ``asyncio.gather(..., return_exceptions=True)``).

        The requests are pipelined: up to :data:`PIPELINE_DEPTH` travel to the
        master before the first reply is read, so a batch costs about one round
        trip per window instead of one per request. The master still handles
        them one by one, in order, each on its own (one failing stops none of
        the others), exactly as the same calls made one after another would.

        If the connection breaks, the replies already read are kept and the
        rest of the batch is sent again once on a fresh session (as :meth:`call`
        retries); a request the broken connection may have carried out without
        answering gets its second outcome (E_NOEXIST for an ``rm`` done twice).
        When that fails too, each unanswered slot holds the
        SectorConnectionError: those requests may or may not have been done.
        """
        batch = list(requests)
        for request in batch:
            if not isinstance(request, Request):
                raise TypeError(f"call_many() takes request messages, not {type(request).__name__}")
        results: list[Any] = []
        with self._lock:
            if self._credentials is None:
                raise SecurityError("not logged in: call login() first")
            for attempt in (1, 2):
                try:
                    if self._sock is None:
                        self._connect()
                    self._pipeline(batch, results)
                    break
                except SectorError as exc:
                    pending = batch[len(results) :]
                    if (
                        attempt == 2
                        or not isinstance(exc, SectorConnectionError)
                        or isinstance(exc, _Silent)
                        or not all(request.survives_reconnect for request in pending)
                    ):
                        results.extend(exc for _ in pending)
                        break
        return results

    def _pipeline(self, batch: list[Request], results: list[Any]) -> None:
        """Send ``batch[len(results):]`` and read the replies into ``results``, keeping
        at most :data:`PIPELINE_DEPTH` requests unanswered.

        The bound is what keeps this simple and safe on a blocking socket: the
        requests in flight (a path or two each) always fit the socket buffers,
        so a send never waits for a master that is itself waiting for us to
        read its replies.
        """
        assert self._sock is not None
        sent = len(results)
        try:
            while len(results) < len(batch):
                if sent < len(batch) and sent - len(results) <= PIPELINE_DEPTH // 2:
                    window = batch[sent : len(results) + PIPELINE_DEPTH]
                    self._sock.sendall(b"".join(map(encode, window)))
                    sent += len(window)
                reply = self._next_reply(wire.answers_to(type(batch[len(results)])))
                results.append(reply.exception() if isinstance(reply, Error) else reply)
        except (OSError, ProtocolError) as exc:
            raise self._broken(exc) from None

    def _batch(
        self,
        items: Iterable[T],
        request_for: Callable[[T], Request],
        result_of: Callable[[Any], R],
    ) -> list[R | SectorError]:
        """One pipelined batch: ``request_for(item)`` per item (an item it refuses, such
        as an invalid path, gets that error and is not sent), each reply made a result."""
        items = list(items)
        refused: dict[int, SectorError] = {}
        requests: list[Request] = []
        for index, item in enumerate(items):
            try:
                requests.append(request_for(item))
            except InvalidError as exc:
                refused[index] = exc
        replies = iter(self.call_many(requests))
        outcomes: list[R | SectorError] = []
        for index in range(len(items)):
            reply = refused.get(index) or next(replies)
            outcomes.append(reply if isinstance(reply, SectorError) else result_of(reply))
        return outcomes

    def stat_many(self, paths: Iterable[str]) -> list[Stat | SectorError]:
        """:meth:`stat` of each path, pipelined (see :meth:`call_many`): in order, each
        path's :class:`Stat` or its error (FileNotFoundError ...), raised for none."""
        return self._batch(paths, lambda path: wire.Stat(_normal(path)), _stat_of_reply)

    def exists_many(self, paths: Iterable[str]) -> list[bool | SectorError]:
        """:meth:`exists` of each path, pipelined: True, False, or the error that left
        it unknown (PermissionError, SectorConnectionError ...), in order."""
        return [_existence(found) for found in self.stat_many(paths)]

    def ls_many(self, paths: Iterable[str]) -> list[list[Stat] | SectorError]:
        """:meth:`ls` of each directory, pipelined: its entries or its error, in order."""
        return self._batch(paths, lambda path: wire.Ls(_normal(path)), Stat.listed)

    def mkdir_many(self, paths: Iterable[str]) -> list[SectorError | None]:
        """:meth:`mkdir` of each path, pipelined and in order: None where the directory
        was made, else its error (FileExistsError ...); one failing stops no other."""
        return self._batch(paths, lambda path: wire.Mkdir(_normal(path)), _nothing)

    def rm_many(self, paths: Iterable[str], recursive: bool = True) -> list[SectorError | None]:
        """:meth:`rm` of each path, pipelined and in order: None where it was removed,
        else its error (FileNotFoundError, OSError E_NOEMPTY ...)."""
        return self._batch(paths, lambda path: wire.Rm(_normal(path), recursive), _nothing)

    def move_many(
        self, moves: Iterable[tuple[str, str]], *, overwrite: bool = False
    ) -> list[SectorError | None]:
        """:meth:`move` of each ``(src, dst)`` pair, pipelined and in order: None where
        it was renamed, else its error. Each move is its own transaction, so a
        later pair may move what an earlier one put in place."""
        return self._batch(
            moves, lambda pair: wire.Move(_normal(pair[0]), _normal(pair[1]), overwrite), _nothing
        )

    def write_many(
        self,
        files: Iterable[tuple[str, bytes | bytearray | memoryview]],
        *,
        exclusive: bool = False,
    ) -> list[Stat | SectorError]:
        """Write many small files whole, each ``(path, data)`` replacing (or creating)
        its file; in order, each file's :class:`Stat` once committed, or its error.

        Each file keeps the guarantees of a file written and closed alone: on
        the slave's disk and visible to everyone, whole, once its Stat is
        returned; a file that fails leaves its previous version in place and
        stops none of the others. The requests travel pipelined - the opens
        together, then each slave's bytes and commits on one connection (the
        slave has the master record each commit, so no close follows, except
        for HiRELIABLE writes) - so a batch costs a few round trips rather than
        two or three per file. With ``exclusive`` an existing file is FileExistsError.
        """
        files = list(files)
        create: wire.Create = "exclusive" if exclusive else "allow"
        grants = self._batch(
            files, lambda item: wire.Open(_normal(item[0]), WRITE | TRUNC, create), _same
        )
        outcomes: list[Stat | SectorError] = []
        self.leases.opened()  # the leases live while the bytes travel (see leases.py)
        try:
            writing = [
                (_normal(path), grant, data)
                for (path, data), grant in zip(files, grants, strict=True)
                if isinstance(grant, wire.WriteGrant)
            ]
            receipts = iter(batch.store(self, writing, PIPELINE_DEPTH))
            committed: list[tuple[int, wire.WriteGrant, Any]] = []
            failed: list[Request] = []
            for (path, _), grant in zip(files, grants, strict=True):
                if isinstance(grant, SectorError):
                    outcomes.append(grant)
                    continue
                receipt = next(receipts)
                if isinstance(receipt, SectorError):
                    outcomes.append(receipt)
                    failed.append(wire.Abort(grant.lease))  # the old version stays
                    continue
                closed = wire.recorded(receipt)  # the slave had the master record it
                if isinstance(closed, Error):
                    outcomes.append(closed.exception(path))
                    continue
                if closed is not None:
                    outcomes.append(Stat.from_entry(closed.entry))
                    continue
                committed.append((len(outcomes), grant, receipt))
                outcomes.append(receipt)  # replaced by the Stat of its close, below
            closes = self.call_many(
                [
                    wire.Close(grant.lease, receipt.receipt, receipt.more)
                    for _, grant, receipt in committed
                ]
                + failed
            )
            for (slot, _, _), closed in zip(committed, closes[: len(committed)], strict=True):
                outcomes[slot] = (
                    closed if isinstance(closed, SectorError) else Stat.from_entry(closed.entry)
                )
        finally:
            self.leases.closed()
        return outcomes

    def read_many(self, paths: Iterable[str]) -> list[bytes | SectorError]:
        """Read many small files whole: in order, each one's bytes or its error.

        Every byte is checked against its block sums, as a file read alone is.
        The opens travel pipelined and each slave sends its files on one
        connection; a file its first replica cannot give is read again the
        long way (:meth:`open`), which fails over to the other replicas.
        """
        paths = list(paths)
        grants = self._batch(paths, lambda path: wire.Open(_normal(path)), _same)
        readable = [grant for grant in grants if not isinstance(grant, SectorError)]
        fetched = iter(batch.fetch(self, readable, PIPELINE_DEPTH))
        outcomes: list[bytes | SectorError] = []
        for path, grant in zip(paths, grants, strict=True):
            if isinstance(grant, SectorError):
                outcomes.append(grant)
                continue
            data = next(fetched)
            if data is None:
                try:
                    with self.open(path) as remote:
                        data = remote.read()
                except SectorError as exc:
                    data = exc
            outcomes.append(data)
        return outcomes

    def stat(self, path: str) -> Stat:
        """A file's or directory's :class:`Stat`, with the slaves holding a file.

        With ``cache=True`` (see :class:`Client`) a leased earlier answer is
        given while it lasts; any change acknowledged to anyone is seen at once.
        Raises FileNotFoundError (E_NOEXIST), PermissionError (E_PERMISSION).
        """
        path = _normal(path)
        cache = self.cache
        if cache is None:
            return Stat.from_entry(self.call(wire.Stat(path)).entry)
        with self._lock:
            self._drain()
            cached = cache.get(path)
            if cached is not None:
                return cached
            sent = cache.clock.monotonic()
            reply = self.call(wire.Stat(path, cache=True))
            cache.put(path, Stat.from_entry(reply.entry), sent, reply.lease)
            return Stat.from_entry(reply.entry)

    def ls(self, path: str = "/") -> list[Stat]:
        """A directory's entries, sorted by name (a file lists as itself).

        Raises FileNotFoundError (E_NOEXIST), PermissionError (E_PERMISSION).
        """
        return Stat.listed(self.call(wire.Ls(_normal(path))))

    def locate(self, path: str) -> list[tuple[str, int]]:
        """The slaves (host, port) holding the current version of a file.

        Empty when no live slave holds it. Raises FileNotFoundError when the
        path does not exist and IsADirectoryError for a directory.
        """
        entry = self.stat(path)
        if entry.isdir:
            raise SectorIsADirectoryError("is a directory: only files have locations", path)
        return [parse_address(address) for address in entry.slaves]

    def exists(self, path: str) -> bool:
        """True if something is at ``path``; raises only for other errors (E_CONNECTION ...)."""
        try:
            self.stat(path)
        except FileNotFoundError:
            return False
        return True

    def mkdir(self, path: str) -> None:
        """Create a directory and any missing parents; FileExistsError (E_EXIST) if it is there."""
        self.call(wire.Mkdir(_normal(path)))

    def rm(self, path: str, recursive: bool = True) -> None:
        """Remove a file or directory (a tree in one request).

        Raises FileNotFoundError (E_NOEXIST); without ``recursive`` a full
        directory is refused with E_NOEMPTY.
        """
        self.call(wire.Rm(_normal(path), recursive))

    def move(self, src: str, dst: str, *, overwrite: bool = False) -> None:
        """Rename a file or directory: one metadata change, however big the tree.

        Raises FileExistsError (E_EXIST) when ``dst`` exists, unless
        ``overwrite``: then ``dst`` is replaced as POSIX ``rename(2)`` replaces,
        in one transaction at the master (other clients see the old ``dst`` or
        the new one, never neither), and the replaced file's bytes are deleted.
        A file replaces a file and a directory an empty directory; otherwise
        IsADirectoryError, NotADirectoryError, or OSError (E_NOEMPTY) for a
        full directory. BlockingIOError (E_BUSY) when ``dst`` is being written.
        """
        self.call(wire.Move(_normal(src), _normal(dst), overwrite))

    def copy(self, src: str, dst: str, *, overwrite: bool = False) -> None:
        """Copy a file inside Sector; the bytes are copied by the slave, not through us.

        Raises FileExistsError (E_EXIST) when ``dst`` exists, unless
        ``overwrite`` and ``dst`` is a file: then the copy replaces it in the
        transaction that records the copy, so ``dst`` is never missing.
        IsADirectoryError when ``src`` or ``dst`` is a directory, BlockingIOError
        (E_BUSY) when ``dst`` is being written.
        """
        self.call(wire.Copy(_normal(src), _normal(dst), overwrite))

    def set_mtime(self, path: str, mtime: float) -> None:
        """Set a file's or directory's modification time (seconds since the epoch).

        As ``os.utime`` does; a file's next commit sets it again, to the commit's
        time. Raises FileNotFoundError, PermissionError (E_PERMISSION: no write
        right there), ValueError (E_INVALID) for a time that is not finite.
        """
        self.call(wire.SetTime(_normal(path), float(mtime)))

    def sysinfo(self) -> dict[str, Any]:
        """The master's view: ``{"master": totals, "slaves": [one dict per slave],
        "capacity": the live slaves' storage, each file system counted once}``.

        ``master["health"]`` says how safe the files are: ``under_replicated``
        and ``lost`` files, replicas ``copying`` and ``queued``, slaves
        ``draining``, and ``safe_mode`` (why nothing is deleted, if so).

        Raises SectorConnectionError when the master cannot be reached.
        """
        reply = self.call(wire.Sysinfo())
        master = msgspec.structs.asdict(reply.master)
        master["health"] = msgspec.structs.asdict(reply.master.health)
        return {
            "master": master,
            "slaves": [msgspec.structs.asdict(slave) for slave in reply.slaves],
            "capacity": msgspec.structs.asdict(reply.capacity),
        }

    def quota(self) -> dict[str, Any]:
        """What the logged-in user owns against its quota: ``{"user", "used", "files",
        "quota"}`` (bytes; ``quota`` 0: none). A file is owned by the user who wrote
        its current version; writing past the quota fails with E_NODISK."""
        return msgspec.structs.asdict(self.call(wire.Quota()))

    @overload
    def open(
        self, path: str, mode: BinaryMode | int = "rb", *, secure: bool = False
    ) -> SectorFile: ...

    @overload
    def open(
        self,
        path: str,
        mode: str,
        *,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
        secure: bool = False,
    ) -> SectorFile | SectorTextFile: ...

    def open(
        self,
        path: str,
        mode: str | int = "rb",
        *,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
        secure: bool = False,
    ) -> SectorFile | SectorTextFile:
        """Open a Sector file as a Python file object, as :func:`open` would.

        ``mode`` is Python's (``"rb"``, ``"wb"``, ``"ab"``, ``"rb+"``, ``"xb"``,
        and the text modes ``"r"``, ``"w"``, ``"a"``, ``"x"`` with ``+``) or
        Sector's mode bits (``READ | WRITE`` ...; see :mod:`sector.client.modes`).
        A binary mode gives a :class:`SectorFile`; a text mode wraps it in a
        :class:`SectorTextFile` (``io.TextIOWrapper``, UTF-8 unless
        ``encoding`` says otherwise). A written file becomes visible, whole,
        when it is closed. With ``secure`` (SF_MODE.SECURE), or when the cluster
        sets DATA_ENCRYPTION, the file's bytes travel over TLS.

        Raises FileNotFoundError (reading, or ``r+``, a missing file),
        FileExistsError (``x``: the file exists or is being created),
        BlockingIOError (E_BUSY: someone is writing it), PermissionError,
        IsADirectoryError, ValueError (a bad mode or newline), LookupError (an
        unknown encoding), ResourceError (no live slave).
        """
        opened = parse_mode(mode)
        if secure:
            opened = dataclasses.replace(opened, bits=opened.bits | SECURE)
        if not opened.text and (encoding, errors, newline) != (None, None, None):
            raise InvalidError("a binary mode takes no encoding, errors or newline", path)
        if opened.text:
            codecs.lookup(encoding or "utf-8")  # LookupError, as open() raises, before any lease
            if newline not in (None, "", "\n", "\r", "\r\n"):
                raise InvalidError(f"illegal newline value: {newline!r}", path)
        path = _normal(path)
        grant = self.call(wire.Open(path, opened.bits, opened.create))
        binary = SectorFile(self, path, opened, grant)
        if not opened.text:
            return binary
        try:
            text = SectorTextFile(binary, encoding or "utf-8", errors, newline)
        except BaseException:
            binary.abort()
            raise
        text.mode = mode  # type: ignore[misc] # as open() names its text files
        return text

    def upload(
        self,
        local: str | os.PathLike,
        remote: str,
        *,
        progress: Callable[[int], None] | None = None,
        verify: bool = False,
        exclusive: bool = False,
        secure: bool = False,
    ) -> Stat:
        """Copy a local file into Sector (replacing any file there), atomically.

        With ``exclusive`` an existing file (or one another client is creating)
        is FileExistsError instead, decided by the master when the upload starts.
        ``progress`` is called with each chunk's byte count as it is sent.
        With ``verify`` the local file is hashed again after the commit and
        compared with the checksum the slave computed over what it received;
        a mismatch (the file changed meanwhile, or bytes were damaged on the
        way) raises E_SECURITY. With ``secure`` the bytes travel over TLS
        (SF_MODE.SECURE).
        """
        local_path = Path(local)
        try:
            source = open(local_path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise SectorLocalFileError(
                f"cannot read {local_path}: {exc.strerror}", str(local_path)
            ) from None
        mode = "xb" if exclusive else "wb"
        with source, self.open(remote, mode, secure=secure) as remote_file:
            remote_file.write_from_file(source, progress)
        committed = remote_file.committed
        assert committed is not None
        if verify and checksum.of_file(local_path) != committed.checksum:
            raise SecurityError(
                f"stored checksum does not match the local file {local_path}",
                remote_file.path,
            )
        return committed

    def download(
        self,
        remote: str,
        local: str | os.PathLike,
        *,
        resume: bool = False,
        progress: Callable[[int], None] | None = None,
        streams: int = 1,
        secure: bool = False,
    ) -> Stat:
        """Copy a Sector file to a local path, verified against its checksum.

        ``streams`` > 1 draws a large file from that many replicas at once
        (see :meth:`SectorFile.read_to_file`); with ``secure`` the bytes travel
        over TLS (SF_MODE.SECURE).

        The bytes land in a temporary file beside ``local`` that replaces it
        only once complete and verified, so a failed download never leaves a
        truncated file behind.

        With ``resume`` an interrupted download continues instead of starting
        over: from the temporary file an earlier attempt left (which is kept
        when this attempt fails too), else from ``local`` itself when it is a
        shorter prefix. The whole result is still checked against the stored
        checksum; if the old bytes turn out not to match, the file is fetched
        again from the start. ``progress`` is called with the count of each
        chunk that actually crosses the network.
        """
        local_path = Path(local)
        if local_path.is_dir():
            local_path = local_path / Path(remote).name
        temp = local_path.with_name(f".{local_path.name}.sector-part")
        try:
            with self.open(remote, secure=secure) as remote_file:
                offset = self._resume_offset(remote_file, local_path, temp) if resume else 0
                if offset is None:
                    return remote_file.stat()
                try:
                    target = open(temp, "r+b" if offset else "wb")  # noqa: SIM115 - closed below
                except OSError as exc:
                    raise SectorLocalFileError(
                        f"cannot write {local_path}: {exc.strerror}", str(local_path)
                    ) from None
                with target:
                    target.truncate(offset)
                    target.seek(offset)
                    remote_file.seek(offset)
                    remote_file.read_to_file(
                        target, verify=not offset, progress=progress, streams=streams
                    )
                if offset and checksum.of_file(temp) != remote_file.grant.checksum:
                    temp.unlink()
                    return self.download(
                        remote,
                        local_path,
                        resume=False,
                        progress=progress,
                        streams=streams,
                        secure=secure,
                    )
            os.replace(temp, local_path)
        except OSError as exc:
            if not resume:
                temp.unlink(missing_ok=True)
            if isinstance(exc, SectorError):
                raise
            raise SectorLocalFileError(
                f"cannot write {local_path}: {exc}", str(local_path)
            ) from None
        except BaseException:
            if not resume:
                temp.unlink(missing_ok=True)
            raise
        return remote_file.stat()

    @staticmethod
    def _resume_offset(remote_file: SectorFile, local: Path, temp: Path) -> int | None:
        """Where to continue: the partial file's length, or None when ``local`` is complete."""
        size, expected = remote_file.size, remote_file.grant.checksum
        for candidate in (temp, local):
            try:
                have = candidate.stat().st_size
            except OSError:
                continue
            if candidate == local:
                if have == size and checksum.of_file(local) == expected:
                    return None
                if have >= size:
                    return 0
                os.replace(local, temp)
            return have if have <= size else 0
        return 0

    def glob(self, pattern: str) -> list[str]:
        """Sector paths matching ``pattern`` (``*``, ``?``, ``[...]`` per name), sorted.

        A pattern without wildcards yields itself when it exists. Directories
        are listed only where a name holds a wildcard, so ``/logs/2024*/x``
        costs one ``ls`` of ``/logs`` and one ``stat`` per match. A missing
        directory matches nothing; other errors (E_PERMISSION, E_CONNECTION) raise.
        """
        # (path, known to be a directory?) for every candidate so far
        found: list[tuple[str, bool | None]] = [("/", True)]
        for name in components(_normal(pattern)):
            step: list[tuple[str, bool | None]] = []
            for parent, is_dir in found:
                if not has_wildcard(name):
                    step.append((join(parent, name), None))
                    continue
                if is_dir is None:
                    try:
                        is_dir = self.stat(parent).isdir
                    except FileNotFoundError:
                        continue
                if not is_dir:
                    continue
                step.extend(
                    (join(parent, entry.name), entry.isdir)
                    for entry in self.ls(parent)
                    if matches(entry.name, name)
                )
            found = step
        return sorted(path for path, known in found if known is not None or self.exists(path))

    def walk(self, top: str) -> Iterator[tuple[str, list[Stat], list[Stat]]]:
        """``os.walk`` for Sector: (directory, its subdirectories, its files), top down.

        Like ``os.walk``, removing names from the subdirectory list prunes the
        walk. A directory that disappears meanwhile is skipped; other errors
        (E_PERMISSION, E_CONNECTION) raise.
        """
        pending = [_normal(top)]
        while pending:
            path = pending.pop()
            try:
                entries = self.ls(path)
            except FileNotFoundError:
                continue
            dirs = [e for e in entries if e.isdir]
            files = [e for e in entries if not e.isdir]
            yield path, dirs, files
            pending.extend(join(path, d.name) for d in reversed(dirs))

    def fsck(self, path: str = "/", *, repair: bool = False) -> dict[str, Any]:
        """Have every slave re-read what it holds under ``path`` and check its checksums.

        Returns ``{"files", "replicas", "problems"}``; each problem names a
        ``path``, a ``slave`` (None when no live slave holds the file), a
        ``problem`` (``missing``, ``damaged``, ``unreachable`` or
        ``under-replicated``), a ``detail`` and whether it was ``repaired``.
        Damaged replicas are quarantined by their slaves and copied again
        from good ones in the background; with ``repair`` (administrators
        only) the copies are made before this returns. Raises
        FileNotFoundError or PermissionError for ``path`` itself.
        """
        reply = self.call(wire.Fsck(_normal(path), repair))
        return {
            "files": reply.files,
            "replicas": reply.replicas,
            "problems": [msgspec.structs.asdict(problem) for problem in reply.problems],
        }

    def set_replication(self, path: str, number: int, *, hireliable: bool | None = None) -> int:
        """Keep ``number`` replicas of ``path`` and everything under it; the file count.

        The setting stays on the path (it follows renames) and wins over
        replica.conf's rules for it; ``number`` 0 removes the path's own count.
        ``hireliable`` True makes writes there return only once every replica
        holds the new version (as the HiRELIABLE open mode does), False turns
        that off, None leaves the path without a setting of its own. More
        replicas than live slaves is not an error: the file is kept at as many
        as there are, and counted under-replicated. Raises PermissionError
        without write permission, FileNotFoundError.
        """
        return self.call(wire.Replicate(_normal(path), number, hireliable)).files

    def decommission(self, slave: str, *, cancel: bool = False) -> dict[str, Any]:
        """Drain a slave (by id or ``host:port``): copy all it holds elsewhere, after which
        its replicas no longer count; ``cancel`` stops that. Administrators only.

        Returns ``{"slave": id, "files": files it holds}``; ``sysinfo`` shows it
        ``draining`` until every one has its replicas elsewhere, then ``drained``.
        Raises PermissionError (E_PERMISSION) for other users, FileNotFoundError
        for an unknown slave.
        """
        reply = self.call(wire.Decommission(slave, cancel))
        return {"slave": reply.slave, "files": reply.files}

    def adopt(self, *, discard: bool = False) -> dict[str, Any]:
        """Take the master out of safe mode. Administrators only.

        By default what the slaves hold and the namespace does not know is added
        to it at the paths the slaves recorded (``/lost+found`` when none is
        known or it is taken); with ``discard`` it is given up and deleted.
        Returns ``{"files", "lost_found", "cluster"}``. Raises InvalidError when
        the master is not in safe mode.
        """
        return msgspec.structs.asdict(self.call(wire.Adopt(discard)))

    def shutdown(self, slave: str | None = None) -> list[str]:
        """Stop one slave (by id or ``host:port``), or the whole cluster; admin only.

        Returns the ids of the slaves stopped (and ``master`` for the whole
        cluster): the master answers before it stops itself. Raises
        PermissionError (E_PERMISSION) for other users, FileNotFoundError for an
        unknown slave.
        """
        return list(self.call(wire.Shutdown(slave)).stopped)

    def data_connection(self, address: tuple[str, int], secure: bool = False) -> socket.socket:
        """A connection to a slave, reused from the pool when one is idle; with ``secure``,
        over TLS (the grant says so: SF_MODE.SECURE, or the cluster's DATA_ENCRYPTION).

        A TLS connection accepts only a slave's certificate issued by the master whose
        certificate the session logged in with. Raises SectorConnectionError
        (E_CONNECTION) when the slave cannot be reached, SecurityError (E_SECURITY)
        when it is no member of the cluster.
        """
        address = (address[0], int(address[1]))
        with self._pool_lock:
            idle = self._pool.get((*address, secure))
            while idle:
                sock = idle.pop()
                if sock.fileno() >= 0 and still_open(sock):  # see release_connection
                    return sock
                sock.close()
        try:
            sock = socket.create_connection(address, timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            raise SectorConnectionError(
                f"cannot reach slave {address[0]}:{address[1]}: {exc}"
            ) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(CALL_TIMEOUT)
        return self._encrypted(sock, address) if secure else sock

    def _encrypted(self, sock: socket.socket, address: tuple[str, int]) -> ssl.SSLSocket:
        """``sock`` wrapped in TLS, the slave checked to be a member (not merely the holder
        of some certificate the master issued: a slave's, naming its role)."""
        if self._credentials is None:
            sock.close()
            raise SecurityError("not logged in: call login() first")
        try:
            tls = client_tls_context(self._credentials[2]).wrap_socket(sock)
            identity = certs.identity(tls.getpeercert())
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            raise SecurityError(
                f"slave {address[0]}:{address[1]} failed the TLS check: {exc}"
            ) from None
        if identity is None or identity.role != certs.ROLE_SLAVE:
            tls.close()
            raise SecurityError(f"{address[0]}:{address[1]} is not a slave of this cluster")
        return tls

    def release_connection(self, address: tuple[str, int], sock: socket.socket) -> None:
        """Give a data connection back to the pool (a closed one is dropped); never raises."""
        if sock.fileno() < 0:
            # A file object garbage-collected in a reference cycle can hand back its
            # socket while the collector finalizes (closes) that socket too, before
            # or after (PEP 442: any order): closed sockets are never handed out.
            return
        key = (address[0], int(address[1]), isinstance(sock, ssl.SSLSocket))
        with self._pool_lock:
            idle = self._pool.setdefault(key, [])
            if len(idle) < 8:
                idle.append(sock)
                return
        sock.close()


def master_trust(cert_path: Path) -> tuple[ssl.SSLContext, bytes]:
    """What a client trusts: the TLS context for the cluster of ``cert_path``, and the
    master's own certificate (DER) to tell the master from a slave the master certified.
    SecurityError (E_INITCTX) when the file is no usable certificate."""
    try:
        return client_tls_context(cert_path), certificate_der(cert_path)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise SecurityError(f"cannot use certificate {cert_path}: {exc}", code=E_INITCTX) from None


def untrusted_master(
    where: str, cert_path: Path, exc: ssl.SSLCertVerificationError
) -> SecurityError:
    """The error for a master whose TLS handshake failed the check against ``cert_path``."""
    return SecurityError(
        f"the master at {where} does not hold the certificate {cert_path}: {exc.verify_message}",
        code=E_SECURITY,
    )


def verify_master(peer_der: bytes | None, master_der: bytes, where: str, cert_path: Path) -> None:
    """SecurityError unless the peer showed the master's own certificate, not one it
    issued (a slave's: see certs.py)."""
    try:
        check_master(peer_der, master_der)
    except ssl.SSLCertVerificationError as exc:
        raise SecurityError(
            f"the peer at {where} is not the master of {cert_path}: {exc.verify_message}",
            code=E_SECURITY,
        ) from None


class _Silent(SectorConnectionError):
    """The master said nothing for the client's timeout (not worth an immediate retry)."""


def data_timeout_from(text: str | None) -> float:
    """The read timeout ``SECTOR_DATA_TIMEOUT`` gives (:data:`DATA_TIMEOUT` when unset)."""
    if not text:
        return DATA_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise InvalidError(f"SECTOR_DATA_TIMEOUT must be a positive number of seconds: {text!r}")
    return value


def _stat_of_reply(reply: wire.StatReply) -> Stat:
    return Stat.from_entry(reply.entry)


def _existence(found: Stat | SectorError) -> bool | SectorError:
    if isinstance(found, FileNotFoundError):
        return False
    return found if isinstance(found, SectorError) else True


def _same(reply: Any) -> Any:
    return reply


def _nothing(reply: Reply) -> None:
    return None


def _normal(path: str) -> str:
    try:
        return normalize(path)
    except InvalidPath as exc:
        raise InvalidError(str(exc), str(path)) from None


__all__ = ["Client", "Stat"]
