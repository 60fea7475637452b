"""One file while the mount has it open: its committed version and a staged new one.

POSIX lets a program write anywhere in a file, as often as it likes, through
several descriptors at once; Sector publishes a file only as a whole new
version at ``close``. :class:`OpenFile` bridges the two. All descriptors the
kernel opens on one path share one ``OpenFile``, so they see each other's
writes, and that object holds at most:

- a *reader*: a read grant on the committed version (what every other client
  sees), opened when the file is opened, so ``open`` is where close-to-open
  consistency is decided;
- a *writer*: a Sector write session staging the next version on a slave. It
  opens in ``RW`` mode, so the slave starts it as a copy of the committed
  version and the program's writes land in place - random writes, writes into
  the middle, appends - without the bytes crossing the network twice. Reads
  while it is open come from it (the program sees its own writes).

:meth:`OpenFile.commit` (the mount calls it at ``close()`` and ``fsync()``)
publishes the staged version atomically: other clients see all of it or none.

A truncate is staged like any write: the slave cuts or extends the new
version in place (see :meth:`OpenFile.truncate`); to 0 it is just a new,
empty version.

Once the last descriptor is closed, :class:`RecentCommits` keeps what the
file's last commit made of it for ``attr_timeout``, so that a ``stat`` right
after a write does not need the master.
"""

from __future__ import annotations

import errno
import logging
import mmap
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from ..client import Client, SectorFile, Stat
from ..clock import SYSTEM, Clock
from ..errors import SectorError
from ..protocol.messages import READ, RW, TRUNC, WRITE
from .errors import MountError

log = logging.getLogger("sector.mount")

#: Sequential reads of a committed file at least this large stream ahead (ReadAhead).
READ_AHEAD_FROM = 8 * 1024 * 1024
NEW_VERSION = READ | WRITE | TRUNC


