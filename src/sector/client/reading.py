"""Reading one version of a file from its replicas: every byte checked, any replica will do.

:class:`ReplicaReader` is the client's one read path. :class:`~.file.SectorFile`
reads, read-ahead and downloads (and whatever io layer sits on them) call it;
nothing else talks to a slave to read a stored file.

* **Checked.** A slave sends, before the bytes, the sums of the 64 KiB blocks
  they touch (:mod:`sector.protocol.checksum`); the reader asks for whole
  blocks only (widening a request as needed, the extra bytes landing in a
  scratch buffer) and checks each block before the bytes reach the caller -
  into the caller's own buffer, without a copy, where the request covers
  whole blocks. The slave keeps its ``sendfile``.
* **Any replica will do.** A slave that breaks the connection, refuses, sends
  nothing for ``data_timeout`` seconds (a stalled or stopped process), or sends
  bytes that fail their sums, is left behind and the read continues at the
  same offset on the next replica. Bad bytes are reported to the master, which
  has the slave check the replica (and quarantine it). When every replica has
  failed, the grant is asked for again - the master may know of new replicas -
  and only when that offers none left to try does the caller see an error:
  :class:`~sector.errors.SectorConnectionError` (E_CONNECTION) when slaves
  could not be reached, :class:`~sector.errors.ResourceError` (E_RESOURCE) when
  none holds good bytes. Replicas that failed for a passing reason are tried
  again after a refresh if the read made progress since the last one, so a
  long download outlives any number of slave restarts, and a read that makes
  no progress still ends.
"""

from __future__ import annotations

import errno
import mmap
import os
import socket
import ssl
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import xxhash

from ..errors import (
    E_EXPIRED,
    E_LOCALFILE,
    E_NOEXIST,
    ResourceError,
    SectorBusyError,
    SectorConnectionError,
    SectorError,
    SectorLocalFileError,
)
from ..protocol import checksum
from ..protocol.checksum import BLOCK, SUM_SIZE, align_down, align_up
from ..protocol.data import DataSession, OutOfTurn, ReadReply
from ..protocol.framing import ProtocolError
from ..protocol.master import Address, Open, ReadGrant, ReportBadReplica
from ..protocol.messages import READ, SECURE, Error
from ..transport import MAX_RECV, close_quietly, receive_reply, recv_exact_into, recv_whole

if TYPE_CHECKING:
    from .session import Client

#: Bytes asked for by one read request into the caller's memory.
READ_REQUEST = 16 * 1024 * 1024
#: Bytes asked for by one read request while streaming to a file: profiled downloads
#: asking for one 4 MiB buffer at a time left the slave's ``sendfile`` idle between them.
STREAM_REQUEST = 256 * 1024 * 1024
#: O_DIRECT writes must start, and be sized, on this boundary.
DIRECT_ALIGN = 4096
#: Bytes a parallel stream receives at a time before writing them.
SINK_BUFFER = 4 * 1024 * 1024
#: Bytes one of several parallel streams takes at a time (see stream_parallel).
SEGMENT = 64 * 1024 * 1024
#: Grants renewed in a row (expired tokens) before the read is given up.
MAX_RENEWALS = 3


class BadBytes(Exception):
    """A slave sent bytes that do not match their block sums."""


class Sink(Protocol):
    """Where a stream goes: buffers to fill, handed back filled (see ``file._FileWriter``)."""

    def buffer(self) -> memoryview: ...

    def give_back(self, view: memoryview) -> None: ...

    def write(self, view: memoryview, count: int) -> None: ...


@dataclass
class _Failures:
    """What went wrong with which replica, for choosing the next one and the last word."""

    passing: dict[Address, str] = field(default_factory=dict)  # may work again
    damaged: dict[Address, str] = field(default_factory=dict)  # never again, for this read

    def add(self, address: Address, exc: BaseException) -> None:
        reason = _describe(exc)
        if isinstance(exc, BadBytes) or (isinstance(exc, SectorError) and exc.code == E_NOEXIST):
            self.damaged[address] = reason
        else:
            self.passing[address] = reason

    def excluded(self) -> set[Address]:
        return set(self.passing) | set(self.damaged)

    def error(self, path: str) -> SectorError:
        """The caller's error once no replica is left: E_CONNECTION, or E_RESOURCE."""
        if not self.passing and not self.damaged:
            return ResourceError("no live slave holds this file", path)
        told = "; ".join(
            f"{host}:{port}: {reason}"
            for (host, port), reason in {**self.passing, **self.damaged}.items()
        )
        if self.passing:
            return SectorConnectionError(f"no replica of the file could be read ({told})", path)
        return ResourceError(f"no replica of the file holds good bytes ({told})", path)


