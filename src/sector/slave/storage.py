"""A slave's objects on its local disk, each with the sums of its blocks beside it.

Each committed file version is one regular file,
``objects/<shard>/<oid>.<version>.<checksum>``, and its block sums
(:mod:`sector.protocol.checksum`) are the file of the same name under
``sums/`` (a tree of its own, so that ``objects/`` holds objects only). The
checksum lives in the name, so it is committed by the same
rename that publishes the bytes and no index can disagree with the data.
Writes go to ``tmp/`` first and are renamed into place whole, and a commit
is acknowledged only once the object's bytes and its folder are fsynced, so a
killed writer never leaves a half-written object where a reader can find it,
and a crashed machine at most leaves a version nobody was told of (a client's
new version is renamed before the flush, see :meth:`Storage.commit_together`):
its bytes fail the checksum in its name, and the master collects it. Object names come only from
integers inside tokens the master signed, never from client paths, so nothing
a client sends can reach outside the data directory.

The sums file is renamed into place *before* the object, so the object's
rename stays the one commit point; and since the file checksum is the hash of
the block sums, a sums file proves itself against the name. Whatever a crash
leaves is therefore put right at the next start (or first use): sums without
their object are deleted, an object without sums (or with sums that do not
hash to its name) has them rebuilt from its bytes, and an object whose bytes
do not match its name is quarantined. That is why sums get no ``fsync`` of
their own: only the object's bytes and its folder are flushed before a commit
is acknowledged, and commits arriving together share those flushes
(:meth:`Storage.commit_together`, driven by :mod:`.commits`).

An object of one block (64 KiB or less: most small files) has no sums file at
all: its one sum is the hash of its bytes, made as they arrive and kept in
memory, and made again from the bytes at its first read after a restart (a
read of that one block, which the reader wanted anyway). The file would only
repeat what the bytes say, and creating, writing and renaming it cost a small
file's commit about a third of the slave's CPU (``python -m bench.cpu``-style
paired runs: 0.9-1.3 ms against 1.45-1.65 ms per create, batch creates 1,000-1,265/s
against 750-850/s).

Quarantine (``quarantine/``) is where damaged objects go: moved aside, never
served again, never reported in the inventory, kept for a person to look at
(delete them freely). :attr:`Storage.quarantined` lists what was moved there
since the master was last told.

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
import functools
import json
import logging
import mmap
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ..clock import SYSTEM, Clock
from ..errors import E_UNKNOWN, NoDiskError, SectorError, SectorNotFoundError
from ..protocol.checksum import BLOCK, SUM_SIZE, BlockHasher, of_sums, sums_length
from ..protocol.checksum import CHUNK as COPY_CHUNK
from ..protocol.checksum import hash_file as _hash_file
from .writepath import WritePath

log = logging.getLogger("sector.slave")

SUMS_DIR = "sums"
SUMS_SUFFIX = ".sums"  # of a sums file outside sums/ (in tmp/ and quarantine/)
QUARANTINE_DIR = "quarantine"
#: Folders the objects (and their sums) are spread over, by object id.
SHARDS = 256
#: Objects whose sums are at most this long keep them in memory once checked
#: (a 32 MiB object's: 4 KiB), so reads of small files cost no extra open.
CACHED_SUMS = 4096
#: Bytes read at a time when an object is checked whole (``verify``, the scrub).
CHECK_CHUNK = 1024 * 1024


class DamagedObject(Exception):
    """An object's bytes do not match its checksum; it has been quarantined."""


CLUSTER_FILE = "cluster.id"
PATHS_FILE = "paths.log"


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
    #: Where its block sums are (``sums/<shard>/<the same name>``; none for an object
    #: of one block, see :func:`keeps_sums_file`).
    sums_path: Path
    #: The sums file was read and found to hash to ``checksum`` (this run).
    sums_checked: bool = False
    #: The block sums, kept once checked when short (see CACHED_SUMS).
    sums: bytes | None = None