class OpenFile:
    """What the mount knows about one path while any descriptor has it open.

    Every method takes ``lock``: the kernel sends requests for one file from
    several threads at once, and a :class:`SectorFile` is not thread-safe.
    """

    def __init__(
        self, client: Client, path: str, committed: Stat | None = None, clock: Clock = SYSTEM
    ):
        self.client = client
        self.path = path
        self.clock = clock
        self.lock = threading.RLock()
        self.handles = 0
        self.size = committed.size if committed else 0
        self.version = committed.version if committed else 0
        self.mtime = committed.timestamp if committed else time.time()
        #: A time ``utimens`` set while changes were staged: applied once they are
        #: committed (a commit sets the time to its own).
        self.pending_mtime: float | None = None
        #: Made by ``create`` and not committed yet: the master does not know the path.
        self.created = False
        self.writer: SectorFile | None = None
        self.reader: SectorFile | None = None
        #: Bytes (or a truncation) staged that the committed version lacks.
        self.dirty = False
        #: Unlinked while open: nothing staged will be committed.
        self.detached = False
        self.read_ahead: ReadAhead | None = None
        #: Large writes on their way to the writer (see :class:`WriteBehind`).
        self.behind: WriteBehind | None = None
        #: Where the last read ended: a read starting there is sequential.
        self._next_read = 0
        #: When (``clock.monotonic()``) this mount last committed the file; None if never.
        self.committed_at: float | None = None

    def __repr__(self) -> str:
        return f"<OpenFile {self.path} size={self.size} v{self.version} handles={self.handles}>"

    @property
    def staged(self) -> bool:
        """Whether this mount knows better than the master what the file holds."""
        return self.created or self.dirty or self.writer is not None

    # -- opening ----------------------------------------------------------

    def create(self, exclusive: bool = False) -> None:
        """Start a new, empty file (its first version is committed at close).

        ``exclusive`` (``O_EXCL``): the master refuses, atomically, a path that
        exists or that another client is creating (EEXIST).
        """
        with self.lock:
            self.writer = self.client.open(self.path, "xb+" if exclusive else NEW_VERSION)
            self.size, self.created, self.dirty = 0, True, True

    def open_reader(self) -> int:
        """Open the committed version for reading (close-to-open); returns its version."""
        with self.lock:
            if self.staged:
                return self.version
            self._close_reader()
            self.reader = self.client.open(self.path, READ)
            self.size = self.reader.size
            self.version = self.reader.grant.version
            return self.version

    # -- data ---------------------------------------------------------------

    def read_into(self, offset: int, buffer: memoryview) -> int:
        """Fill ``buffer`` from ``offset`` (less at the end of the file); the count."""
        with self.lock:
            size = min(len(buffer), self.size - offset)
            if size <= 0:
                return 0
            view = buffer[:size]
            sequential, self._next_read = offset == self._next_read, offset + size
            if self.writer is None:
                if self._read_ahead(offset, view, sequential):
                    return size
                source = self._reader()
            else:  # the program reads its own writes: from the slave staging them
                source = self._settled_writer()
            source.seek(offset)
            return source.readinto(view)

    def _read_ahead(self, offset: int, view: memoryview, sequential: bool) -> bool:
        """Serve a sequential read of a large committed file from the read-ahead stream."""
        if self.read_ahead is None:
            if not sequential or self.size - offset < READ_AHEAD_FROM:
                return False
            reader = self._reader()
            self.read_ahead = ReadAhead(
                SectorFile(self.client, self.path, READ, reader.grant), offset, self.size
            )
        if self.read_ahead.read_into(offset, view):
            return True
        if self.read_ahead.overtaken:
            self._stop_read_ahead()  # the program jumped ahead: read directly from here on
        return False

    def write(self, offset: int, data: memoryview) -> int:
        """Stage ``data`` at ``offset``; a large write is sent behind the program's back
        (see :class:`WriteBehind`), its failure reported at a later write or the commit."""
        with self.lock:
            writer = self._writer()
            if len(data) >= WriteBehind.FROM:
                if self.behind is None:
                    self.behind = WriteBehind(writer)
                self.behind.write(offset, data)
            else:
                self._settled_writer()
                writer.seek(offset)
                writer.write(data)
            self.size = max(self.size, offset + len(data))
            self.dirty, self.mtime, self.pending_mtime = True, time.time(), None
            return len(data)

    def append(self, data: memoryview) -> int:
        """``O_APPEND``: at the end of the staged version, whatever the kernel believes."""
        with self.lock:
            self._writer()  # learns the staged size
            return self.write(self.size, data)

    def truncate(self, length: int) -> None:
        """Stage the file cut (or extended with zeros) to ``length`` bytes.

        To zero: a fresh, empty version (nothing to copy). Otherwise the
        slave staging the new version cuts or extends its copy in place: one
        request, no bytes through the mount.
        """
        with self.lock:
            if length == self.size and self.staged:
                return  # (unstaged, ``size`` may predate another client's commit)
            if length == 0:
                self._abort_writer()
                self._close_reader()
                self.writer = self.client.open(self.path, NEW_VERSION)
            else:
                self._writer()
                self._settled_writer().truncate(length)
            self.size, self.dirty, self.mtime = length, True, time.time()
            self.pending_mtime = None

    # -- publishing ---------------------------------------------------------

    def commit(self) -> None:
        """Publish what is staged as the file's new version (``close``/``fsync``).

        On failure nothing staged survives - the committed version is what it
        was - and the error goes to the program that called ``close``.
        """
        with self.lock:
            if self.writer is None or self.detached or not self.dirty:
                return
            writer, self.writer = self.writer, None
            self.dirty = False
            try:
                self._stop_behind(send=True)  # every byte in the slave's hands first
                writer.close()
            except BaseException as exc:
                writer.abort()  # (nothing to do if close got as far as failing)
                log.warning("%s: commit failed, the previous version stays: %s", self.path, exc)
                if self.created:  # the file never came to be
                    self.size, self.detached = 0, True
                raise
            committed = writer.committed
            assert committed is not None
            self.created, self.committed_at = False, self.clock.monotonic()
            self.size, self.version, self.mtime = (
                committed.size,
                committed.version,
                committed.timestamp,
            )
            if self.pending_mtime is not None:
                mtime, self.pending_mtime = self.pending_mtime, None
                try:
                    self.client.set_mtime(self.path, mtime)
                    self.mtime = mtime
                except SectorError as exc:  # the bytes are committed: not worth failing close
                    log.warning("%s: committed, but its time was not set: %s", self.path, exc)

    def set_mtime_after_commit(self, mtime: float) -> bool:
        """Remember ``mtime`` for the commit of staged changes; False when nothing is staged
        (the caller sets it at the master now)."""
        with self.lock:
            if not self.staged or self.detached:
                return False
            self.mtime = self.pending_mtime = mtime
            return True

    def close(self) -> None:
        """The last descriptor is gone: publish anything left staged, drop connections."""
        with self.lock:
            try:
                self.commit()
            finally:
                self._abort_writer()
                self._close_reader()

    def detach(self) -> None:
        """The path was unlinked (or replaced) under this file: stage nothing more."""
        with self.lock:
            self.detached = True
            self._abort_writer()
            self._close_reader()

    # -- internals ----------------------------------------------------------

    def _reader(self) -> SectorFile:
        if self.reader is None:
            self.reader = self.client.open(self.path, READ)
        return self.reader

    def _writer(self) -> SectorFile:
        if self.detached:
            raise MountError(errno.ENOENT, f"{self.path} was removed while open")
        if self.writer is None:
            # RW: the slave starts from a copy of the committed version.
            mode = NEW_VERSION if self.created else RW
            self.writer = self.client.open(self.path, mode)
            self._close_reader()  # its version is about to be superseded
            self.size = self.writer.size
        return self.writer

    def _settled_writer(self) -> SectorFile:
        """The writer, once every write sent behind is in its hands (or raised)."""
        assert self.writer is not None
        if self.behind is not None:
            self.behind.drain()
        return self.writer

    def _stop_behind(self, send: bool) -> None:
        if self.behind is not None:
            behind, self.behind = self.behind, None
            behind.stop(send)

    def _abort_writer(self) -> None:
        self._stop_behind(send=False)
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.abort()

    def _stop_read_ahead(self) -> None:
        if self.read_ahead is not None:
            read_ahead, self.read_ahead = self.read_ahead, None
            read_ahead.stop()

    def _close_reader(self) -> None:
        self._stop_read_ahead()
        if self.reader is not None:
            reader, self.reader = self.reader, None
            reader.close()


