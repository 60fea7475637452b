"""SectorFile: one open Sector file as a Python binary file, read from or written to a slave.

It is an :class:`io.BufferedIOBase` (see :class:`SectorFile` for what that
allows); :mod:`.modes` turns Python's mode strings into Sector's mode bits.
Reading goes through :class:`~.reading.ReplicaReader`, the client's one read
path: every byte checked against its block sums before it is returned, and a
slave that fails, stalls or sends bad bytes left behind for the next replica
at the same offset. Read-ahead (whole blocks) makes many small ``read`` calls
cost few round trips. Writing streams to one slave without waiting for
replies; nothing becomes visible until :meth:`close`, which commits the new
version atomically (readers see the previous version until then, and a writer
that dies leaves it intact).

The conversation with the slave is :class:`~sector.protocol.data.DataSession`'s:
it makes every frame and checks every reply, and this module only moves the
bytes - the file's own bytes straight between the socket and the caller's
buffers (``recv_into``, ``sendfile``), never through the session.
"""

from __future__ import annotations

import errno
import fcntl
import io
import mmap
import os
import queue
import socket
import ssl
import stat
import sys
import threading
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from ..errors import (
    InvalidError,
    SectorConnectionError,
    SectorError,
    SectorLocalFileError,
    SecurityError,
    UnsupportedOperationError,
)
from ..protocol.checksum import align_down
from ..protocol.data import CommitReply, DataSession, OutOfTurn
from ..protocol.framing import ProtocolError
from ..protocol.master import Abort, Close, CloseReply, ReadGrant, WriteGrant, recorded
from ..protocol.messages import APPEND, Error
from ..transport import close_quietly, receive_reply, recv_exact_into
from .modes import OpenMode, parse_mode
from .reading import ReplicaReader, Sink

if TYPE_CHECKING:
    from .session import Client, Stat

#: Bytes fetched ahead of a small read (a whole number of checksum blocks).
READ_AHEAD = 1024 * 1024
#: Downloads smaller than this use one stream whatever was asked.
PARALLEL_MIN = 128 * 1024 * 1024
WRITE_BUFFER = 1024 * 1024
#: A put up to this size goes out in one ``sendall`` with its header (copying is cheaper).
SMALL_PUT = 64 * 1024
TRANSFER_BUFFER = 4 * 1024 * 1024
#: Buffers in rotation while downloading: one filling from the socket, the others
#: being written to the local file.
WRITE_BUFFERS = 3
#: Hand written bytes to the kernel's writeback every this many bytes.
WRITEBACK_STEP = 32 * 1024 * 1024
WRITEBACK_LOOKBACK = 3
#: O_DIRECT writes must start, and be sized, on this boundary (a page: safe everywhere).
DIRECT_ALIGN = 4096
#: Bytes a line of ``readline`` is searched for per look (one read-ahead block).
LINE_STEP = READ_AHEAD