class Storage:
    def __init__(self, data_dir: Path, clock: Clock = SYSTEM):
        self.root = data_dir
        self.clock = clock
        #: How large writes reach the disk here: measured, see :mod:`.writepath`.
        self.write_path = WritePath(direct_allowed=bool(O_DIRECT))
        self.objects_dir = data_dir / "objects"
        self.sums_dir = data_dir / SUMS_DIR
        self.tmp_dir = data_dir / "tmp"
        self.quarantine_dir = data_dir / QUARANTINE_DIR
        self.objects_dir.mkdir(parents=True, exist_ok=True)
        self.sums_dir.mkdir(exist_ok=True)
        self._make_shards()
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self.tmp_dir.mkdir()
        self.slave_id = self._load_id()
        self.filesystem = filesystem_id(data_dir)
        self.index: dict[tuple[int, int], StoredObject] = {}
        self.stored_bytes = 0
        #: (oid, version) of objects quarantined and not yet reported to the master.
        self.quarantined: list[tuple[int, int]] = []
        self._index_lock = threading.Lock()
        self._scan()
        self.paths: dict[tuple[int, int], str] = {}
        self._path_lines = 0
        self._journal: TextIO | None = None  # paths.log, open for appending once used
        self._load_paths()

    def _make_shards(self) -> None:
        """Every shard folder, made now rather than by the first object of each: that
        object's commit would otherwise wait for two more folders and two more folder
        flushes (the first 256 creates of a new slave took ~1.8 ms in the slave instead
        of ~1.0, with a stat of both folders for every object after them)."""
        for parent in (self.objects_dir, self.sums_dir):
            made = False
            for number in range(SHARDS):
                folder = parent / _shard_name(number)
                if not folder.is_dir():
                    folder.mkdir(exist_ok=True)
                    made = True
            if made:
                _fsync_dir(parent)

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
        if self._journal is None:  # kept open: opening it for each line cost ~25 us a create
            journal = self.root / PATHS_FILE
            self._journal = open(journal, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._journal.write(json.dumps([oid, version, path]) + "\n")  # a write() per line
        self._path_lines += 1
        if self._path_lines > 2 * len(self.paths) + 1000:
            self._rewrite_paths()

    def _rewrite_paths(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
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
        """Index what is stored; put right what a crash left (see the module's doc)."""
        without_sums: list[StoredObject] = []
        for shard in self.sums_dir.iterdir():
            objects = self.objects_dir / shard.name
            for entry in os.scandir(shard):
                if not (objects / entry.name).exists():
                    os.unlink(entry.path)  # its object was never published, or deleted
        for shard in self.objects_dir.iterdir():
            if not shard.is_dir():
                continue
            sums_shard = self.sums_dir / shard.name
            with_sums = set(os.listdir(sums_shard)) if sums_shard.is_dir() else set()
            for entry in os.scandir(shard):
                parsed = _parse_name(entry.name)
                if parsed is None:
                    continue
                oid, version, checksum = parsed
                size = entry.stat().st_size
                obj = StoredObject(
                    oid, version, checksum, Path(entry.path), size, sums_shard / entry.name
                )
                self.index[(oid, version)] = obj
                self.stored_bytes += size
                if entry.name not in with_sums and keeps_sums_file(size):
                    without_sums.append(obj)
        for obj in without_sums:
            try:
                self._rebuild_sums(obj)
            except DamagedObject:
                pass

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

    def publish(
        self, temp: Path, oid: int, version: int, checksum: str, size: int, sums: bytes
    ) -> StoredObject:
        """Atomically make ``temp`` (already fsynced) the object (oid, version)."""
        obj, folder = self._place(temp, oid, version, checksum, size, sums)
        _fsync_dir(folder)
        return self._indexed(obj, sums)

    def commit_together(
        self, writes: list[WriteSession]
    ) -> list[tuple[int, str] | DamagedObject | OSError]:
        """Commit several new versions with one flush of the disk for them all (group
        commit); each write's ``(size, checksum)``, or the error that failed it alone.

        Every object is renamed into place first, then its bytes and the folders
        they went into are fsynced, every one of those calls issued side by side
        so that the file system and the disk serve them with one flush (measured
        on the shared VM: a lone 1 KB file's data and folder fsynced together in
        a median 0.3-2.6 ms, one after the other 6.7-13 ms; 8 files' data 2.2 ms
        against 19 ms). Renaming before the flush is safe here because nothing
        points at these versions yet: the master records one only once this
        returns, so a crash in between leaves at most a version nobody was told
        of, whose torn bytes fail the checksum in its name and which the master
        collects as an orphan (see ``master/membership.py``). A replica copied
        in (:meth:`publish`) may replace a version readers use, and keeps the
        stricter order. Each write's ``close`` waits for the batch it is in.
        """
        outcomes: list[tuple[int, str] | DamagedObject | OSError] = []
        placed: list[tuple[int, WriteSession, StoredObject, bytes, Path]] = []
        for number, write in enumerate(writes):
            outcomes.append((write.size, ""))  # replaced below
            try:
                checksum, sums = write.seal()
                obj, folder = self._place(
                    write.temp, write.oid, write.version, checksum, write.size, sums
                )
                placed.append((number, write, obj, sums, folder))
            except (DamagedObject, OSError) as exc:
                write.discard()
                outcomes[number] = exc
        folders = sorted({folder for *_, folder in placed})
        flushes = [functools.partial(os.fsync, write.fd) for _, write, *_ in placed]
        flushes += [functools.partial(_fsync_dir, folder) for folder in folders]
        started = self.clock.monotonic()
        errors = _side_by_side(flushes)
        flushed = self.clock.monotonic() - started
        failed = dict(zip(folders, errors[len(placed) :], strict=True))
        for (number, write, obj, sums, folder), error in zip(
            placed, errors[: len(placed)], strict=True
        ):
            write.discard()  # its temp file was renamed: this closes it
            error = error or failed[folder]
            if error is None:
                self._indexed(obj, sums)
                write.durable(flushed)
                outcomes[number] = (obj.size, obj.checksum)
            else:  # never acknowledged: it must not stay where a restart would find it
                obj.path.unlink(missing_ok=True)
                obj.sums_path.unlink(missing_ok=True)
                outcomes[number] = error
        return outcomes

    def _place(
        self, temp: Path, oid: int, version: int, checksum: str, size: int, sums: bytes
    ) -> tuple[StoredObject, Path]:
        """Rename ``temp`` (fsynced) and its block sums into place; the object and the
        folder to fsync before the new version may be served.

        The sums go first, so that the object's rename is the one moment the
        new version appears; they are not fsynced: a sums file a crash lost or
        tore no longer hashes to the object's name, and is rebuilt from the
        (fsynced) bytes at the next start or first read (see the module's doc).
        That spares a flush of the disk per file (measured on the shared VM: a
        1 KB file published in a median 8-9.5 ms instead of 14-20).
        """
        shard_name = _shard_name(oid)  # the folders exist: see _make_shards
        shard, sums_shard = self.objects_dir / shard_name, self.sums_dir / shard_name
        name = f"{oid}.{version}.{checksum}"
        if keeps_sums_file(size):
            sums_temp = temp.with_name(temp.name + SUMS_SUFFIX)
            try:
                _write_all(sums_temp, sums)
                os.replace(sums_temp, sums_shard / name)
            finally:
                sums_temp.unlink(missing_ok=True)
        final = shard / name
        os.replace(temp, final)
        return StoredObject(oid, version, checksum, final, size, sums_shard / name), shard

    def _indexed(self, obj: StoredObject, sums: bytes) -> StoredObject:
        """Serve ``obj`` (renamed into place and fsynced) from now on."""
        previous = self.index.get((obj.oid, obj.version))
        if previous is not None:  # republished: readers never saw a gap, now drop the old
            self._unlink(previous, keep=previous.path == obj.path)
        obj.sums_checked = True
        if len(sums) <= CACHED_SUMS:
            obj.sums = sums
        self.index[(obj.oid, obj.version)] = obj
        self.stored_bytes += obj.size
        return obj

    def delete(self, oid: int, version: int) -> bool:
        obj = self.index.pop((oid, version), None)
        self.paths.pop((oid, version), None)
        if obj is None:
            return False
        self._unlink(obj)
        return True

    def _unlink(self, obj: StoredObject, keep: bool = False) -> None:
        """Forget ``obj``'s bytes; with ``keep`` its path now holds newer bytes to keep.

        The object goes first: sums left behind by a crash are deleted at start-up.
        """
        self.stored_bytes -= obj.size
        if keep:
            return
        for path in (obj.path, obj.sums_path):
            path.unlink(missing_ok=True)

    # --- block sums -----------------------------------------------------------------

    def sums_of(self, obj: StoredObject, first: int, count: int) -> bytes:
        """The sums of ``count`` blocks of ``obj`` from block ``first``.

        The first call for an object checks its whole sums file against its
        checksum (rebuilding it from the bytes when it does not match), so what
        is shipped to readers is what the master recorded. Raises
        :class:`DamagedObject` when the bytes themselves are bad (the object is
        then quarantined) and FileNotFoundError when it vanished.
        """
        if not obj.sums_checked:
            self._check_sums(obj)
        if obj.sums is not None:
            return obj.sums[first * SUM_SIZE : (first + count) * SUM_SIZE]
        fd = os.open(obj.sums_path, os.O_RDONLY)
        try:
            return os.pread(fd, count * SUM_SIZE, first * SUM_SIZE)
        finally:
            os.close(fd)

    def _check_sums(self, obj: StoredObject) -> None:
        if not keeps_sums_file(obj.size):  # one block: its sum is made from its bytes
            self._rebuild_sums(obj)
            return
        try:
            sums = obj.sums_path.read_bytes()
        except FileNotFoundError:
            sums = b""
        if len(sums) != sums_length(obj.size) or of_sums(sums) != obj.checksum:
            log.warning("object %d.%d: block sums do not match; rebuilding", obj.oid, obj.version)
            self._rebuild_sums(obj)
            return
        obj.sums_checked = True
        if len(sums) <= CACHED_SUMS:
            obj.sums = sums

    def _rebuild_sums(self, obj: StoredObject) -> None:
        """Sums from the object's bytes, written atomically; DamagedObject if they are bad."""
        try:
            hasher = _hash_file(obj.path)
        except FileNotFoundError:
            self._forget(obj)
            raise
        if hasher.size != obj.size or hasher.hexdigest() != obj.checksum:
            self.quarantine(obj)
            raise DamagedObject(f"object {obj.oid}.{obj.version} does not match its checksum")
        self._write_sums(obj, hasher.sums())

    def _write_sums(self, obj: StoredObject, sums: bytes) -> None:
        if not keeps_sums_file(obj.size):
            obj.sums, obj.sums_checked = sums, True
            return
        temp = self.tmp_dir / f"{obj.path.name}.{uuid.uuid4().hex[:8]}{SUMS_SUFFIX}"
        obj.sums_path.parent.mkdir(exist_ok=True)
        try:
            _write_synced(temp, sums)
            os.replace(temp, obj.sums_path)
        finally:
            temp.unlink(missing_ok=True)
        _fsync_dir(obj.sums_path.parent)
        obj.sums_checked = True
        obj.sums = sums if len(sums) <= CACHED_SUMS else None

    # --- checking and quarantine ----------------------------------------------------

    def verify(self, oid: int, version: int) -> bool | None:
        """Re-read an object whole and check it; None when it is missing.

        A damaged object (False) is quarantined at once, so it is never served
        again; a good one whose sums file had rotted gets it rebuilt.
        """
        obj = self.find(oid, version)
        if obj is None:
            return None
        hasher = BlockHasher()
        try:
            for chunk in read_politely(obj.path):
                hasher.update(chunk)
        except FileNotFoundError:
            self._forget(obj)
            return None
        return self.judge(obj, hasher)

    def judge(self, obj: StoredObject, hasher: BlockHasher) -> bool:
        """Given ``obj``'s bytes read whole into ``hasher``: keep it, or quarantine it."""
        if hasher.size != obj.size or hasher.hexdigest() != obj.checksum:
            self.quarantine(obj)
            return False
        sums = hasher.sums()
        if not keeps_sums_file(obj.size):
            self._write_sums(obj, sums)  # kept in memory only
            return True
        try:
            on_disk = obj.sums_path.read_bytes()
        except FileNotFoundError:
            on_disk = b""
        if on_disk != sums:
            log.warning("object %d.%d: block sums rebuilt from its bytes", obj.oid, obj.version)
            self._write_sums(obj, sums)
        return True

    def quarantine(self, obj: StoredObject) -> None:
        """Move a damaged object (and its sums) aside: never served, never reported again.

        It leaves the index first, so no read starts on it from then on. Checks
        run on helper threads as well as the event loop; only one of two that
        find the same damage moves it.
        """
        if not self._remove(obj):
            return  # already gone (deleted, replaced or quarantined meanwhile)
        self.quarantine_dir.mkdir(exist_ok=True)
        aside = self.quarantine_dir / f"{obj.path.name}.{int(time.time())}"
        for source, target in (
            (obj.path, aside),
            (obj.sums_path, aside.with_name(aside.name + SUMS_SUFFIX)),
        ):
            try:
                os.replace(source, target)
            except FileNotFoundError:
                pass
        self.quarantined.append((obj.oid, obj.version))
        log.error(
            "object %d.%d does not match its checksum: quarantined as %s",
            obj.oid,
            obj.version,
            aside,
        )

    def _forget(self, obj: StoredObject) -> None:
        """An object that vanished from the disk behind our back."""
        self._remove(obj)

    def _remove(self, obj: StoredObject) -> bool:
        """Take ``obj`` out of the index if it is still there; whether this call did."""
        with self._index_lock:
            if self.index.get((obj.oid, obj.version)) is not obj:
                return False
            del self.index[(obj.oid, obj.version)]
            self.stored_bytes -= obj.size
            return True

    def copy(self, src: tuple[int, int], dst: tuple[int, int]) -> tuple[int, str]:
        """Copy an object locally (for ``cp``), checking the source in the same pass.

        The copy is a write session fed from the source, so it is hashed and
        published as any written object; a source that turns out damaged is
        quarantined and the copy dropped, so rot is never copied into a new file.
        """
        source = self.find(*src)
        if source is None:
            raise FileNotFoundError(f"object {src[0]}.{src[1]} is not stored here")
        session = WriteSession.begin(self, dst[0], dst[1], lease=0, base=0)
        try:
            session.copy_from(source)
            return session.commit()
        finally:
            session.discard()


def read_politely(path: Path, chunk: int = CHECK_CHUNK) -> Iterator[memoryview]:
    """A file's bytes as the disk holds them, without disturbing the page cache.

    For checks (``verify``, the scrub): ``O_DIRECT`` reads bypass the page
    cache, so they neither evict what readers use nor trust a cached copy of a
    block that has since rotted on the disk. Where ``O_DIRECT`` is refused
    (tmpfs, some network file systems) the reads are buffered and the pages
    dropped again with ``POSIX_FADV_DONTNEED``. Each chunk is valid until the
    next one is asked for.
    """
    chunk = max(DIRECT_ALIGN, chunk - chunk % DIRECT_ALIGN)
    try:
        fd = os.open(path, os.O_RDONLY | O_DIRECT)
        direct = bool(O_DIRECT)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        fd, direct = os.open(path, os.O_RDONLY), False
    buffer = mmap.mmap(-1, chunk)  # page-aligned, as O_DIRECT needs
    view = memoryview(buffer)
    offset = 0
    try:
        while True:
            try:
                count = os.preadv(fd, [view], offset)
            except OSError as exc:
                if not direct or exc.errno != errno.EINVAL:
                    raise
                os.close(fd)  # accepted at open, refused at read: read buffered
                fd, direct = os.open(path, os.O_RDONLY), False
                continue
            if not count:
                return
            if not direct:
                _drop_pages(fd, offset, count)
            yield view[:count]
            offset += count
    finally:
        os.close(fd)  # the buffer is left to the collector: the caller may hold a chunk


def _drop_pages(fd: int, offset: int, count: int) -> None:
    try:
        os.posix_fadvise(fd, offset, count, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass


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
    hasher: BlockHasher = field(default_factory=BlockHasher)
    advised: int = 0
    direct: bool = False  # O_DIRECT is set on fd (see write_at)
    direct_failed: bool = False
    #: The way its large chunks go (WritePath), chosen at the first; None: none came yet.
    way: bool | None = None
    #: Bytes written that way, and the seconds the writer waited on the disk for them
    #: (in pwrite, writeback, the final fsync: not for the network, nor hashing).
    way_bytes: int = 0
    way_seconds: float = 0.0

    @classmethod
    def begin(cls, storage: Storage, oid: int, version: int, lease: int, base: int) -> WriteSession:
        """A session for (oid, version); with ``base``, starting as a copy of that version."""
        session = cls(storage, oid, version, lease, storage.new_temp(oid, version))
        session.fd = os.open(session.temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        if base:
            source = storage.find(oid, base)
            try:
                if source is None:
                    raise FileNotFoundError(f"base version {oid}.{base} is not stored here")
                session.copy_from(source)
            except BaseException:
                session.discard()
                raise
        return session

    def copy_from(self, source: StoredObject) -> None:
        """Append ``source``'s bytes, checking them against its checksum on the way.

        Raises :class:`DamagedObject` (and quarantines the source) if they do
        not match: a copy must never turn rotten bytes into a new, valid-looking
        version.
        """
        checker = BlockHasher()
        with open(source.path, "rb") as reader:
            while chunk := reader.read(COPY_CHUNK):
                view = memoryview(chunk)
                checker.update(view)
                self.write_at(self.size, view)
        if checker.size != source.size or checker.hexdigest() != source.checksum:
            self.storage.quarantine(source)
            raise DamagedObject(f"object {source.oid}.{source.version} does not match its checksum")

    def write_at(self, offset: int, data: memoryview, aligned: bool = False) -> None:
        """Write ``data`` at ``offset``, hashing it when it continues the stream in order.

        ``aligned`` says ``data`` starts on a page boundary (the server's mmap
        buffers): a large, block-aligned chunk may then bypass the page cache
        with O_DIRECT, which spares the CPU copying into and allocating
        page-cache pages (the client's downloads do the same; see
        ``client/file.py``) - whether it does is the slave's measured choice
        (:mod:`.writepath`). Everything else, and file systems that refuse
        O_DIRECT, stay buffered.
        """
        large = (
            aligned
            and len(data) >= DIRECT_MIN
            and offset % DIRECT_ALIGN == 0
            and len(data) % DIRECT_ALIGN == 0
        )
        if large and self.way is None:
            self.way = self.storage.write_path.choose()
        direct = large and bool(self.way) and not self.direct_failed
        if direct != self.direct:
            self._set_direct(direct)
        started = self.storage.clock.monotonic() if large else 0.0
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
        if large:
            self._waited(len(data), started)
        if self.in_order and offset == self.hashed:
            self.hasher.update(data)
            self.hashed += len(data)
            if self.direct:
                self.advised = self.hashed  # nothing of ours sits in the page cache
            elif self.hashed - self.advised >= WRITEBACK_STEP:
                started = self.storage.clock.monotonic()
                self._start_writeback()
                self._waited(0, started)
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

    def truncate(self, length: int) -> None:
        """Cut the new version to ``length`` bytes, or extend it with zeros.

        The running hash stays valid for the bytes still there in order; past
        that (bytes cut that were hashed, or zeros never hashed), commit hashes
        the file again.
        """
        os.ftruncate(self.fd, length)
        if length < self.hashed:
            self.in_order = False
        self.size = length

    def read_at(self, offset: int, length: int) -> bytes:
        if self.direct:  # unaligned reads need the page cache
            self._set_direct(False)
        return os.pread(self.fd, max(0, min(length, self.size - offset)), offset)

    def commit(self, expected: str | None = None) -> tuple[int, str]:
        """fsync, publish, and return (size, checksum).

        With ``expected`` (a replica received from elsewhere), bytes that do not
        hash to it are refused: :class:`DamagedObject`, and nothing is published.
        """
        checksum, sums = self.seal(expected)
        started = self.storage.clock.monotonic()
        os.fsync(self.fd)
        flushed = self.storage.clock.monotonic() - started
        os.close(self.fd)
        self.fd = -1
        self.storage.publish(self.temp, self.oid, self.version, checksum, self.size, sums)
        self.durable(flushed)
        return self.size, checksum

    def _waited(self, count: int, started: float) -> None:
        if self.way is not None:
            self.way_bytes += count
            self.way_seconds += self.storage.clock.monotonic() - started

    def durable(self, flush_seconds: float) -> None:
        """Its bytes are on the disk after a final flush of ``flush_seconds``: tell the
        write path how fast its way took them."""
        if self.way is not None:
            way = self.way and not self.direct_failed
            seconds = self.way_seconds + flush_seconds
            self.storage.write_path.measured(way, self.way_bytes, seconds)

    def seal(self, expected: str | None = None) -> tuple[str, bytes]:
        """The written bytes' checksum and block sums (hashed again if they came out of
        order); :class:`DamagedObject` if they do not hash to ``expected``."""
        if self.in_order and self.hashed == self.size:
            hasher = self.hasher
        else:
            hasher = _hash_file(self.temp, self.size)
        checksum = hasher.hexdigest()
        if expected is not None and checksum != expected:
            raise DamagedObject(
                f"received bytes of {self.oid}.{self.version} do not match checksum {expected}"
            )
        return checksum, hasher.sums()

    def discard(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.temp.unlink(missing_ok=True)


def keeps_sums_file(size: int) -> bool:
    """Whether an object of ``size`` bytes has a sums file: only one of more than one
    block (see the module's doc)."""
    return size > BLOCK


def _shard_name(oid: int) -> str:
    return f"{oid % SHARDS:02x}"


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


def _write_synced(path: Path, data: bytes) -> None:
    _write_all(path, data, sync=True)


def _write_all(path: Path, data: bytes, sync: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


#: Threads that issue a group commit's fsyncs side by side (see Storage.commit_together).
_flushers = ThreadPoolExecutor(max_workers=8, thread_name_prefix="flush")


def _side_by_side(actions: list[Callable[[], None]]) -> list[OSError | None]:
    """Run every action at once, the first right here (a lone commit's data and folder
    flushes: one hand-off to a flusher thread, not two); what each raised."""

    def attempt(action: Callable[[], None]) -> OSError | None:
        try:
            action()
        except OSError as exc:
            return exc
        return None

    if not actions:
        return []
    others = [_flushers.submit(attempt, action) for action in actions[1:]]
    first = attempt(actions[0])
    return [first, *(other.result() for other in others)]