class ReplicaReader:
    """Reads one version of a file (the one ``grant`` names) from any of its replicas."""

    def __init__(self, client: Client, path: str, grant: ReadGrant, timeout: float):
        self.client, self.path, self.grant = client, path, grant
        #: Seconds a slave may send nothing before the read moves to another replica.
        self.timeout = timeout
        self._failures = _Failures()
        self._address: Address | None = None
        self._sock: socket.socket | None = None
        self._data = DataSession()
        self._progress = 0  # bytes delivered since the grant was last refreshed
        self._refreshes = 0
        self._renewals = 0  # expired tokens renewed since the last request that worked
        self._scratch = memoryview(bytearray(2 * BLOCK))
        self._turn = 0  # replicas to skip when choosing the first (see _fork)

    @property
    def size(self) -> int:
        return self.grant.size

    # --- reading into memory ------------------------------------------------------------

    def read_into(self, offset: int, view: memoryview) -> None:
        """Fill ``view`` with the file's bytes from ``offset`` (all inside the file), checked.

        The request is widened to whole blocks; the blocks wholly inside
        ``view`` are received straight into it, the partial ones at either end
        into a scratch buffer and copied once checked.
        """
        end = offset + len(view)
        if not view or end > self.size:
            if end > self.size:
                raise ValueError(f"read of {offset}+{len(view)} past the end ({self.size})")
            return
        start, stop = align_down(offset), align_up(end, self.size)
        inner_lo = align_up(offset, self.size)
        inner_hi = end if end == self.size else align_down(end)
        scratch = self._scratch
        # (first byte, end, where the bytes go); the parts of partial blocks go to scratch
        regions: list[tuple[int, int, memoryview]] = []
        if inner_lo >= inner_hi:  # no whole block inside: all of it through the scratch
            regions.append((start, stop, scratch[: stop - start]))
        else:
            if start < inner_lo:
                regions.append((start, inner_lo, scratch[: inner_lo - start]))
            regions.append((inner_lo, inner_hi, view[inner_lo - offset : inner_hi - offset]))
            if inner_hi < stop:
                regions.append((inner_hi, stop, scratch[BLOCK : BLOCK + stop - inner_hi]))
        position = start
        while position < stop:
            chunk_end = min(stop, position + READ_REQUEST)
            self._with_failover(self._receive_regions, position, chunk_end, regions)
            position = chunk_end
        for lo, hi, target in regions:
            if lo < offset or hi > end:  # a partial block, in the scratch: copy out its part
                a, b = max(lo, offset), min(hi, end)
                view[a - offset : b - offset] = target[a - lo : b - lo]

    def read_bytes(self, offset: int, length: int) -> bytes:
        """The file's bytes ``offset``..``offset+length`` as one new object, checked.

        On a plain TCP connection the bytes are received in one request
        straight into the object returned (``recv(MSG_WAITALL)``, see
        :func:`~sector.transport.recv_whole`), then checked: no buffer to zero,
        no copy; only the widening to whole blocks lands in scratch memory.
        Measured with ``fs.cat_file`` of 1 GiB: filling a bytearray in 16 MiB
        requests and copying it into ``bytes`` ran at 0.41x ``sector
        download``. A short range (inside two blocks), a TLS connection, or a
        slave that stops part-way goes through :meth:`read_into` and one copy.
        """
        end = offset + length
        if not length or length > MAX_RECV or end > self.size:
            return self._read_copied(offset, length)
        if offset % BLOCK == 0 and (end % BLOCK == 0 or end == self.size):
            try:
                data = self._receive_whole(offset, end)
            except _RETRYABLE as exc:
                self._recover(exc)
                data = b""
            if len(data) == length:
                assert isinstance(data, bytes)
                return data
            rest = self._read_copied(offset + len(data), length - len(data))
            return b"".join((data, rest))  # a slave stopped part-way: the rest as usual
        if length >= 2 * BLOCK and not self.grant.secure:
            try:
                within = self._receive_within(offset, end)
            except _RETRYABLE as exc:
                self._recover(exc)
                within = None
            if within is not None:
                return within
        return self._read_copied(offset, length)

    def _read_copied(self, offset: int, length: int) -> bytes:
        """Like :meth:`read_bytes`, through :meth:`read_into` and one copy."""
        block = bytearray(length)
        self.read_into(offset, memoryview(block))
        return bytes(block)

    def _receive_within(self, offset: int, end: int) -> bytes | None:
        """Bytes ``offset``..``end`` (spanning two blocks or more, plain TCP) as one new
        object received in place, checked; None when the slave stopped short.

        The request is widened to whole blocks as always, but only the widening
        lands in scratch memory: the bytes asked for are received straight into
        the object returned (:func:`~sector.transport.recv_whole`), and the two
        end blocks are checked from their pieces. Measured with 30 MB reads at
        odd offsets (what pyarrow asks of a Parquet file): zeroing a buffer,
        filling it and copying it into ``bytes`` took 1.6x as long.
        """
        lo, hi = align_down(offset), align_up(end, self.size)
        head, tail = offset - lo, hi - end
        sock, sums = self._request(lo, hi - lo)
        recv_exact_into(sock, self._scratch[:head])
        self._data.received_raw(head)
        data = recv_whole(sock, end - offset)
        if len(data) != end - offset:
            self._drop_connection()  # the slave stopped: the caller reads it the usual way
            return None
        self._data.received_raw(len(data))
        recv_exact_into(sock, self._scratch[BLOCK : BLOCK + tail])
        self._data.received_raw(tail)
        view = memoryview(data)
        first_end, last_start = BLOCK - head, align_down(end - 1) - offset
        last_sum = len(sums) - SUM_SIZE
        if checksum.sum_of_pieces(self._scratch[:head], view[:first_end]) != sums[:SUM_SIZE]:
            raise BadBytes(f"block at byte {lo} does not match its sum")
        self._check(view[first_end:last_start], sums[SUM_SIZE:last_sum], lo + BLOCK)
        tail_piece = self._scratch[BLOCK : BLOCK + tail]
        if checksum.sum_of_pieces(view[last_start:], tail_piece) != sums[last_sum:]:
            raise BadBytes(f"block at byte {offset + last_start} does not match its sum")
        self._progress += end - offset
        self._release()
        return data

    def _receive_whole(self, lo: int, hi: int) -> bytes | memoryview:
        """One request for ``lo``..``hi`` (whole blocks), received into a new object; the
        checked bytes that came (all of them, or the whole blocks of a part)."""
        sock, sums = self._request(lo, hi - lo)
        if isinstance(sock, ssl.SSLSocket):  # TLS takes no MSG_WAITALL: receive, then copy
            block = bytearray(hi - lo)
            recv_exact_into(sock, memoryview(block))
            self._data.received_raw(len(block))
            data: bytes = bytes(block)
        else:
            data = recv_whole(sock, hi - lo)
            self._data.received_raw(len(data))
        good = len(data) if len(data) == hi - lo else align_down(len(data))
        self._check(memoryview(data)[:good], sums[: checksum.sums_length(good)], lo)
        self._progress += good
        if good == hi - lo:
            self._release()
            return data
        self._drop_connection()  # what the slave still sends of that reply goes unread
        return memoryview(data)[:good]

    def _receive_regions(
        self, lo: int, hi: int, regions: list[tuple[int, int, memoryview]]
    ) -> None:
        """One request for bytes ``lo``..``hi`` (whole blocks), each part into its region."""
        sock, sums = self._request(lo, hi - lo)
        for r_lo, r_hi, target in regions:
            a, b = max(lo, r_lo), min(hi, r_hi)
            if a >= b:
                continue
            part = target[a - r_lo : b - r_lo]
            recv_exact_into(sock, part)
            self._data.received_raw(b - a)
            first = (a - lo) // BLOCK * SUM_SIZE
            self._check(part, sums[first : first + checksum.sums_length(b - a)], a)
        self._progress += hi - lo
        self._release()

    # --- streaming to a sink ------------------------------------------------------------

    def stream(
        self,
        start: int,
        sink: Sink,
        progress: Callable[[int], None] | None = None,
    ) -> str | None:
        """Stream bytes ``start``..the end into ``sink``, each buffer checked before it goes.

        Returns the file checksum computed from the sums of what was streamed
        when ``start`` is 0 (compare it with the grant's), else None. ``start``
        is any offset: a partial first block goes through :meth:`read_into`.
        """
        position = self._stream_head(start, sink, progress)
        digest = xxhash.xxh3_128() if start == 0 else None
        self.stream_range(position, self.size, sink, digest.update if digest else None, progress)
        return digest.hexdigest() if digest is not None else None

    def _stream_head(self, start: int, sink: Sink, progress: Callable[[int], None] | None) -> int:
        """Bytes up to the first block boundary, when ``start`` is not on one; where next."""
        if start % BLOCK == 0 or start >= self.size:
            return start
        head = align_up(start, self.size) - start
        view = sink.buffer()
        try:
            self.read_into(start, view[:head])
        except BaseException:
            sink.give_back(view)
            raise
        sink.write(view, head)
        if progress is not None:
            progress(head)
        return start + head

    def stream_range(
        self,
        position: int,
        end: int,
        sink: Sink,
        on_sums: Callable[[bytes], object] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Stream whole blocks ``position``..``end`` into ``sink``; their sums, in order,
        to ``on_sums``."""
        while position < end:
            length = min(STREAM_REQUEST, end - position)
            position = self._with_failover(
                self._stream_once, position, position + length, sink, on_sums, progress
            )

    def stream_parallel(
        self,
        start: int,
        fd: int,
        streams: int,
        progress: Callable[[int], None] | None = None,
    ) -> str | None:
        """Like :meth:`stream`, into the regular file ``fd`` from its current offset, with
        ``streams`` replicas sending at once.

        The file is cut into :data:`SEGMENT` pieces that the streams take in
        turn, each from its own replica (failing over on its own), each
        written where it belongs with ``pwrite``; their sums are put back in
        order for the file checksum.
        """
        base = os.lseek(fd, 0, os.SEEK_CUR) - start
        lock = threading.Lock()

        def note(count: int) -> None:
            if progress is not None:
                with lock:
                    progress(count)

        head = _PositionalSink(fd, base + start, self.size)
        try:
            position = self._stream_head(start, head, note)
        finally:
            head.close()
        segments = deque(
            (lo, min(lo + SEGMENT, self.size)) for lo in range(position, self.size, SEGMENT)
        )
        sums: dict[int, bytearray] = {}
        failures: list[BaseException] = []

        def work(reader: ReplicaReader) -> None:
            try:
                while not failures:
                    with lock:
                        if not segments:
                            return
                        lo, hi = segments.popleft()
                    collected = sums.setdefault(lo, bytearray())
                    sink = _PositionalSink(fd, base + lo, hi - lo)
                    try:
                        reader.stream_range(lo, hi, sink, collected.extend, note)
                    finally:
                        sink.close()
            except BaseException as exc:
                failures.append(exc)
            finally:
                if reader is not self:
                    reader.close()

        readers = [self] + [self._fork(turn) for turn in range(1, streams)]
        threads = [threading.Thread(target=work, args=(r,), daemon=True) for r in readers[1:]]
        for thread in threads:
            thread.start()
        work(self)
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]
        os.lseek(fd, base + self.size, os.SEEK_SET)
        if start != 0:
            return None
        return checksum.of_sums(b"".join(sums[lo] for lo in sorted(sums)))

    def _fork(self, turn: int) -> ReplicaReader:
        """Another reader of the same grant, on its own connection, starting ``turn``
        replicas further down the list."""
        other = ReplicaReader(self.client, self.path, self.grant, self.timeout)
        other._turn = turn
        return other

    def _stream_once(
        self,
        position: int,
        end: int,
        sink: Sink,
        on_sums: Callable[[bytes], object] | None,
        progress: Callable[[int], None] | None,
    ) -> int:
        """One request for ``position``..``end``, received buffer by buffer into ``sink``.

        Returns where it got to. A failure part-way raises :class:`_Stopped` with
        the position reached, so the next replica resumes there.
        """
        try:
            sock, sums = self._request(position, end - position)
        except _RETRYABLE as exc:
            raise _Stopped(position, exc) from exc
        origin = position
        while position < end:
            view = sink.buffer()
            room = len(view) - len(view) % BLOCK or len(view)
            count = min(room, end - position)
            try:
                recv_exact_into(sock, view[:count])
                self._data.received_raw(count)
                first = (position - origin) // BLOCK * SUM_SIZE
                block_sums = sums[first : first + checksum.sums_length(count)]
                self._check(view[:count], block_sums, position)
            except BaseException as exc:
                sink.give_back(view)
                if isinstance(exc, _RETRYABLE):
                    raise _Stopped(position, exc) from exc
                raise
            sink.write(view, count)
            if on_sums is not None:
                on_sums(block_sums)
            position += count
            self._progress += count
            if progress is not None:
                progress(count)
        self._release()
        return position

    # --- one replica, then the next -----------------------------------------------------

    def _with_failover(self, action: Callable[..., int | None], *args: object) -> int | None:
        """Run ``action`` on the current replica until it succeeds, failing over between.

        A stream that stops part-way passes on where it got to, and the next
        attempt starts there.
        """
        while True:
            try:
                return action(*args)
            except _Stopped as stopped:
                args = (stopped.position, *args[1:])
                self._recover(stopped.cause)
            except _RETRYABLE as exc:
                self._recover(exc)

    def _request(self, offset: int, length: int) -> tuple[socket.socket, bytes]:
        """Ask the current replica for ``length`` bytes from ``offset``; the socket the
        bytes then arrive on, and their block sums."""
        if self._sock is None:
            self._connect()
        assert self._sock is not None
        assert self._address is not None
        token = self.grant.token_for(self._address)  # each slave checks its own
        self._sock.sendall(self._data.read(offset, length, token))
        reply = receive_reply(self._sock, self._data)
        if isinstance(reply, Error):
            raise reply.exception(self.path)
        assert isinstance(reply, ReadReply)
        if reply.length != length:
            raise ProtocolError(f"slave sent {reply.length} bytes, expected {length}")
        self._renewals = 0
        return self._sock, reply.sums

    def _check(self, data: memoryview, sums: bytes, offset: int) -> None:
        bad = checksum.first_bad_block(data, sums)
        if bad is not None:
            raise BadBytes(f"block at byte {offset + bad * BLOCK} does not match its sum")

    def _connect(self) -> None:
        if self._address is None:
            self._address = self._choose()
        self._sock = self.client.data_connection(self._address, self.grant.secure)
        self._sock.settimeout(self.timeout)
        self._data = DataSession()

    def _choose(self) -> Address:
        """The first replica of the grant not yet failed; refresh the grant when none is left."""
        while True:
            excluded = self._failures.excluded()
            replicas = self.grant.replicas
            turn = self._turn % len(replicas) if replicas else 0
            for host, port in replicas[turn:] + replicas[:turn]:
                address = (host, int(port))
                if address not in excluded:
                    return address
            self._refresh()

    def _recover(self, exc: BaseException) -> None:
        """After a failed request: renew an expired grant, or leave this replica behind.

        Only local trouble (the file being written to, E_LOCALFILE) is the
        caller's at once; whatever a slave did, another replica may do better.
        """
        self._drop_connection()
        if isinstance(exc, SectorError) and exc.code == E_LOCALFILE:
            raise exc
        if isinstance(exc, SectorError) and exc.code == E_EXPIRED:
            self._renewals += 1
            if self._renewals <= MAX_RENEWALS:
                self._refresh(renewal=True)
                return
        address, self._address = self._address, None
        if address is None:  # no replica was reached: nothing to leave behind
            raise exc
        self._failures.add(address, exc)
        if isinstance(exc, BadBytes):
            self._report(address)

    def _refresh(self, renewal: bool = False) -> None:
        """A new grant from the master: a fresh token, and perhaps new replicas.

        Raises the caller's error when no replica is left to try: when the
        read made no progress since the last refresh, or the new grant offers
        only replicas already left behind. After progress, replicas that
        failed for a passing reason get one more try each.
        """
        if not renewal:
            if self._refreshes and self._progress == 0:
                raise self._failures.error(self.path)
            self._refreshes += 1
        try:
            mode = READ | (SECURE if self.grant.secure else 0)  # encrypted stays encrypted
            grant = self.client.call(Open(self.path, mode))
        except ResourceError:
            if renewal:
                raise
            raise self._failures.error(self.path) from None
        if not isinstance(grant, ReadGrant) or grant.version != self.grant.version:
            raise SectorBusyError("file was rewritten while being read", self.path)
        self.grant = grant
        if renewal:
            return
        if self._progress:
            self._failures.passing.clear()
        self._progress = 0
        offered = {(host, int(port)) for host, port in grant.replicas}
        if not offered - self._failures.excluded():
            raise self._failures.error(self.path)

    def _report(self, address: Address) -> None:
        """Tell the master a replica sent bad bytes; it has the slave check it. Best effort."""
        try:
            self.client.call(ReportBadReplica(self.grant.oid, self.grant.version, _name(address)))
        except SectorError:
            pass

    # --- the connection -----------------------------------------------------------------

    def _release(self) -> None:
        """Back to the pool once nothing is in flight; the replica stays the current one."""
        if self._sock is not None and self._data.idle and self._address is not None:
            self.client.release_connection(self._address, self._sock)
            self._sock = None

    def _drop_connection(self) -> None:
        if self._sock is not None:
            close_quietly(self._sock)
            self._sock = None

    def close(self) -> None:
        self._release()
        self._drop_connection()


#: What a slave (or the way to it) can do wrong: each moves the read to another replica.
_RETRYABLE = (OSError, ProtocolError, OutOfTurn, SectorError, BadBytes)


class _PositionalSink:
    """A :class:`Sink` writing ``length`` bytes at ``offset`` of a file with ``pwrite``.

    Where it can, it writes through a descriptor of its own opened with
    ``O_DIRECT`` from page-aligned buffers, as one stream's ``_FileWriter``
    does (see ``file.py`` for the measured reason); the unaligned tail, and file
    systems that refuse, go through the page cache.
    """

    def __init__(self, fd: int, offset: int, length: int):
        self.fd, self.offset = fd, offset
        size = max(BLOCK, min(SINK_BUFFER, length))
        self._direct = -1
        if hasattr(os, "O_DIRECT") and offset % DIRECT_ALIGN == 0:
            try:
                self._direct = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_DIRECT)
            except OSError:
                self._direct = -1
        self._buffer = memoryview(mmap.mmap(-1, size))  # page-aligned, as O_DIRECT needs

    def buffer(self) -> memoryview:
        return self._buffer

    def give_back(self, view: memoryview) -> None:
        pass

    def write(self, view: memoryview, count: int) -> None:
        data = view[:count]
        try:
            if self._direct >= 0 and count % DIRECT_ALIGN == 0 and self.offset % DIRECT_ALIGN == 0:
                try:
                    data = data[os.pwrite(self._direct, data, self.offset) :]
                    self.offset += count - len(data)
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
                    self.close()
            while data:
                written = os.pwrite(self.fd, data, self.offset)
                data = data[written:]
                self.offset += written
        except OSError as exc:
            raise SectorLocalFileError(f"local write failed: {exc.strerror}") from None

    def close(self) -> None:
        if self._direct >= 0:
            os.close(self._direct)
            self._direct = -1


class _Stopped(Exception):
    """A stream failed at ``position``: resume there on the next replica."""

    def __init__(self, position: int, cause: BaseException):
        super().__init__(str(cause))
        self.position, self.cause = position, cause


def _name(address: Address) -> str:
    return f"{address[0]}:{address[1]}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "sent nothing in time"
    if isinstance(exc, BadBytes):
        return f"bad bytes ({exc})"
    if isinstance(exc, SectorError):
        return exc.detail or str(exc)
    return str(exc) or type(exc).__name__


__all__ = ["BadBytes", "ReplicaReader"]