class SectorFile(io.BufferedIOBase):
    """A Sector file opened with :meth:`Client.open`: a binary Python file object.

    It is an :class:`io.BufferedIOBase`, so it goes wherever Python expects a
    binary file: ``io.TextIOWrapper(f)``, ``pandas``, ``pyarrow``, ``shutil``,
    line iteration. It buffers itself (a read-ahead block for small reads, a
    write buffer for small writes), and large reads go straight from the slave
    into the result. ``seek`` takes Python's ``os.SEEK_SET``/``SEEK_CUR``/
    ``SEEK_END``; the ``sector`` module translates PySector's SF_POS at its
    boundary.

    Reading streams from the replica the master named and resumes on the next
    one if a slave fails. Writing streams to one slave; nothing becomes
    visible until :meth:`close` commits the new version atomically: readers
    see the previous version until then, and leaving a ``with`` block by an
    exception, :meth:`abort`, or dropping the file unclosed keeps it.

    ``mode`` is Python's name for how it was opened (``rb``, ``wb``, ``ab``,
    ``rb+`` ...), ``sector_mode`` Sector's bits (``READ`` 1, ``WRITE`` 2,
    ``RW`` 3, ``TRUNC`` 4, ``APPEND`` 8), ``name`` the Sector path.
    """

    def __init__(
        self,
        client: Client,
        path: str,
        mode: int | OpenMode,
        grant: ReadGrant | WriteGrant,
    ):
        super().__init__()
        opened = mode if isinstance(mode, OpenMode) else parse_mode(mode)
        self.client, self.path = client, path
        self.sector_mode: int = opened.bits
        self.mode: str = opened.name
        self._grant = grant
        self.size: int = grant.size
        self.position = 0
        self.committed: Stat | None = None
        self._buffer = bytearray()
        self._buffer_start = 0
        self._pending = bytearray()
        self._pending_start = 0
        self._writing = opened.writing
        self._readable = opened.readable
        self._append = opened.append
        self._sock: socket.socket | None = None  # the write session's connection
        self._data = DataSession()
        #: The one read path (checked blocks, fail-over): for files opened to read only;
        #: a file being written reads its own writes from its slave.
        self._reader: ReplicaReader | None = None
        if isinstance(grant, ReadGrant) and not self._writing:
            self._reader = ReplicaReader(client, path, grant, client.data_timeout)
        #: Committed, aborted or released: nothing is left to send (see flush).
        self._finished = False
        #: A write whose lease the client keeps alive (see client/leases.py).
        self._lease_kept = False
        try:
            if self._writing:
                if not isinstance(grant, WriteGrant):
                    raise SectorConnectionError(
                        "the master answered a write open with a read grant"
                    )
                self._connect(grant.slave)
                # the slave has the master record the commit (not a chain's: see close),
                # unless we cache attributes: the master may recall our own leases (on
                # this file, its directory) first, and only our close's reply, read on
                # the master connection, lets us release them at once instead of after
                # the lease (see sector.master.cache_leases)
                record = not grant.chain and client.cache is None
                self._send(self._data.begin_write(grant.token, grant.chain, record))
                client.leases.opened()  # its lease is kept while we live (until _finish)
                self._lease_kept = True
                if opened.bits & APPEND:
                    self.position = self.size
        except BaseException:
            self._abort_quietly()
            self._drop_connection()
            self._close_reader()
            self._finish()
            raise

    @property
    def grant(self) -> ReadGrant | WriteGrant:
        """What the master granted: for reading, renewed as tokens expire or replicas fail."""
        return self._reader.grant if self._reader is not None else self._grant

    def __enter__(self) -> SectorFile:
        self._check_open()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        """Close (committing a written file); after an exception, abort instead."""
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        """Dropped unclosed: a written file keeps its previous version, as if its writer died.

        (``io.IOBase`` would close, and so commit, whatever half a program wrote.)
        """
        try:
            if not self.closed:
                self.abort()  # for a file opened to read: its connection back to the pool
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"mode={self.mode!r}"
        return f"<SectorFile {self.path} {state}>"

    @property
    def name(self) -> str:
        """The Sector path the file was opened at; never fails."""
        return self.path

    def readable(self) -> bool:
        """True when opened for reading (any mode with READ, or no write bit); never fails."""
        return self._readable

    def writable(self) -> bool:
        """True when opened for writing (a new version is being written); never fails."""
        return self._writing

    def seekable(self) -> bool:
        """True: reads and writes may go anywhere in the file; never fails."""
        return True

    def tell(self) -> int:
        """The position, from the start of the file; ValueError (E_INVALID) when closed."""
        self._check_open()
        return self.position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position: from the start (``os.SEEK_SET``, 0), the position
        (``SEEK_CUR``, 1) or the end (``SEEK_END``, 2); returns the new position.

        Past the end is allowed (writing there leaves zeros between). Raises
        InvalidError (a ValueError, E_INVALID) for another ``whence``, a
        position before the start, or a closed file.
        """
        self._check_open()
        bases = {os.SEEK_SET: 0, os.SEEK_CUR: self.position, os.SEEK_END: self.size}
        base = bases.get(whence)
        if base is None:
            raise InvalidError(
                f"whence must be os.SEEK_SET, SEEK_CUR or SEEK_END (0, 1, 2), not {whence!r}",
                self.path,
            )
        if base + offset < 0:
            raise InvalidError("cannot seek before the start of the file", self.path)
        self.position = base + offset
        return self.position

    def eof(self) -> bool:
        """True at or past the end of the file (PySector's ``eof``); never fails."""
        return self.position >= self.size

    # -- reading ----------------------------------------------------------------------

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes from the position (all the rest if negative or None).

        Fewer only at the end of the file; b"" there. Small reads come from a
        read-ahead block; a read of a large range is one request to the slave,
        received straight into the bytes returned. Raises UnsupportedOperation
        (E_INVALID) if the file was not opened for reading, SectorConnectionError
        when no replica can be read.
        """
        self._check_readable()
        if self._writing:
            return self._read_own_writes(-1 if size is None else size)
        end = self.size if size is None or size < 0 else min(self.size, self.position + size)
        wanted = end - self.position
        if wanted <= 0:
            return b""
        if wanted >= READ_AHEAD and not self._in_buffer(self.position, wanted):
            data = self._fetch_bytes(self.position, wanted)
        else:
            data = bytes(self._buffered(self.position, wanted))
        self.position = end
        return data

    def read1(self, size: int = -1) -> bytes:
        """Like :meth:`read` (and failing as it does), but a negative ``size`` asks for
        one read-ahead block rather than the rest of the file."""
        return self.read(READ_AHEAD if size is None or size < 0 else size)

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` (any writable bytes-like object) from the position; the count.

        Fewer bytes only at the end of the file. A large buffer is filled
        straight from the slave, without an intermediate copy. Raises as
        :meth:`read` does.
        """
        self._check_readable()
        view = memoryview(buffer).cast("B")
        if self._writing:
            data = self._read_own_writes(len(view))
            view[: len(data)] = data
            return len(data)
        count = min(len(view), max(0, self.size - self.position))
        if not count:
            return 0
        if count >= READ_AHEAD and not self._in_buffer(self.position, count):
            self._fetch_into(self.position, view[:count])
        else:
            view[:count] = self._buffered(self.position, count)
        self.position += count
        return count

    def readinto1(self, buffer: Any) -> int:
        """The same as :meth:`readinto` (which never stops short of the end); raises as it."""
        return self.readinto(buffer)

    def readline(self, size: int | None = -1) -> bytes:
        """One line, up to and including ``b"\\n"`` (at most ``size`` bytes); b"" at the end.

        Searched for in the read-ahead block, so iterating over a file's lines
        costs one request per block, not one per line. Raises as :meth:`read` does.
        """
        self._check_readable()
        limit = sys.maxsize if size is None or size < 0 else size
        parts: list[bytes] = []
        while limit > 0:
            data, start, end = self._window(min(limit, LINE_STEP))
            if start == end:
                break
            newline = data.find(b"\n", start, end)
            stop = end if newline < 0 else newline + 1
            parts.append(bytes(memoryview(data)[start:stop]))
            self.position += stop - start
            limit -= stop - start
            if newline >= 0:
                break
        return b"".join(parts)

    def _window(self, length: int) -> tuple[bytes | bytearray, int, int]:
        """``(data, start, end)``: up to ``length`` bytes at the position, without moving it.

        What the read-ahead block holds from the position on, refilled only when
        the position is outside it; ``start == end`` at the end of the file.
        """
        if self._writing:
            position = self.position
            own = self._read_own_writes(length)
            self.position = position
            return own, 0, len(own)
        length = min(length, self.size - self.position)
        if length <= 0:
            return b"", 0, 0
        start = self.position - self._buffer_start
        if not 0 <= start < len(self._buffer):
            self._buffered(self.position, length)
            start = self.position - self._buffer_start
        return self._buffer, start, min(len(self._buffer), start + length)

    def _in_buffer(self, offset: int, length: int) -> bool:
        start = offset - self._buffer_start
        return start >= 0 and start + length <= len(self._buffer)

    def _buffered(self, offset: int, length: int) -> memoryview:
        """Bytes ``offset:offset+length`` from the read-ahead block, refilled if needed."""
        if not self._in_buffer(offset, length):
            # from the start of the checksum block the offset is in: whole blocks are
            # received straight into the buffer (see ReplicaReader.read_into)
            start = align_down(offset)
            block = bytearray(max(offset + length - start, min(READ_AHEAD, self.size - start)))
            self._fetch_into(start, memoryview(block))
            self._buffer, self._buffer_start = block, start
        start = offset - self._buffer_start
        return memoryview(self._buffer)[start : start + length]

    def _fetch_bytes(self, offset: int, length: int) -> bytes:
        """``length`` checked bytes from ``offset`` as one new object, received in place where
        the range allows (see :meth:`ReplicaReader.read_bytes`)."""
        return self._read_path().read_bytes(offset, length)

    def read_to_file(
        self,
        target: IO[bytes],
        verify: bool = True,
        progress: Callable[[int], None] | None = None,
        streams: int = 1,
    ) -> int:
        """Stream the rest of the file into ``target``, each block checked before it is written.

        With ``verify`` (and from the start of the file) the sums of what
        arrived must also add up to the file's stored checksum, which ties
        them to what the master recorded. ``progress`` is called with the byte
        count of each chunk as it lands, so a caller can draw a progress bar
        without wrapping the stream. With ``streams`` > 1, a regular file of at
        least :data:`PARALLEL_MIN` bytes is fetched from that many replicas at
        once (as many as there are). Raises SecurityError (E_SECURITY) on a
        checksum mismatch, SectorConnectionError or ResourceError when no
        replica can be read, SectorLocalFileError when ``target`` cannot be
        written.
        """
        self._check_open()
        start = self.position
        reader = self._read_path()
        streams = min(streams, len(reader.grant.replicas))
        if streams > 1 and self.size - start >= PARALLEL_MIN and _is_regular(target):
            digest = reader.stream_parallel(start, target.fileno(), streams, progress)
        else:
            with _FileWriter(target.fileno(), self.size - start) as writer:
                digest = reader.stream(start, writer, progress)
        self.position = self.size
        if verify and digest is not None and digest != self._read_grant().checksum:
            raise SecurityError("downloaded bytes do not match the stored checksum", self.path)
        return self.size - start

    def stream_to(self, sink: Sink) -> None:
        """Stream the rest of the file, from the position, into ``sink``.

        ``sink`` lends buffers (``buffer``) and takes them back filled and
        checked (``write``) or unused (``give_back``); see
        :class:`~.reading.Sink`. The bytes come in as few requests as the slave
        allows, another replica taking over where one fails, as in
        :meth:`read_to_file`. Whatever ``sink.write`` raises ends the stream
        and reaches the caller; the connection, left mid-stream, is dropped at
        :meth:`close`. Raises SectorConnectionError or ResourceError when no
        replica can be read.
        """
        self._check_open()
        self._read_path().stream(self.position, sink)
        self.position = self.size

    def _fetch_into(self, offset: int, view: memoryview) -> None:
        """Fill ``view`` with checked bytes from ``offset``, from any replica."""
        self._read_path().read_into(offset, view)

    def _read_path(self) -> ReplicaReader:
        if self._reader is None:
            raise UnsupportedOperationError("file was not opened for reading", self.path)
        return self._reader

    def _read_grant(self) -> ReadGrant:
        if not isinstance(self.grant, ReadGrant):
            raise InvalidError("file was not opened for reading", self.path)
        return self.grant

    # -- writing ----------------------------------------------------------------------

    def write(self, data: Any) -> int:
        """Write ``data`` (any bytes-like object) at the position; returns its length.

        In an append mode (``ab``, ``ab+``) every write goes to the end. Bytes
        are buffered and streamed to the slave; others see them only once
        :meth:`close` commits. ``data`` is not kept once this returns (small
        writes are copied into the buffer, large ones sent), so the caller may
        reuse its memory at once. Raises UnsupportedOperation (E_INVALID) if the
        file was not opened for writing; a broken slave connection raises
        SectorConnectionError here or at close.
        """
        self._check_open()
        if not self._writing:
            raise UnsupportedOperationError("file was not opened for writing", self.path)
        view = memoryview(data).cast("B")
        if not view:
            return 0
        if self._append:
            self.position = self.size
        contiguous = self.position == self._pending_start + len(self._pending)
        if self._pending and (not contiguous or len(self._pending) + len(view) > WRITE_BUFFER):
            self._flush_pending()
        if len(view) >= WRITE_BUFFER:
            # Sent as it is: buffering a block this large only costs a copy (profiled
            # through `sector mount`, whose 1 MiB writes each went through the buffer).
            # The caller's memory is in the socket before this returns.
            self._put(self.position, view)
        else:
            if not self._pending:
                self._pending_start = self.position
            self._pending += view
        self.position += len(view)
        self.size = max(self.size, self.position)
        return len(view)

    def truncate(self, size: int | None = None) -> int:
        """Cut the version being written to ``size`` bytes (default: the position), or
        extend it with zeros; returns ``size``. The position does not move.

        One request to the slave, which cuts its copy in place: no bytes pass
        through the client. Raises UnsupportedOperation (E_INVALID) for a file
        opened to read, InvalidError for a negative size, SectorConnectionError
        if the slave connection broke (other failures arrive at close).
        """
        self._check_open()
        if not self._writing:
            raise UnsupportedOperationError("file was not opened for writing", self.path)
        size = self.position if size is None else size
        if size < 0:
            raise InvalidError(f"cannot truncate to a negative size ({size})", self.path)
        self._flush_pending()
        try:
            self._send(self._data.truncate(size))
        except OSError as exc:
            self._drop_connection()
            raise SectorConnectionError(
                f"slave connection broke while writing: {exc}", self.path
            ) from None
        self.size = size
        return size

    def write_from_file(
        self, source: IO[bytes], progress: Callable[[int], None] | None = None
    ) -> int:
        """Stream a whole local file from the position, using ``sendfile``.

        A pipe or other stream (``st_size`` means nothing there) is read in
        chunks until its end instead, so ``tar c dir | ...`` never needs to fit
        in memory. ``progress`` is called with each chunk's byte count.
        """
        self._check_open()
        self._flush_pending()
        info = os.fstat(source.fileno())
        if not stat.S_ISREG(info.st_mode):
            return self._write_from_stream(source, progress)
        length = info.st_size
        assert self._sock is not None
        self._send(self._data.put(self.position, length))
        send = _encrypted_sendfile if isinstance(self._sock, ssl.SSLSocket) else _sendfile
        sent = 0
        while sent < length:
            count = min(TRANSFER_BUFFER, length - sent)
            done = send(self._sock, source, sent, count)
            if done != count:
                self._drop_connection()
                raise SectorLocalFileError("local file changed size during the upload", self.path)
            sent += done
            if progress is not None:
                progress(done)
        self.position += length
        self.size = max(self.size, self.position)
        return length

    def _write_from_stream(self, source: IO[bytes], progress: Callable[[int], None] | None) -> int:
        total = 0
        while chunk := source.read(WRITE_BUFFER):
            self.write(chunk)
            total += len(chunk)
            if progress is not None:
                progress(len(chunk))
        self._flush_pending()
        return total

    def flush(self) -> None:
        """Send buffered bytes to the slave (they become visible only at close).

        Raises SectorConnectionError if the slave connection broke; nothing to
        do (and no error) for a file opened to read or already finished.
        """
        self._check_open()
        if self._writing and not self._finished:  # (finished: io's close flushing after us)
            self._flush_pending()

    def _flush_pending(self, commit: bool = False) -> None:
        """Send buffered bytes; with ``commit``, the commit request right behind them."""
        if self._pending:
            data, self._pending = self._pending, bytearray()
            self._put(self._pending_start, memoryview(data), commit)
        elif commit:
            self._send(self._data.commit())

    def _put(self, offset: int, view: memoryview, commit: bool = False) -> None:
        assert self._sock is not None
        header = self._data.put(offset, len(view))
        trailer = self._data.commit() if commit else b""
        try:
            if len(view) <= SMALL_PUT:
                # one system call and one wake-up of the slave for a small file's
                # bytes and its commit (profiled: creates of 1 KB files)
                self._sock.sendall(b"".join((header, view, trailer)))
            else:
                self._sock.sendall(header)
                self._sock.sendall(view)
                if trailer:
                    self._sock.sendall(trailer)
        except OSError as exc:
            self._drop_connection()
            raise SectorConnectionError(
                f"slave connection broke while writing: {exc}", self.path
            ) from None
        self.size = max(self.size, offset + len(view))

    def _read_own_writes(self, size: int) -> bytes:
        self._flush_pending()
        end = self.size if size < 0 else min(self.size, self.position + size)
        if end <= self.position:
            return b""
        assert self._sock is not None
        self._send(self._data.read(self.position, end - self.position))
        reply = receive_reply(self._sock, self._data)
        if isinstance(reply, Error):
            raise reply.exception(self.path)
        data = bytearray(reply.length)
        recv_exact_into(self._sock, memoryview(data))
        self._data.received_raw(len(data))
        self.position += len(data)
        return bytes(data)

    def close(self) -> None:
        """Finish: a written file's new version is committed, atomically; never twice.

        Raises SectorConnectionError if the slave connection broke and
        E_SECURITY if the master refuses the slave's receipt: nothing is
        committed then, and the file is closed either way.
        """
        if self.closed:
            return
        try:
            if self._writing:
                self._commit()
            else:
                self._close_reader()
        finally:
            self._finish()

    def _commit(self) -> None:
        if self._sock is None:  # a write failed and dropped the connection
            self._abort_quietly()
            raise SectorConnectionError(
                "the slave connection broke while writing: nothing was committed", self.path
            )
        try:
            self._flush_pending(commit=True)
            assert self._sock is not None
            reply = receive_reply(self._sock, self._data)
        except (OSError, ProtocolError) as exc:
            self._drop_connection()
            self._abort_quietly()
            raise SectorConnectionError(
                f"slave connection broke at commit: {exc}", self.path
            ) from None
        self._release_connection()
        if isinstance(reply, Error):
            self._abort_quietly()
            raise reply.exception(self.path)
        from .session import Stat

        self.committed = Stat.from_entry(self._recorded(reply).entry)

    def _recorded(self, reply: CommitReply) -> CloseReply:
        """The master's record of the commit: relayed by the slave, which reported it
        (``Write.record``: one request to the master fewer per file), else asked for
        with the slave's receipt (a HiRELIABLE write, or the slave's master link down)."""
        outcome = recorded(reply)
        if isinstance(outcome, Error):
            raise outcome.exception(self.path)
        if outcome is not None:
            return outcome
        assert isinstance(self.grant, WriteGrant)
        return self.client.call(Close(self.grant.lease, reply.receipt, reply.more))

    def abort(self) -> None:
        """Drop everything written since open; the previous version stays. Never raises
        for a Sector failure (the master and slave clean up after a lost client too)."""
        if self.closed:
            return
        self._pending = bytearray()
        try:
            if self._writing:
                if self._sock is not None:
                    try:
                        self._send(self._data.abort())
                        self._release_connection()
                    except (OSError, SectorError, OutOfTurn):  # OutOfTurn: a reply was in flight
                        self._drop_connection()
                self._abort_quietly()
            else:
                self._close_reader()
        finally:
            self._finish()

    def stat(self) -> Stat:
        """The committed version's :class:`Stat` after a write, else the master's current one.

        Raises as :meth:`Client.stat` does (FileNotFoundError if it is gone).
        """
        return self.committed or self.client.stat(self.path)

    def _finish(self) -> None:
        """Mark the file closed, with nothing left for ``io``'s close to flush."""
        self._finished = True
        if self._lease_kept:
            self._lease_kept = False
            self.client.leases.closed()
        super().close()

    def _abort_quietly(self) -> None:
        if isinstance(self.grant, WriteGrant):
            try:
                self.client.call(Abort(self.grant.lease))
            except SectorError:
                pass

    def _check_open(self) -> None:
        if self.closed:
            raise InvalidError("I/O operation on a closed file", self.path)

    def _check_readable(self) -> None:
        self._check_open()
        if not self._readable:
            raise UnsupportedOperationError("file was not opened for reading", self.path)

    def _connect(self, address: tuple[str, int]) -> None:
        """Take a connection to ``address`` (pooled if one is idle) and start a conversation."""
        self._address = (address[0], int(address[1]))
        try:  # over TLS when the grant says so (SF_MODE.SECURE, DATA_ENCRYPTION)
            self._sock = self.client.data_connection(self._address, self.grant.secure)
        except SectorError:
            self._abort_quietly()  # the lease is of no use without its slave
            raise
        self._data = DataSession()

    def _send(self, frame: bytes | bytearray) -> None:
        assert self._sock is not None
        self._sock.sendall(frame)

    def _release_connection(self) -> None:
        """Back to the pool - only with nothing in flight, so the next user starts clean."""
        if self._sock is not None:
            if self._data.idle:
                self.client.release_connection(self._address, self._sock)
                self._sock = None
            else:
                self._drop_connection()

    def _drop_connection(self) -> None:
        if self._sock is not None:
            close_quietly(self._sock)
            self._sock = None

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()


class SectorTextFile(io.TextIOWrapper):
    """A Sector file opened in a text mode: an ``io.TextIOWrapper`` over a :class:`SectorFile`.

    As for the binary file, leaving a ``with`` block by an exception,
    :meth:`abort`, or dropping the file unclosed keeps the previous version;
    :meth:`close` commits. ``buffer`` is the :class:`SectorFile`.
    """

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        """Close (committing a written file); after an exception, abort instead."""
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        try:
            if not self.closed:
                self.abort()
        except Exception:
            pass

    def abort(self) -> None:
        """Drop everything written since open (text not yet encoded too); the previous
        version stays. Never raises for a Sector failure."""
        self.buffer.abort()


class _FileWriter:
    """Writes downloaded chunks to a local file on a helper thread.

    Profiled (``python -m bench.profile --phase download``): receiving and
    writing in turn left each idle while the other ran, and ``os.write`` into
    fresh page-cache pages cost more than the socket. With a few buffers in
    rotation the next chunk arrives while this one is written (``recv_into`` and
    ``os.write`` both release the GIL). Every :data:`WRITEBACK_STEP` bytes the
    written range is handed to the kernel for writeback (``POSIX_FADV_DONTNEED``)
    so the disk works during the transfer rather than in the final fsync, and a
    download does not flood the page cache. Small transfers skip the thread.

    Where the file system allows it (and the file offset is block-aligned), the
    writes bypass the page cache altogether with ``O_DIRECT`` from page-aligned
    buffers: measured in ``bench/``, 1 GiB written + fsynced at 2.1-2.2 GB/s with
    0.02 s of system CPU, against 1.5-2.2 GB/s and 0.25-0.5 s through the page
    cache. The unaligned tail, and any file system that refuses, fall back to
    buffered writes; the file's flags are restored at the end.
    """

    def __init__(self, fd: int, expected: int):
        self.fd = fd
        self.error: BaseException | None = None
        self.free: queue.SimpleQueue[memoryview] = queue.SimpleQueue()
        self.todo: queue.SimpleQueue[tuple[memoryview, int] | None] = queue.SimpleQueue()
        threaded = expected > TRANSFER_BUFFER
        try:
            self.start = self.advised = self.offset = os.lseek(fd, 0, os.SEEK_CUR)
        except OSError:  # a pipe or a terminal: nothing to hand to writeback
            self.start = self.advised = self.offset = -1
        self.direct = False
        if threaded and self.start >= 0 and self.start % DIRECT_ALIGN == 0:
            self.direct = _set_direct(fd, True)
        for _ in range(WRITE_BUFFERS if threaded else 1):
            size = min(TRANSFER_BUFFER, max(expected, 1))
            # mmap memory is page-aligned, as O_DIRECT needs
            self.free.put(memoryview(mmap.mmap(-1, size) if self.direct else bytearray(size)))
        self.thread = threading.Thread(target=self._run, daemon=True) if threaded else None
        if self.thread is not None:
            self.thread.start()

    def __enter__(self) -> _FileWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.thread is not None:
            self.todo.put(None)
            self.thread.join()
        if self.direct:
            self.direct = not _set_direct(self.fd, False)
        if exc_type is None and self.error is not None:
            raise self.error

    def buffer(self) -> memoryview:
        """A free buffer to fill (waits while all are being written)."""
        view = self.free.get()
        if self.error is not None:
            raise self.error
        return view

    def give_back(self, view: memoryview) -> None:
        """Return a buffer that was not filled (the transfer failed)."""
        self.free.put(view)

    def write(self, view: memoryview, count: int) -> None:
        if self.thread is None:
            self._write(view, count)
            self.free.put(view)
        else:
            self.todo.put((view, count))

    def _run(self) -> None:
        while (item := self.todo.get()) is not None:
            if self.error is None:
                try:
                    self._write(*item)
                except BaseException as exc:
                    self.error = exc
            self.free.put(item[0])

    def _write(self, view: memoryview, count: int) -> None:
        if self.direct and count % DIRECT_ALIGN:  # the tail: through the page cache
            self.direct = not _set_direct(self.fd, False)
        if self.direct:
            self._write_direct(view[:count])
        else:
            _write_all(self.fd, view[:count])
        if self.offset < 0:
            return
        self.offset += count
        if self.direct:
            self.advised = self.offset  # nothing of ours is in the page cache
        elif self.offset - self.advised >= WRITEBACK_STEP:
            # Starts writeback of the new range and drops the pages of earlier ranges
            # whose writeback has finished (pages still in flight are skipped, hence
            # the look back), so the same few pages are recycled instead of fresh
            # ones allocated: measured 2.1 GB/s write+fsync against 0.3-1.3 GB/s.
            low = max(self.start, self.advised - WRITEBACK_LOOKBACK * WRITEBACK_STEP)
            try:
                os.posix_fadvise(self.fd, low, self.offset - low, os.POSIX_FADV_DONTNEED)
            except OSError:
                self.offset = -1
            self.advised = self.offset

    def _write_direct(self, view: memoryview) -> None:
        try:
            written = os.write(self.fd, view)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise SectorLocalFileError(f"local write failed: {exc.strerror}") from None
            written = 0  # this file system takes O_DIRECT at open but not for writes
        if written < len(view):
            self.direct = not _set_direct(self.fd, False)
            _write_all(self.fd, view[written:])


def _is_regular(target: IO[bytes]) -> bool:
    try:
        return stat.S_ISREG(os.fstat(target.fileno()).st_mode)
    except (OSError, ValueError):
        return False


def _sendfile(sock: socket.socket, source: IO[bytes], offset: int, count: int) -> int:
    return sock.sendfile(source, offset, count)


def _encrypted_sendfile(sock: socket.socket, source: IO[bytes], offset: int, count: int) -> int:
    """``sendfile`` over TLS (SF_MODE.SECURE): the bytes must pass through the TLS
    library, and ``SSLSocket.sendfile`` would hand them over 8 KiB at a time."""
    chunk = bytearray(min(count, TRANSFER_BUFFER))
    done = 0
    while done < count:
        got = os.preadv(source.fileno(), [memoryview(chunk)[: count - done]], offset + done)
        if not got:
            break
        sock.sendall(memoryview(chunk)[:got])
        done += got
    return done


def _set_direct(fd: int, on: bool) -> bool:
    """Switch O_DIRECT on or off for ``fd``; True if that worked."""
    if not hasattr(os, "O_DIRECT"):
        return False
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT if on else flags & ~os.O_DIRECT)
    except OSError:
        return False
    return True


def _write_all(fd: int, view: memoryview) -> None:
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        raise SectorLocalFileError(f"local write failed: {exc.strerror}") from None


__all__ = ["SectorFile", "SectorTextFile"]