class ReadAhead:
    """Sequential reads of one committed version, streamed ahead on a thread.

    Profiled ``cp`` out of the mount: the kernel asks for 128 KiB-1 MiB at a
    time, and answering each from a 1 MiB buffer refilled by a blocking round
    trip left the slave idle while Python copied and the kernel waited. Here a
    thread streams the file from the slave on its own data connection (same
    grant, so the same version) - one request for up to 256 MiB, as a
    download does: asked for 4 MiB at a time instead, the thread spent a
    quarter of its time waiting for each request's answer (py-spy, ``cp`` of
    1 GiB) - into :data:`CHUNK`-byte chunks, at most :data:`AHEAD` of them
    waiting; the kernel's requests are served from memory, copied once,
    straight into libfuse's buffer. The chunks' memory is reused: profiled, a
    fresh 4 MiB bytearray per chunk (zeroed, then faulted in page by page)
    cost the fetching thread a tenth of its time. ``read_into`` answers False
    when the bytes are not in the stream; the caller then reads them
    directly, and ends the stream when the program has jumped past it
    (:attr:`overtaken`). A read behind the stream does not end it: the kernel
    sends a file's read-ahead as several requests at once, and libfuse's
    threads hand them to us in any order (profiled with a 4 MiB bdi
    read-ahead, a request 10 MiB behind the newest was common; ending the
    stream there made ``cp`` out 4x slower).
    """

    CHUNK = 4 * 1024 * 1024
    AHEAD = 4

    def __init__(self, source: SectorFile, start: int, size: int):
        self.source, self.size = source, size
        self.chunks: queue.Queue[tuple[int, memoryview | BaseException]] = queue.Queue(self.AHEAD)
        self.window: list[tuple[int, memoryview]] = []  # the last two chunks handed out
        #: Chunks' memory handed back by the reader, for the thread to fill again.
        self.free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self.fetched_to = start
        self._streamed_to = start  # where the next chunk from the stream starts
        #: A read came beyond everything fetched and queued: the program jumped ahead.
        self.overtaken = False
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._fetch, args=(start,), daemon=True)
        self.thread.start()

    def _fetch(self, offset: int) -> None:
        try:
            self.source.seek(offset)
            self.source.stream_to(self)
        except _StreamStopped:
            pass
        except BaseException as exc:  # handed to the reader, raised there
            try:
                self._hand_over((self._streamed_to, exc))
            except _StreamStopped:
                pass

    # the stream's sink (see sector.client.reading.Sink)

    def buffer(self) -> memoryview:
        """A chunk's memory for the stream to fill: one handed back, or a new one."""
        try:
            memory = self.free.get_nowait()
        except queue.Empty:  # at most AHEAD + 3 ever exist: queued, window, this one
            memory = bytearray(self.CHUNK)
        return memoryview(memory)

    def give_back(self, view: memoryview) -> None:
        assert isinstance(view.obj, bytearray)
        self.free.put(view.obj)

    def write(self, view: memoryview, count: int) -> None:
        """The stream filled ``count`` bytes of ``view``: queue them for the reader."""
        self._hand_over((self._streamed_to, view[:count]))
        self._streamed_to += count

    def _hand_over(self, item: tuple[int, memoryview | BaseException]) -> None:
        while not self.stopped.is_set():
            try:
                self.chunks.put(item, timeout=0.5)  # wakes to notice ``stop``
                return
            except queue.Full:
                continue
        raise _StreamStopped

    def read_into(self, offset: int, view: memoryview) -> bool:
        """Fill ``view`` with the bytes from ``offset``; False when they are not in the stream."""
        done = 0
        while done < len(view):
            found = self._chunk_at(offset + done)
            if found is None:
                return False
            start, block = found
            piece = block[offset + done - start : offset + len(view) - start]
            view[done : done + len(piece)] = piece
            done += len(piece)
        return True

    def _chunk_at(self, offset: int) -> tuple[int, memoryview] | None:
        for start, block in self.window:
            if start <= offset < start + len(block):
                return start, block
        if self.window and offset < self.window[0][0]:
            return None  # behind the stream: a late request, or a jump back
        while True:
            if offset >= self.fetched_to + self.AHEAD * self.CHUNK:
                self.overtaken = True  # far ahead of the stream: a jump forward
                return None
            start, block = self.chunks.get()
            if isinstance(block, BaseException):
                raise block
            self.fetched_to = start + len(block)
            if len(self.window) == 2:
                assert isinstance(self.window[0][1].obj, bytearray)
                self.free.put(self.window[0][1].obj)
            self.window = [*self.window[-1:], (start, block)]
            if start <= offset < start + len(block):
                return start, block

    def stop(self) -> None:
        self.stopped.set()
        while self.thread.is_alive():
            try:
                self.chunks.get(timeout=0.1)  # make room, so a blocked put returns
            except queue.Empty:
                pass
        self.source.close()


