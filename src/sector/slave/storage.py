"""A slave's objects on its local disk.

Each committed file version is one regular file,
``objects/<shard>/<oid>.<version>.<checksum>``: the checksum lives in the name,
so it is committed by the same rename that publishes the bytes and no index
can disagree with the data. Writes go to ``tmp/`` first and become visible
only by ``fsync`` + ``rename`` + ``fsync`` of the folder, so a killed writer
or a crashed slave never leaves a half-written object where a reader can find
it. Object names come only from integers inside tokens the master signed,
never from client paths, so nothing a client sends can reach outside the
data directory.

Beside the objects, ``paths.log`` records the Sector path each object was
written under (or last heard of from the master), one JSON line per event,
so that a lost namespace can be rebuilt from the slaves (``sector fsck
--adopt``). It is advice, not truth: written without fsync (a crash may lose
its last lines, and the object then comes back under ``/lost+found``), and
compacted when it holds many more lines than objects. ``cluster.id`` names the
cluster whose master this slave serves; it never serves another.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import E_UNKNOWN, NoDiskError, SectorError, SectorNotFoundError
from ..protocol.checksum import CHUNK as COPY_CHUNK
from ..protocol.checksum import new_hasher
from ..protocol.checksum import of_file as hash_file

CLUSTER_FILE = "cluster.id"
PATHS_FILE = "paths.log"


class ChecksumMismatch(Exception):
    """Bytes received for an object do not hash to the checksum they must have."""


def disk_error(exc: OSError) -> SectorError:
    """What a failed disk operation means to the peer."""
    if isinstance(exc, FileNotFoundError):
        return SectorNotFoundError(str(exc))
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoDiskError("slave disk is full")
    return SectorError(f"slave storage error: {exc}", code=E_UNKNOWN)


def filesystem_id(path: Path) -> str:
    """``host/st_dev/f_fsid`` of the file system holding ``path``.

    ``st_dev`` tells file systems apart on one machine, ``f_fsid`` (derived from
    the file system's UUID on ext4, XFS, btrfs) tells them apart across
    re-mounts; neither is unique across machines (two hosts' ``/dev/sda1``
    share an ``st_dev``, and some file systems report an ``f_fsid`` of 0), so
    the host name comes first. A disk shared over the network by slaves on
    different machines is therefore still counted once per machine: an
    overcount, never an undercount.
    """
    return f"{socket.gethostname()}/{os.stat(path).st_dev:x}/{os.statvfs(path).f_fsid:x}"


@dataclass
class StoredObject:
    oid: int
    version: int
    checksum: str
    path: Path
    size: int


class Storage:
    def __init__(self, data_dir: Path):
        self.root = data_dir
        self.objects_dir = data_dir / "objects"
        self.tmp_dir = data_dir / "tmp"
        self.objects_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self.tmp_dir.mkdir()
        self.slave_id = self._load_id()
        self.filesystem = filesystem_id(data_dir)
        self.index: dict[tuple[int, int], StoredObject] = {}
        self.stored_bytes = 0
        self._scan()
        self.paths: dict[tuple[int, int], str] = {}
        self._path_lines = 0
        self._load_paths()

    # --- the cluster we belong to -------------------------------------------------------

    @property
    def cluster_id(self) -> str:
        """The cluster whose master we serve; empty until we first registered."""
        try:
            return (self.root / CLUSTER_FILE).read_text().strip()
        except FileNotFoundError:
            return ""

    def join_cluster(self, cluster_id: str) -> None:
        """Belong to ``cluster_id`` from now on (written once, at the first registration)."""
        temp = self.root / (CLUSTER_FILE + ".tmp")
        temp.write_text(cluster_id + "\n")
        os.replace(temp, self.root / CLUSTER_FILE)
        _fsync_dir(self.root)

    # --- where each object lives in the namespace (advice for --adopt) ------------------

    def _load_paths(self) -> None:
        journal = self.root / PATHS_FILE
        try:
            with open(journal, encoding="utf-8") as lines:
                for line in lines:
                    self._path_lines += 1
                    try:
                        oid, version, path = json.loads(line)
                    except (ValueError, TypeError):
                        continue  # a line torn by a crash
                    if (oid, version) in self.index:
                        self.paths[(oid, version)] = path
        except FileNotFoundError:
            pass
        if self._path_lines > 2 * len(self.paths) + 1000:
            self._rewrite_paths()

    def note_path(self, oid: int, version: int, path: str) -> None:
        """Remember the Sector path of an object we hold (or are about to)."""
        if not path or self.paths.get((oid, version)) == path:
            return
        self.paths[(oid, version)] = path
        with open(self.root / PATHS_FILE, "a", encoding="utf-8") as journal:
            journal.write(json.dumps([oid, version, path]) + "\n")
        self._path_lines += 1
        if self._path_lines > 2 * len(self.paths) + 1000:
            self._rewrite_paths()

    def _rewrite_paths(self) -> None:
        temp = self.root / (PATHS_FILE + ".tmp")
        with open(temp, "w", encoding="utf-8") as journal:
            for (oid, version), path in self.paths.items():
                journal.write(json.dumps([oid, version, path]) + "\n")
        os.replace(temp, self.root / PATHS_FILE)
        self._path_lines = len(self.paths)

    def _load_id(self) -> str:
        """A stable identity, kept across restarts so the master recognises us."""
        path = self.root / "slave.id"
        try:
            text = path.read_text().strip()
            if text:
                return text
        except FileNotFoundError:
            pass
        slave_id = uuid.uuid4().hex[:12]
        path.write_text(slave_id + "\n")
        return slave_id

    def _scan(self) -> None:
        for shard in self.objects_dir.iterdir():
            if not shard.is_dir():
                continue
            for entry in os.scandir(shard):
                parsed = _parse_name(entry.name)
                if parsed is None:
                    continue
                oid, version, checksum = parsed
                size = entry.stat().st_size
                self.index[(oid, version)] = StoredObject(
                    oid, version, checksum, Path(entry.path), size
                )
                self.stored_bytes += size

    def inventory(self) -> list[list]:
        """[oid, version, size, checksum, age, path] for everything stored: what we report.

        Each file is looked at again, so one that vanished from the disk behind our
        back is not claimed (and the master re-replicates it rather than trusting us).
        ``age`` is seconds since it was stored, by this machine's clock.
        """
        items = []
        now = time.time()
        for key, obj in list(self.index.items()):
            try:
                info = obj.path.stat()
            except FileNotFoundError:
                del self.index[key]
                self.paths.pop(key, None)
                self.stored_bytes -= obj.size
                continue
            obj.size = info.st_size
            age = max(0.0, now - info.st_mtime)
            items.append(
                [obj.oid, obj.version, obj.size, obj.checksum, age, self.paths.get(key, "")]
            )
        return items

    def find(self, oid: int, version: int) -> StoredObject | None:
        return self.index.get((oid, version))

    def usage(self) -> dict[str, int | str]:
        """Disk and store figures for the master; ``fs`` names the file system under them,
        so slaves sharing a disk have their capacity counted once."""
        disk = shutil.disk_usage(self.root)
        return {
            "total": disk.total,
            "free": disk.free,
            "stored": self.stored_bytes,
            "files": len(self.index),
            "fs": self.filesystem,
        }

    def new_temp(self, oid: int, version: int) -> Path:
        return self.tmp_dir / f"{oid}.{version}.{uuid.uuid4().hex[:8]}"

    def publish(self, temp: Path, oid: int, version: int, checksum: str, size: int) -> StoredObject:
        """Atomically make ``temp`` (already fsynced) the object (oid, version)."""
        shard = self.objects_dir / f"{oid % 256:02x}"
        if not shard.is_dir():
            shard.mkdir(exist_ok=True)
            _fsync_dir(self.objects_dir)
        final = shard / f"{oid}.{version}.{checksum}"
        previous = self.index.get((oid, version))
        os.replace(temp, final)
        _fsync_dir(shard)
        if previous is not None:  # republished: readers never saw a gap, now drop the old
            self._unlink(previous, keep=previous.path == final)
        obj = StoredObject(oid, version, checksum, final, size)
        self.index[(oid, version)] = obj
        self.stored_bytes += size
        return obj

    def delete(self, oid: int, version: int) -> bool:
        obj = self.index.pop((oid, version), None)
        self.paths.pop((oid, version), None)
        if obj is None:
            return False
        self._unlink(obj)
        return True

    def _unlink(self, obj: StoredObject, keep: bool = False) -> None:
        """Forget ``obj``'s bytes; with ``keep`` its path now holds newer bytes to keep."""
        try:
            self.stored_bytes -= obj.size
            if not keep:
                obj.path.unlink()
        except FileNotFoundError:
            pass

    def copy(self, src: tuple[int, int], dst: tuple[int, int]) -> tuple[int, str]:
        """Copy an object locally (for ``cp``), hashing in the same pass."""
        source = self.find(*src)
        if source is None:
            raise FileNotFoundError(f"object {src[0]}.{src[1]} is not stored here")
        temp = self.new_temp(*dst)
        hasher = new_hasher()
        size = 0
        try:
            with open(source.path, "rb") as reader, open(temp, "wb") as writer:
                while chunk := reader.read(COPY_CHUNK):
                    hasher.update(chunk)
                    writer.write(chunk)
                    size += len(chunk)
                writer.flush()
                os.fsync(writer.fileno())
            checksum = hasher.hexdigest()
            self.publish(temp, dst[0], dst[1], checksum, size)
        finally:
            temp.unlink(missing_ok=True)
        return size, checksum

    def verify(self, oid: int, version: int) -> bool | None:
        """Re-read an object and compare with its checksum; None when it is missing."""
        obj = self.find(oid, version)
        if obj is None:
            return None
        try:
            return hash_file(obj.path) == obj.checksum
        except FileNotFoundError:
            return None


#: Streamed writes are handed to writeback every this many bytes (see _start_writeback).
WRITEBACK_STEP = 32 * 1024 * 1024
WRITEBACK_LOOKBACK = 3
#: Chunks written with O_DIRECT must start and end on this boundary (a page: safe
#: everywhere) and be at least DIRECT_MIN long (small writes are cheaper buffered).
DIRECT_ALIGN = 4096
DIRECT_MIN = 1024 * 1024
O_DIRECT = getattr(os, "O_DIRECT", 0)


@dataclass
class WriteSession:
    """One new object being written: bytes land in a temp file, hashed as they pass.

    The hash stays valid while writes arrive in order from the start, the
    common case; any out-of-order write makes us re-read the file at commit.
    """

    storage: Storage
    oid: int
    version: int
    lease: int
    temp: Path
    fd: int = -1
    size: int = 0
    hashed: int = 0
    in_order: bool = True
    hasher: object = field(default_factory=new_hasher)
    advised: int = 0
    direct: bool = False  # O_DIRECT is set on fd (see write_at)
    direct_failed: bool = False

    @classmethod
    def begin(cls, storage: Storage, oid: int, version: int, lease: int, base: int) -> WriteSession:
        session = cls(storage, oid, version, lease, storage.new_temp(oid, version))
        session.fd = os.open(session.temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        if base:
            source = storage.find(oid, base)
            if source is None:
                session.discard()
                raise FileNotFoundError(f"base version {oid}.{base} is not stored here")
            with open(source.path, "rb") as reader:
                while chunk := reader.read(COPY_CHUNK):
                    session.write_at(session.size, memoryview(chunk))
        return session

    def write_at(self, offset: int, data: memoryview, aligned: bool = False) -> None:
        """Write ``data`` at ``offset``, hashing it when it continues the stream in order.

        ``aligned`` says ``data`` starts on a page boundary (the server's mmap
        buffers): a large, block-aligned chunk then bypasses the page cache with
        O_DIRECT, which spares the CPU copying into and allocating page-cache
        pages (the client's downloads do the same; see ``client/file.py``).
        Everything else, and file systems that refuse O_DIRECT, stay buffered.
        """
        direct = (
            aligned
            and not self.direct_failed
            and len(data) >= DIRECT_MIN
            and offset % DIRECT_ALIGN == 0
            and len(data) % DIRECT_ALIGN == 0
        )
        if direct != self.direct:
            self._set_direct(direct)
        try:
            written = os.pwrite(self.fd, data, offset)
        except OSError as exc:
            if not self.direct or exc.errno != errno.EINVAL:
                raise
            self.direct_failed = True  # accepted at fcntl, refused at write: stay buffered
            self._set_direct(False)
            written = os.pwrite(self.fd, data, offset)
        while written < len(data):
            written += os.pwrite(self.fd, data[written:], offset + written)
        if self.in_order and offset == self.hashed:
            self.hasher.update(data)  # type: ignore[attr-defined]
            self.hashed += len(data)
            if self.direct:
                self.advised = self.hashed  # nothing of ours sits in the page cache
            elif self.hashed - self.advised >= WRITEBACK_STEP:
                self._start_writeback()
        else:
            self.in_order = False
        self.size = max(self.size, offset + len(data))

    def _start_writeback(self) -> None:
        """Hand what streamed in to the kernel's writeback now, not at the final fsync.

        ``POSIX_FADV_DONTNEED`` starts writeback of the new range and drops the pages
        of earlier ranges already written (it skips pages still in flight, hence the
        look back), so a large upload recycles a few MB of page cache instead of
        allocating fresh pages for every byte: in ``bench/`` a 1 GiB write + fsync
        went from 0.3-1.3 GB/s (varying with the page cache's state) to 2.1 GB/s.
        """
        low = max(0, self.advised - WRITEBACK_LOOKBACK * WRITEBACK_STEP)
        try:
            os.posix_fadvise(self.fd, low, self.hashed - low, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass
        self.advised = self.hashed

    def _set_direct(self, on: bool) -> None:
        try:
            flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
            fcntl.fcntl(self.fd, fcntl.F_SETFL, flags | O_DIRECT if on else flags & ~O_DIRECT)
        except OSError:
            self.direct_failed = True
            return
        self.direct = on

    def read_at(self, offset: int, length: int) -> bytes:
        if self.direct:  # unaligned reads need the page cache
            self._set_direct(False)
        return os.pread(self.fd, max(0, min(length, self.size - offset)), offset)

    def commit(self, expected: str | None = None) -> tuple[int, str]:
        """fsync, publish, and return (size, checksum).

        With ``expected``, bytes whose checksum differs are never published:
        :class:`ChecksumMismatch` is raised and the session stays to be discarded.
        """
        if self.in_order and self.hashed == self.size:
            checksum = self.hasher.hexdigest()  # type: ignore[attr-defined]
        else:
            checksum = hash_file(self.temp, self.size)
        if expected is not None and checksum != expected:
            raise ChecksumMismatch(f"received bytes hash to {checksum}, not {expected}")
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1
        self.storage.publish(self.temp, self.oid, self.version, checksum, self.size)
        return self.size, checksum

    def discard(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.temp.unlink(missing_ok=True)


def _parse_name(name: str) -> tuple[int, int, str] | None:
    parts = name.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), int(parts[1]), parts[2]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
