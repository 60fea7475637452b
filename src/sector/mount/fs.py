"""The FUSE file system: POSIX operations mapped onto one Sector :class:`Client`.

Why mfusepy (ctypes over libfuse 3's high-level API) and not pyfuse3:

- *Installs anywhere libfuse does*: a pure-Python wheel over the ``libfuse3-3``
  shared library (``apt-get install fuse3 libfuse3-3``); pyfuse3 ships as
  source and must be compiled against ``libfuse3-dev`` with a C toolchain.
- *Our client is blocking and thread-safe*, and libfuse's multithreaded loop
  calls each operation on one of its own threads, so a slow slave read never
  stalls a ``stat`` and no operation hops between threads. pyfuse3 runs every
  operation as a coroutine on one trio loop: a blocking client there costs a
  thread hand-off per operation (measured elsewhere in this project at about
  250 µs a hop - more than a master round trip).
- *libfuse keeps the path <-> inode table in C*, so we are handed paths, which
  is what the Sector namespace speaks. What the high-level API hides we add in
  :class:`SectorFUSE`: ``readdirplus`` (attributes with the listing, so
  ``ls -l`` is one ``ls`` request to the master and no per-entry ``stat``) and
  ``rename`` flags.

Caching: the kernel caches attributes and names for ``attr_timeout`` /
``entry_timeout`` (1 s by default, ``-o`` overrides) and file pages across
opens while the file's version is unchanged; every ``open`` asks the master
for the current version (close-to-open, like NFS). Changes made through this
mount update the kernel's caches as they happen.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import logging
import math
import os
import stat
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import mfusepy

from ..client import Client
from ..clock import SYSTEM, Clock
from ..protocol.paths import join
from .errors import MountError, errno_boundary
from .files import OpenFile, OpenFiles, RecentCommits

log = logging.getLogger("sector.mount")

#: Reported as st_blksize: ``cp`` and friends size their buffers from it, and
#: 1 MiB requests are the largest the kernel sends a FUSE file system.
BLOCK_SIZE = 1024 * 1024
STATFS_BLOCK = 4096
#: Paths whose cached version the mount remembers (see ``open``); bounded memory.
REMEMBERED_VERSIONS = 100_000
#: Default kernel cache lifetimes (seconds); ``-o attr_timeout=...`` overrides.
DEFAULT_TIMEOUTS = {"attr_timeout": 1.0, "entry_timeout": 1.0, "negative_timeout": 0.0}

FUSE_READDIR_PLUS = 1 << 0  # enum fuse_readdir_flags
FUSE_FILL_DIR_PLUS = 1 << 1  # enum fuse_fill_dir_flags
FUSE_UNKNOWN_INO = 0xFFFFFFFF
UTIME_NOW = (1 << 30) - 1  # <sys/stat.h>
UTIME_OMIT = (1 << 30) - 2
RENAME_NOREPLACE = 1 << 0
RENAME_EXCHANGE = 1 << 1


class Attributes(NamedTuple):
    """What ``stat`` shows of one entry; the rest of ``struct stat`` follows from it."""

    mode: int
    size: int
    mtime_ns: int
    ino: int = 0  # 0: libfuse numbers the inodes


@dataclass
class Handle:
    """One descriptor the kernel opened: the shared file and how it was opened."""

    file: OpenFile
    flags: int

    @property
    def writable(self) -> bool:
        return self.flags & os.O_ACCMODE != os.O_RDONLY


class SectorOperations(mfusepy.Operations):
    """Each method is one kernel request; :func:`errno_boundary` maps every failure."""

    use_ns = True  # times in integer nanoseconds

    def __init__(
        self,
        client: Client,
        fsname: str = "sector",
        attr_timeout: float = DEFAULT_TIMEOUTS["attr_timeout"],
        clock: Clock = SYSTEM,
    ):
        self.client = client
        self.fsname = fsname
        self.clock = clock
        self.files = OpenFiles()
        #: Attributes of files this mount committed and has closed (see ``getattr``).
        self.recent: RecentCommits[Attributes] = RecentCommits(attr_timeout, clock)
        self.handles: dict[int, Handle] = {}
        self._handle_ids = itertools.count(1)
        self._handles_lock = threading.Lock()
        #: The version whose pages the kernel may still cache, by path (see ``open``).
        self._cached_versions: dict[str, int] = {}
        self.uid, self.gid = os.getuid(), os.getgid()
        #: The kernel has sent ``init``: the mount exists.
        self.started = False
        #: Set with ``started``, for a thread waiting to use the mount.
        self.mounted = threading.Event()
        #: What a directory on the way to the user's roots shows (see ``leads_to``):
        #: it may be passed through and listed, and is as old as the mount.
        self._on_the_way = Attributes(stat.S_IFDIR | 0o555, 0, time.time_ns())

    # -- attributes -----------------------------------------------------------

    def _attrs(self, path: str, isdir: bool, size: int, mtime: float) -> Attributes:
        """``stat`` of one entry; its mode shows what the Sector user may do there."""
        return Attributes(self._mode(path, isdir), 0 if isdir else size, _nanoseconds(mtime))

    def _mode(self, path: str, isdir: bool) -> int:
        """Type and permission bits from the user's Sector rights (the login told us
        them): rw where it may write, r where it may only read, nothing elsewhere.

        A write the master would refuse is refused before it is asked: by the
        kernel from these bits with ``-o allow_other`` (``default_permissions``,
        ``root`` excepted), else by :meth:`access` and the write opens.
        """
        kind, bits = (stat.S_IFDIR, 0o755) if isdir else (stat.S_IFREG, 0o644)
        rights = self.client.rights
        if rights.can_write(path):
            return kind | bits
        return kind | (bits & ~0o222 if rights.can_read(path) else 0)

    def _open_attrs(self, entry: OpenFile) -> Attributes:
        return self._attrs(entry.path, False, entry.size, entry.mtime)

    @errno_boundary
    def getattr(self, path: str, fh: Any = None) -> Attributes:
        """From the master, unless this mount knows better: a file it has open with
        changes staged, or one it committed within ``attr_timeout``
        (:class:`RecentCommits` - the kernel asks again after every write)."""
        entry = self._handle(fh).file if fh is not None else self.files.get(path)
        if entry is not None and not entry.detached:
            if entry.staged or self.recent.fresh(entry.committed_at):
                return self._open_attrs(entry)
        elif entry is None and (known := self.recent.get(path)) is not None:
            return known
        if self.client.rights.leads_to(path):
            return self._on_the_way
        found = self.client.stat(path)
        return self._attrs(path, found.isdir, found.size, found.timestamp)

    @errno_boundary
    def access(self, path: str, amode: int) -> int:
        """``access(2)`` from the bits :meth:`getattr` shows, which come from the user's
        rights: no master round trip, except to tell a file from a directory for
        ``X_OK``. (With ``default_permissions`` the kernel answers it itself.)"""
        if amode & os.X_OK:
            mode = self.getattr(path).mode
        elif self.client.rights.leads_to(path):
            mode = self._on_the_way.mode
        else:
            mode = self._mode(path, True)  # a file's bits are the same minus the x bits
        wanted = (
            (0o444 if amode & os.R_OK else 0)
            | (0o222 if amode & os.W_OK else 0)
            | (0o111 if amode & os.X_OK else 0)
        )
        if mode & wanted & 0o700 != wanted & 0o700:
            raise MountError(errno.EACCES)
        return 0

    def _check_writable(self, path: str) -> None:
        """EACCES now for a write open where the user may not write: the master would
        refuse it only at the first write (see ``_open_entry``)."""
        if not self.client.rights.can_write(path):
            raise MountError(errno.EACCES, f"{path}: no write permission")

    @errno_boundary
    def readdir(self, path: str, fh: int) -> list[tuple[str, Attributes]]:
        """The directory's entries with their attributes, from one ``ls`` request.

        Where the user may write the directory it may write everything in it
        (its rights are roots and what lies below them), so the modes are worked
        out once, not per entry: profiled, checking the rights of each of 2,000
        entries took longer than the ``ls`` itself.
        """
        if self.client.rights.leads_to(path):
            return self._readdir_on_the_way(path)
        inherited = self.client.rights.can_write(path)
        modes = {True: self._mode(path, True), False: self._mode(path, False)}
        listed: dict[str, Attributes] = {}
        for entry in self.client.ls(path):
            isdir = entry.isdir
            mode = modes[isdir] if inherited else self._mode(join(path, entry.name), isdir)
            size = 0 if isdir else entry.size
            listed[entry.name] = Attributes(mode, size, _nanoseconds(entry.timestamp))
        for name, staged in self.files.in_directory(path):
            if staged.staged and not staged.detached:  # ours, newer than the master knows
                listed[name] = self._open_attrs(staged)
        # libfuse gives "." and ".." no inode of its own in readdirplus; without one
        # (0) programs skip them as deleted entries.
        here = Attributes(modes[True], 0, 0, FUSE_UNKNOWN_INO)
        return [(".", here), ("..", here), *listed.items()]

    def _readdir_on_the_way(self, path: str) -> list[tuple[str, Attributes]]:
        """A directory the user may not read but that leads to its roots (``/`` for a
        user who may read ``/home/alice``): only the way there is shown, as the
        dashboard shows it, and the master is asked about the roots alone."""
        listed: list[tuple[str, Attributes]] = [(".", self._on_the_way), ("..", self._on_the_way)]
        for name in self.client.rights.leads_to(path):
            inside = join(path, name)
            if self.client.rights.can_read(inside):  # one of the roots: as it really is
                try:
                    found = self.client.stat(inside)
                except FileNotFoundError:
                    continue
                attrs = self._attrs(inside, found.isdir, found.size, found.timestamp)
            else:
                attrs = self._on_the_way
            listed.append((name, attrs))
        return listed

    @errno_boundary
    def statfs(self, path: str) -> dict[str, int]:
        """The cluster's capacity as the master counts it (each file system once), as
        ``sector df`` shows it."""
        info = self.client.sysinfo()
        total = int(info["capacity"]["total"]) // STATFS_BLOCK
        free = int(info["capacity"]["free"]) // STATFS_BLOCK
        master = info["master"]
        used_entries = int(master["files"]) + int(master["dirs"])
        return {
            "f_bsize": BLOCK_SIZE,
            "f_frsize": STATFS_BLOCK,
            "f_blocks": total,
            "f_bfree": free,
            "f_bavail": free,
            # Sector sets no limit on the number of files; report plenty left.
            "f_files": used_entries + 2**32,
            "f_ffree": 2**32,
            "f_favail": 2**32,
            "f_namemax": 255,
        }

    # Sector keeps neither modes nor owners (see "What does not work" in the README):
    # accept the calls so cp -p, rsync -a and tar x do their work.
    @errno_boundary
    def chmod(self, path: str, mode: int) -> int:
        return 0

    @errno_boundary
    def chown(self, path: str, uid: int, gid: int) -> int:
        return 0

    @errno_boundary
    def utimens(self, path: str, times: Any = None) -> int:
        """The modification time, kept by the master; access times are not kept.

        A file with staged changes gets it when they are committed (the commit
        would otherwise set its own time over it).
        """
        mtime_ns = _requested_mtime(times)
        if mtime_ns is None:
            return 0
        mtime = mtime_ns // 10**9 + mtime_ns % 10**9 / 1e9  # (mtime_ns / 1e9 loses digits)
        entry = self.files.get(path)
        if entry is None or not entry.set_mtime_after_commit(mtime):
            self.client.set_mtime(path, mtime)
            self.recent.forget(path)
            if entry is not None:
                entry.committed_at = None  # its time is the master's now, not the commit's
        return 0

    # -- namespace -------------------------------------------------------------

    @errno_boundary
    def mkdir(self, path: str, mode: int) -> int:
        self.client.mkdir(path)
        return 0

    @errno_boundary
    def rmdir(self, path: str) -> int:
        self.client.rm(path, recursive=False)
        return 0

    @errno_boundary
    def unlink(self, path: str) -> int:
        entry = self.files.forget(path)
        if entry is not None:
            created = entry.created
            entry.detach()
            if created:  # only ever staged here: the master never knew it
                return 0
        self.client.rm(path, recursive=False)
        self._cached_versions.pop(path, None)
        self.recent.forget(path)
        return 0

    @errno_boundary
    def rename(self, old: str, new: str, flags: int = 0) -> int:
        """One ``move`` in the master, replacing an existing ``new`` atomically as
        ``rename(2)`` does (unless ``RENAME_NOREPLACE``).

        Files created here and not yet committed are committed first: until
        then the master does not know them by any name.
        """
        if flags & RENAME_EXCHANGE:
            raise MountError(errno.EINVAL, "Sector cannot exchange two paths")
        if old == new:
            return 0
        for entry in self.files.under(old):
            if entry.created:
                entry.commit()
        replace = not flags & RENAME_NOREPLACE
        try:
            self.client.move(old, new, overwrite=replace)
        except BlockingIOError:
            # Busy: perhaps only because this mount is writing the file being
            # replaced - its staged version is bound for the bin either way.
            own = self.files.get(new)
            if not replace or own is None or own.writer is None:
                raise
            own.detach()
            self.client.move(old, new, overwrite=True)
        replaced = self.files.forget(new)
        if replaced is not None:
            replaced.detach()
        self.files.moved(old, new)
        self._cached_versions.pop(old, None)
        self._cached_versions.pop(new, None)
        self.recent.forget_tree(old)
        self.recent.forget_tree(new)
        return 0

    # -- files -------------------------------------------------------------------

    def _handle(self, fi: Any) -> Handle:
        return self.handles[fi.fh if not isinstance(fi, int) else fi]

    def _new_handle(self, fi: Any, entry: OpenFile) -> None:
        with self._handles_lock:
            fh = next(self._handle_ids)
            self.handles[fh] = Handle(entry, fi.flags)
        fi.fh = fh

    @errno_boundary
    def create(self, path: str, mode: int, fi: Any) -> int:
        self._check_writable(path)
        created: list[OpenFile] = []

        def make() -> OpenFile:
            created.append(OpenFile(self.client, path, clock=self.clock))
            return created[0]

        entry = self.files.acquire(path, make)
        self.recent.forget(path)  # the open file answers for it now
        try:
            if created or entry.detached:
                entry.create(exclusive=bool(fi.flags & os.O_EXCL))
            else:  # O_CREAT on a file we already hold open: an ordinary open
                self._open_entry(entry, fi)
        except BaseException:
            self._drop(entry)
            raise
        self._new_handle(fi, entry)
        return 0

    @errno_boundary
    def open(self, path: str, fi: Any) -> int:
        if fi.flags & os.O_ACCMODE != os.O_RDONLY:
            self._check_writable(path)
        entry = self.files.acquire(path, lambda: OpenFile(self.client, path, clock=self.clock))
        self.recent.forget(path)  # the master says what is current; the open file keeps it
        try:
            self._open_entry(entry, fi)
        except BaseException:
            self._drop(entry)
            raise
        self._new_handle(fi, entry)
        return 0

    def _open_entry(self, entry: OpenFile, fi: Any) -> None:
        """Open for ``fi.flags``; decides whether the kernel may keep cached pages."""
        access = fi.flags & os.O_ACCMODE
        if fi.flags & os.O_TRUNC and access != os.O_RDONLY:
            entry.truncate(0)
        elif access == os.O_WRONLY:
            pass  # the write session starts at the first write (EBUSY shows there)
        else:
            version = entry.open_reader()
            # close-to-open: the master named the current version; pages cached
            # from that same version are still right, older ones are dropped.
            if self._cached_versions.get(entry.path) == version and not entry.staged:
                fi.keep_cache = 1
            self._remember_version(entry.path, version)

    @errno_boundary
    def read(self, path: str, buffer: memoryview, offset: int, fi: Any) -> int:
        """Fill ``buffer`` (libfuse's own, see :meth:`SectorFUSE.read`); the count."""
        return self._handle(fi).file.read_into(offset, buffer)

    @errno_boundary
    def write(self, path: str, data: memoryview, offset: int, fi: Any) -> int:
        """``data`` is libfuse's buffer, valid only until this returns: the open file
        copies or sends it before then (see :meth:`SectorFUSE.write`)."""
        handle = self._handle(fi)
        if handle.flags & os.O_APPEND:
            return handle.file.append(data)
        return handle.file.write(offset, data)

    @errno_boundary
    def truncate(self, path: str, length: int, fi: Any = None) -> int:
        if fi is not None:  # ftruncate: staged with the descriptor's other writes
            self._handle(fi).file.truncate(length)
            return 0
        self._check_writable(path)
        entry = self.files.acquire(
            path, lambda: OpenFile(self.client, path, self.client.stat(path), self.clock)
        )
        try:
            entry.truncate(length)
            entry.commit()  # truncate(2) by name takes effect at once
        finally:
            self._drop(entry)
        return 0

    @errno_boundary
    def flush(self, path: str, fi: Any) -> int:
        """Every ``close()``: publish the staged version so other clients see it now."""
        handle = self._handle(fi)
        if handle.writable:
            self._commit(handle.file)
        return 0

    @errno_boundary
    def fsync(self, path: str, datasync: int, fi: Any) -> int:
        self._commit(self._handle(fi).file)
        return 0

    def _commit(self, entry: OpenFile) -> None:
        entry.commit()
        self._remember_version(entry.path, entry.version)

    def _remember_version(self, path: str, version: int) -> None:
        if len(self._cached_versions) >= REMEMBERED_VERSIONS:
            self._cached_versions.clear()  # forgetting only costs a page-cache refill
        self._cached_versions[path] = version

    @errno_boundary
    def release(self, path: str, fi: Any) -> int:
        with self._handles_lock:
            handle = self.handles.pop(fi.fh)
        self._drop(handle.file)
        return 0

    def _drop(self, entry: OpenFile) -> None:
        """One descriptor fewer; after the last, close the file and remember what its
        last commit through this mount made of it (:class:`RecentCommits`)."""
        if self.files.release(entry):
            try:
                entry.close()
            except Exception as exc:  # nobody is left to tell but the log
                log.error("%s: staged changes lost at release: %s", entry.path, exc)
                return
            if entry.committed_at is not None and not entry.detached:
                self.recent.put(entry.path, self._open_attrs(entry), entry.committed_at)

    # -- lifecycle ------------------------------------------------------------------

    def init_with_config(self, conn: Any, config: Any) -> None:
        self.started = True
        self.mounted.set()
        if conn is not None:
            log.info(
                "kernel connection: protocol %d.%d, max_write %d, max_read %d, "
                "max_readahead %d, capable %#x, want %#x",
                conn.proto_major,
                conn.proto_minor,
                conn.max_write,
                conn.max_read,
                conn.max_readahead,
                conn.capable,
                conn.want,
            )

    def destroy(self, path: str) -> None:
        """Unmounting: publish what is still staged, then log out."""
        for handle in list(self.handles.values()):
            self._drop(handle.file)
        self.handles.clear()
        self.client.close()


def _requested_mtime(times: tuple[int, int] | None) -> int | None:
    """The mtime ``utimens`` asks for, in ns: None to leave it (UTIME_OMIT), now for UTIME_NOW.

    libfuse hands the special values over as a timespec of 0 s and that many ns.
    """
    if times is None:
        return time.time_ns()
    mtime = times[1]
    if mtime == UTIME_OMIT:
        return None
    return time.time_ns() if mtime == UTIME_NOW else mtime


class SectorFUSE(mfusepy.FUSE):
    """mfusepy's binding plus what the high-level API left out.

    - ``readdir`` answers ``readdirplus`` with full attributes
      (``FUSE_FILL_DIR_PLUS``): the kernel then needs no ``getattr`` per entry
      after a listing (mfusepy only passes the file type);
    - ``rename`` passes the flags (``RENAME_NOREPLACE``/``RENAME_EXCHANGE``)
      and ``truncate`` the open file (``ftruncate``) that mfusepy drops;
    - ``read`` and ``write`` hand the operation libfuse's own buffer instead of a
      copy (mfusepy copies every write into ``bytes`` and every read out of one:
      profiled ``cp`` into the mount, that copy was a sixth of the mount's time).
    """

    def read(self, path, buf, size, offset, fip):  # noqa: ANN001
        return self.operations.read(self._path(path), _view(buf, size), offset, fip.contents)

    def write(self, path, buf, size, offset, fip):  # noqa: ANN001
        return self.operations.write(self._path(path), _view(buf, size), offset, fip.contents)

    def _path(self, path: bytes | None) -> str | None:
        return None if path is None else path.decode(self.encoding, self.errors)

    def getattr_fuse_3(self, path, buf, fip):  # noqa: ANN001
        attrs = self.operations.getattr(self._path(path), fip.contents if fip else None)
        self._fill(buf.contents, attrs)
        return 0

    def readdir_fuse_3(self, path, buf, filler, offset, fip, flags):  # noqa: ANN001
        entries = self.operations.readdir(path.decode(self.encoding, self.errors), fip.contents.fh)
        plus = FUSE_FILL_DIR_PLUS if flags & FUSE_READDIR_PLUS else 0
        st = mfusepy.c_stat()
        for name, attrs in entries:
            self._fill(st, attrs)
            if filler(buf, name.encode(self.encoding, self.errors), st, 0, plus) != 0:
                break
        return 0

    def _fill(self, st: mfusepy.c_stat, attrs: Attributes) -> None:
        """``attrs`` into libfuse's ``struct stat``, with one :data:`STAT_LAYOUT` pack:
        profiled, setting the ctypes fields one by one took 1.6 us an entry (a
        third of a listing's time), mfusepy's dict-driven ``set_st_attrs`` 2.8,
        this 0.3."""
        seconds, nanoseconds = divmod(attrs.mtime_ns, 10**9)
        size = attrs.size
        STAT_LAYOUT.pack_into(
            st,
            0,
            attrs.ino,
            2 if stat.S_ISDIR(attrs.mode) else 1,
            attrs.mode,
            self.operations.uid,
            self.operations.gid,
            size,
            BLOCK_SIZE,
            (size + 511) // 512,
            *(seconds, nanoseconds) * 3,
        )

    def truncate_fuse_3(self, path, length, fip):  # noqa: ANN001
        return self.operations.truncate(
            None if path is None else path.decode(self.encoding, self.errors),
            length,
            fip.contents if fip else None,
        )

    def rename_fuse_3(self, old, new, flags):  # noqa: ANN001
        return self.operations.rename(
            old.decode(self.encoding, self.errors), new.decode(self.encoding, self.errors), flags
        )


def _nanoseconds(mtime: float) -> int:
    seconds = math.floor(mtime)  # exact: mtime * 1e9 would round away the nanoseconds
    return seconds * 10**9 + round((mtime - seconds) * 1e9)


def _view(buf: Any, size: int) -> memoryview:
    """``size`` bytes of C memory at ``buf`` as a writable view, without copying them.

    Valid only while libfuse lends that memory (until the operation returns).
    """
    if size <= 0:
        return memoryview(bytearray())
    address = ctypes.cast(buf, ctypes.c_void_p).value
    return memoryview((ctypes.c_ubyte * size).from_address(address)).cast("B")


def _stat_layout() -> struct.Struct:
    """A ``struct`` that packs, into libfuse's ``struct stat`` (mfusepy's ``c_stat``, whose
    layout differs between architectures), the fields :meth:`SectorFUSE._fill` sets in
    :data:`STAT_FIELDS` order, zeroing every byte in between.

    Worked out from the ctypes field offsets, so it follows the platform's layout.
    """
    where: dict[str, tuple[int, int]] = {}

    def walk(kind: Any, base: int, prefix: str) -> None:
        for name, field_type in kind._fields_:
            offset = getattr(kind, name).offset + base
            if isinstance(field_type, type) and issubclass(field_type, ctypes.Structure):
                walk(field_type, offset, f"{prefix}{name}.")
            else:
                where[prefix + name] = (offset, ctypes.sizeof(field_type))

    walk(mfusepy.c_stat, 0, "")
    layout, position = "=", 0
    for name in STAT_FIELDS:
        offset, size = where[name]
        layout += "x" * (offset - position) + {4: "I", 8: "q"}[size]
        position = offset + size
    layout += "x" * (ctypes.sizeof(mfusepy.c_stat) - position)
    return struct.Struct(layout)


STAT_FIELDS = (
    "st_ino",
    "st_nlink",
    "st_mode",
    "st_uid",
    "st_gid",
    "st_size",
    "st_blksize",
    "st_blocks",
    *(f"st_{kind}timespec.{part}" for kind in "amc" for part in ("tv_sec", "tv_nsec")),
)
STAT_LAYOUT = _stat_layout()


__all__ = ["SectorFUSE", "SectorOperations"]