class _StreamStopped(Exception):
    """The read-ahead was stopped: the stream ends where it is."""


class WriteBehind:
    """Large writes gathered into large puts, handed to the write session from a thread.

    Profiled ``cp`` into the mount, each 1 MiB ``write`` sent as it came: the
    kernel sends a file's writes one at a time, each waiting for the reply to
    the one before, so ``cp`` sat idle while the bytes went into the slave's
    socket, and the socket sat idle while ``cp`` read the next 1 MiB; and the
    slave, which overlaps receiving with writing to disk only within one put,
    wrote each 1 MiB put before receiving the next (its CPU per GB was twice
    an upload's). Here writes of at least :data:`FROM` bytes are copied
    (libfuse takes its buffer back when we answer) into a batch; a full
    :data:`BATCH` goes, as one put, to a thread that writes it to the session
    while the program carries on; at most :data:`DEPTH` batches wait. A file
    smaller than a batch never starts the thread: its batch is written at the
    commit. Small writes are not worth it: the open file settles this first
    (:meth:`drain`) and writes them itself.

    A failed put is raised at the next :meth:`write` or :meth:`drain` (the
    commit's), as NFS reports write-behind errors at ``close``; the session is
    broken then, so nothing staged can be committed, as with a direct write.
    """

    FROM = 128 * 1024
    BATCH = 8 * 1024 * 1024
    DEPTH = 2

    def __init__(self, writer: SectorFile):
        self.writer = writer
        self.queue: queue.Queue[tuple[int, memoryview] | None] = queue.Queue(self.DEPTH)
        #: Batches' memory already sent, for the next batches (no fresh pages each time).
        self.free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        self.batch: mmap.mmap | None = None
        self.start = self.filled = 0
        self.error: BaseException | None = None
        self.discard = False
        self.thread: threading.Thread | None = None

    def write(self, offset: int, data: memoryview) -> None:
        """Add a copy of ``data`` (for ``offset``) to the batch; a full batch goes out."""
        self._raise()
        if self.filled and (
            offset != self.start + self.filled or self.filled + len(data) > self.BATCH
        ):
            self._hand_off()
        if len(data) > self.BATCH:  # larger than any FUSE write: a batch of its own
            self._queue(offset, memoryview(bytes(data)))
            return
        if self.batch is None:
            self.batch = self._memory()
        if not self.filled:
            self.start = offset
        self.batch[self.filled : self.filled + len(data)] = data
        self.filled += len(data)
        if self.filled == self.BATCH:
            self._hand_off()

    def drain(self) -> None:
        """Wait until everything handed over is written, then write the partial batch
        here; raise what went wrong."""
        self.queue.join()
        self._raise()
        if self.filled:
            assert self.batch is not None
            self.writer.seek(self.start)
            self.writer.write(memoryview(self.batch)[: self.filled])
            self.filled = 0

    def stop(self, send: bool) -> None:
        """End the thread: after writing everything (``send``), or dropping it."""
        try:
            if send:
                self.drain()
        finally:
            self.discard = True
            if self.thread is not None:
                self.queue.put(None)
                self.thread.join()

    def _hand_off(self) -> None:
        assert self.batch is not None
        batch, self.batch = self.batch, None
        self._queue(self.start, memoryview(batch)[: self.filled])
        self.filled = 0

    def _queue(self, offset: int, view: memoryview) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._send, daemon=True)
            self.thread.start()
        self.queue.put((offset, view))

    def _memory(self) -> mmap.mmap:
        try:
            return self.free.get_nowait()
        except queue.Empty:  # at most DEPTH + 2 exist: queued, being sent, filling
            return mmap.mmap(-1, self.BATCH)  # its pages are touched only when filled

    def _send(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is None:
                    return
                offset, view = item
                if self.error is None and not self.discard:
                    self.writer.seek(offset)
                    self.writer.write(view)
                if isinstance(view.obj, mmap.mmap):
                    memory = view.obj
                    view.release()
                    self.free.put(memory)
            except BaseException as exc:  # raised in the program's next call
                self.error = exc
            finally:
                self.queue.task_done()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error


class OpenFiles:
    """The mount's table of open files by path, shared by every descriptor of a path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_path: dict[str, OpenFile] = {}

    def get(self, path: str) -> OpenFile | None:
        return self._by_path.get(path)

    def acquire(self, path: str, make: Callable[[], OpenFile]) -> OpenFile:
        """The path's open file (made by ``make`` if none), with one more descriptor."""
        with self._lock:
            entry = self._by_path.get(path)
            if entry is None:
                entry = self._by_path[path] = make()
            entry.handles += 1
            return entry

    def release(self, entry: OpenFile) -> bool:
        """One descriptor fewer; True when it was the last (the caller closes the file)."""
        with self._lock:
            entry.handles -= 1
            if entry.handles > 0:
                return False
            if self._by_path.get(entry.path) is entry:
                del self._by_path[entry.path]
            return True

    def forget(self, path: str) -> OpenFile | None:
        """Remove the path's entry (it was unlinked); descriptors keep their object."""
        with self._lock:
            return self._by_path.pop(path, None)

    def under(self, path: str) -> list[OpenFile]:
        """Open files at ``path`` or anywhere beneath it."""
        prefix = path.rstrip("/") + "/"
        with self._lock:
            return [f for p, f in self._by_path.items() if p == path or p.startswith(prefix)]

    def in_directory(self, directory: str) -> Iterator[tuple[str, OpenFile]]:
        """(name, file) for open files directly inside ``directory``."""
        prefix = directory.rstrip("/") + "/"
        with self._lock:
            items = list(self._by_path.items())
        for path, entry in items:
            if path.startswith(prefix) and "/" not in path[len(prefix) :]:
                yield path[len(prefix) :], entry

    def moved(self, old: str, new: str) -> None:
        """``old`` (a file or a directory) is now called ``new``: re-key what is open."""
        prefix = old.rstrip("/") + "/"
        with self._lock:
            for path in list(self._by_path):
                if path == old or path.startswith(prefix):
                    entry = self._by_path.pop(path)
                    entry.path = new + path[len(old) :]
                    self._by_path[entry.path] = entry


Known = TypeVar("Known")


class RecentCommits(Generic[Known]):
    """What this mount knows of the files it committed lately, by path, each kept
    ``lifetime`` seconds from its commit (the kernel's ``attr_timeout``).

    Why: every write through the mount makes the kernel drop the file's
    attributes, so the next ``stat`` of it - ``ls -l`` after ``cp``, ``make``,
    the bench's stat after create - came to the mount and went on to the
    master, although the mount had just committed the file and knew the
    answer. Kept no longer than the kernel would have kept the attributes the
    ``create`` reply gave it, the answers are no staler than the kernel's own
    cache: another client's change shows within ``lifetime``, and the mount's
    own changes (unlink, rename, utime, the next open) forget the path at once.
    A ``lifetime`` of 0 keeps nothing.
    """

    #: Paths kept at most; when full everything is forgotten (that only costs a stat).
    LIMIT = 100_000

    def __init__(self, lifetime: float, clock: Clock = SYSTEM):
        self.lifetime = lifetime
        self.clock = clock
        self._lock = threading.Lock()
        #: path -> (what is known, when it was committed), oldest commit first
        self._by_path: dict[str, tuple[Known, float]] = {}

    def fresh(self, committed_at: float | None) -> bool:
        """Whether something committed at ``committed_at`` is still young enough to answer."""
        return committed_at is not None and self.clock.monotonic() - committed_at < self.lifetime

    def put(self, path: str, known: Known, committed_at: float) -> None:
        if not self.fresh(committed_at):
            return
        with self._lock:
            self._drop_stale()
            if len(self._by_path) >= self.LIMIT:
                self._by_path.clear()
            self._by_path.pop(path, None)  # to the end: oldest first, roughly
            self._by_path[path] = (known, committed_at)

    def get(self, path: str) -> Known | None:
        with self._lock:
            found = self._by_path.get(path)
        # (its own age: files are put when closed, which is not always in commit order)
        return found[0] if found is not None and self.fresh(found[1]) else None

    def forget(self, path: str) -> None:
        """``path`` alone: a file opened, removed or given a time (no scan: every open
        calls this)."""
        with self._lock:
            self._by_path.pop(path, None)

    def forget_tree(self, path: str) -> None:
        """``path`` and everything beneath it: a rename, which may move a directory."""
        prefix = path.rstrip("/") + "/"
        with self._lock:
            self._drop_stale()
            self._by_path.pop(path, None)
            for beneath in [p for p in self._by_path if p.startswith(prefix)]:
                del self._by_path[beneath]

    def _drop_stale(self) -> None:
        """Drop what is too old from the front, where the oldest are: what is kept stays
        about one ``lifetime`` of commits (``get`` checks each answer's own age)."""
        while self._by_path:
            path, (_, committed_at) = next(iter(self._by_path.items()))
            if self.fresh(committed_at):
                return
            del self._by_path[path]
