"""Sector as an fsspec file system: ``sector://`` for pandas, Arrow, Dask, zarr and UPath.

Installed with the package, fsspec finds :class:`SectorFileSystem` through the
``fsspec.specs`` entry point, so ``pd.read_csv("sector://host:6000/data/x.csv")``
works without importing anything of ours. Which cluster and which user follow
the CLI's rules (:func:`sector.client.connect.resolve`): the URL's
``user@host:port`` or the ``host``/``port``/``user``/``password``/``cert``
options, then ``SECTOR_*`` variables, ``client.conf``, the local cluster.

Synchronous on purpose. The client is blocking and thread-safe, and every
transfer spends its time in ``recv_into``/``sendfile``, which release the GIL;
an ``AsyncFileSystem`` over it would only hop each call onto a thread and back
(fsspec's ``AsyncFileSystemWrapper`` does exactly that) without a byte more
throughput. Where parallelism pays - :meth:`cat_ranges` - a thread pool
provides it. When an asyncio client (``sector.aio``) exists, an async
variant can share everything here but the calls.

What Sector does better than fsspec's generic fallbacks, and so is done here:
``rm`` of a tree is one request, ``mv`` one metadata change, ``cp_file`` a
slave-side copy, ``put_file``/``get_file`` the checksum-verified transfers,
``checksum``/``ukey`` the stored checksum and version (no bytes read), and a
file written through :meth:`open` appears atomically when it is closed.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from fsspec.callbacks import DEFAULT_CALLBACK, Callback
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem
from fsspec.utils import isfilelike, stringify_path

from .client import Client, SectorFile, Stat
from .client.connect import SCHEME, Target, parse_location, resolve
from .errors import (
    E_PASSWORD,
    SectorNotADirectoryError,
    SecurityError,
)
from .protocol.checksum import NAME as CHECKSUM_NAME
from .protocol.paths import join, split

#: Ranges fetched at once by :meth:`SectorFileSystem.cat_ranges` (one data connection each).
MAX_CONCURRENCY = 8
#: Read-ahead and write block of files from :meth:`SectorFileSystem.open`.
BLOCK_SIZE = 16 * 1024 * 1024
#: Reads at least this large skip the read-ahead cache: it would only copy the bytes
#: twice more (measured, 512 MiB read in 8 MiB reads: ~1.2 GB/s direct, 0.8-0.9 GB/s
#: through fsspec's readahead cache, on a shared 2-core VM).
DIRECT_READ = 4 * 1024 * 1024


class SectorFileSystem(AbstractFileSystem):
    """fsspec's view of one Sector cluster, as one user.

    Every argument may be left out; the missing ones come from the URL, the
    environment, ``client.conf`` or the local cluster, as for the ``sector``
    command. The login happens on first use, so creating one (or unpickling
    it in a Dask worker) costs nothing; a forked process logs in again
    rather than sharing its parent's connection. Errors are Sector's
    exceptions, which subclass the built-ins fsspec expects
    (``FileNotFoundError``, ``FileExistsError``, ``PermissionError`` ...).
    ``timeout``: seconds the master may stay silent before a call fails
    (``MASTER_TIMEOUT``; the client's default otherwise).
    """

    protocol = "sector"
    root_marker = "/"
    # Listings are not cached (fsspec's dircache stays empty): several clients change
    # one namespace, and a stat costs one round trip to the master (~0.15 ms here).

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        user: str | None = None,
        password: str | None = None,
        cert: str | os.PathLike[str] | None = None,
        max_concurrency: int = MAX_CONCURRENCY,
        timeout: float | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        master = f"{host}:{port}" if host and port else host
        self.target: Target = resolve(
            master=master, user=user, password=password, cert=cert, timeout=timeout
        )
        if port and not host:
            self.target.port = int(port)
        self.max_concurrency = max(1, max_concurrency)
        self._client: Client | None = None
        self._client_pid = os.getpid()
        self._client_lock = threading.Lock()

    # -- the session ------------------------------------------------------------------

    @property
    def client(self) -> Client:
        """The logged-in :class:`Client`, opened on first use (raises SecurityError on failure)."""
        with self._client_lock:
            if self._client is not None and self._client_pid != os.getpid():
                self._client = None  # a fork: the TLS session belongs to the parent
            if self._client is None:
                if self.target.password is None:
                    raise SecurityError(
                        f"no password for user {self.target.user}: pass password=, "
                        "or set SECTOR_PASSWORD or PASSWORD in client.conf",
                        code=E_PASSWORD,
                    )
                self._client = self.target.connect()
                self._client_pid = os.getpid()
            return self._client

    def close(self) -> None:
        """Log out; the next call logs in again. Never fails."""
        with self._client_lock:
            if self._client is not None and self._client_pid == os.getpid():
                self._client.close()
            self._client = None

    # -- paths --------------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        """``sector://user@host:port/a/b/`` (or ``/a/b``, or ``a/b``) -> ``/a/b``."""
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        text = stringify_path(path)
        if text.startswith("sector::"):
            text = text[len("sector::") :]
        text = parse_location(text).path
        return "/" + text.strip("/") if text.strip("/") else cls.root_marker

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        """The ``host``, ``port`` and ``user`` a ``sector://`` URL names (none for a path)."""
        location = parse_location(stringify_path(path))
        options: dict[str, Any] = {}
        if location.master:
            host, _, port = location.master.rpartition(":")
            if host and port.isdigit():
                options.update(host=host, port=int(port))
            else:
                options["host"] = location.master
        if location.user:
            options["user"] = location.user
        return options

    def unstrip_protocol(self, name: str) -> str:
        """``/a/b`` -> ``sector://host:port/a/b``, naming this file system's master; never fails."""
        if name.startswith(SCHEME):
            return name
        return f"{SCHEME}{self.target.host}:{self.target.port}{self._strip_protocol(name)}"

    # -- metadata -----------------------------------------------------------------------

    def _info(self, path: str, entry: Stat) -> dict[str, Any]:
        """fsspec's info dict for ``entry`` at ``path``: its fields plus Sector's own."""
        info: dict[str, Any] = {
            "name": path,
            "size": entry.size,
            "type": "directory" if entry.isdir else "file",
            "mtime": entry.timestamp,
        }
        if not entry.isdir:
            info.update(version=entry.version, checksum=entry.checksum, slaves=entry.slaves)
        if entry.created:
            info["created"] = entry.created
        return info

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """One stat at the master; raises FileNotFoundError when nothing is there."""
        path = self._strip_protocol(path)
        return self._info(path, self.client.stat(path))

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """Entries of a directory with full paths (a file lists as itself).

        Raises FileNotFoundError when ``path`` does not exist.
        """
        path = self._strip_protocol(path)
        entries = self.client.ls(path)
        name = split(path)[1]
        if len(entries) == 1 and not entries[0].isdir and entries[0].name == name:
            # Either the file itself, or a directory holding one file of its own
            # name (/a/a): only a stat tells them apart.
            own = self.client.stat(path)
            if not own.isdir:
                entries = [own]
                infos = [self._info(path, own)]
                return infos if detail else [path]
        infos = [self._info(join(path, e.name), e) for e in entries]
        return infos if detail else [i["name"] for i in infos]

    def exists(self, path: str, **kwargs: Any) -> bool:
        """True if a file or directory is at ``path``; False (never an error) otherwise."""
        try:
            self.info(path)
        except FileNotFoundError:
            return False
        except NotADirectoryError:
            return False
        return True

    def checksum(self, path: str) -> int:
        """The stored checksum of a file's content, as an int: no bytes are read.

        Two files with the same bytes have the same checksum. Raises
        FileNotFoundError for a missing path; directories get fsspec's
        checksum of their info.
        """
        info = self.info(path)
        if info["type"] != "file":
            return super().checksum(path)
        return int(info["checksum"], 16)

    def ukey(self, path: str) -> str:
        """A key that changes whenever the file does: its version and stored checksum."""
        info = self.info(path)
        if info["type"] != "file":
            return super().ukey(path)
        return f"v{info['version']}-{CHECKSUM_NAME}:{info['checksum']}"

    def modified(self, path: str) -> datetime:
        """When the current content was committed (UTC); FileNotFoundError when missing."""
        return datetime.fromtimestamp(self.info(path)["mtime"], tz=timezone.utc)

    def created(self, path: str) -> datetime:
        """When the file or directory was created (a file: its first commit), UTC.

        Rewrites and renames keep it. Raises FileNotFoundError when missing,
        and NotImplementedError for an entry made by a master too old to record
        it and rewritten since.
        """
        info = self.info(path)
        if "created" not in info:
            raise NotImplementedError(
                f"{path}: its creation time was not recorded (made by an older master)"
            )
        return datetime.fromtimestamp(info["created"], tz=timezone.utc)

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> None:
        """Make ``path`` an empty file, or with ``truncate=False`` only set an existing
        one's modification time to now (created empty if missing).

        Raises PermissionError without the right to write there.
        """
        path = self._strip_protocol(path)
        if not truncate:
            try:
                self.client.set_mtime(path, time.time())
                return
            except FileNotFoundError:
                pass
        self.pipe_file(path, b"")

    def hosts(self, path: str) -> list[tuple[str, int]]:
        """The slaves (host, port) holding the current version of a file.

        Empty when no live slave holds it; IsADirectoryError for a directory.
        This is where work on the file is cheapest: see ``examples/locality.py``.
        """
        return self.client.locate(self._strip_protocol(path))

    # -- namespace changes --------------------------------------------------------------

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Create a directory; FileExistsError if something is there already.

        Without ``create_parents``, a missing parent is FileNotFoundError.
        """
        path = self._strip_protocol(path)
        if not create_parents:
            parent = split(path)[0]
            if not self.info(parent)["type"] == "directory":
                raise SectorNotADirectoryError("not a directory", parent)
        self.client.mkdir(path)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Create a directory and its parents; FileExistsError if it exists, unless ``exist_ok``.

        An existing *file* at ``path`` is FileExistsError even with ``exist_ok``.
        """
        path = self._strip_protocol(path)
        try:
            self.client.mkdir(path)
        except FileExistsError:
            if not exist_ok or self.info(path)["type"] != "directory":
                raise

    def rmdir(self, path: str) -> None:
        """Remove an empty directory; OSError (E_NOEMPTY) if it is not empty."""
        path = self._strip_protocol(path)
        if self.info(path)["type"] != "directory":
            raise SectorNotADirectoryError("not a directory", path)
        self.client.rm(path, recursive=False)

    def rm_file(self, path: str) -> None:
        """Remove one file (or an empty directory); FileNotFoundError if missing."""
        self.client.rm(self._strip_protocol(path), recursive=False)

    _rm = rm_file

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        """Remove paths (globs expanded); with ``recursive`` each tree goes in one request.

        FileNotFoundError when nothing matches; a full directory without
        ``recursive`` is refused (E_NOEMPTY).

        The master removes a whole tree in one transaction, so nothing is
        listed or deleted file by file here. ``maxdepth`` needs the listing and
        falls back to fsspec's file-by-file removal.
        """
        if maxdepth is not None:
            super().rm(path, recursive=recursive, maxdepth=maxdepth)
            return
        removed: list[str] = []
        for target in self.expand_path(path, recursive=False):
            if any(target == r or target.startswith(r.rstrip("/") + "/") for r in removed):
                continue  # already gone with a directory removed before it
            self.client.rm(target, recursive=recursive)
            removed.append(target)

    def mv(
        self,
        path1: Any,
        path2: Any,
        recursive: bool = False,
        maxdepth: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Move files or whole directories, each as one metadata change at the master.

        As on POSIX, a destination that is a directory (or ends in ``/``)
        receives the source inside it, and an existing destination *file* is
        replaced atomically (``Client.move(overwrite=True)``: one transaction).
        Several sources (a list or a glob) go into ``path2``. Raises
        FileNotFoundError for a missing source and IsADirectoryError rather than
        replace a directory.
        """
        if isinstance(path1, str) and isinstance(path2, str) and not _is_glob(path1):
            self._move_one(self._strip_protocol(path1), path2)
            return
        sources = self.expand_path(path1, recursive=False)
        if isinstance(path2, list):
            pairs = list(zip(sources, self._strip_protocol(path2), strict=True))
            for src, dst in pairs:
                self._move_one(src, dst)
            return
        self.makedirs(path2, exist_ok=True)
        for src in sources:
            self._move_one(src, self._strip_protocol(path2) + "/")

    def _move_one(self, src: str, dst_text: str) -> None:
        dst = self._strip_protocol(dst_text)
        if src == dst:
            return
        existing = self._info_or_none(dst)
        if dst_text.endswith("/") or (existing is not None and existing["type"] == "directory"):
            dst = join(dst, split(src)[1])
        self.client.move(src, dst, overwrite=True)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy one file inside Sector: the slave copies the bytes, none pass through here.

        An existing destination file is replaced, atomically (``Client.copy``:
        it is never missing). A directory source makes
        the directory (fsspec's ``copy`` of a tree calls this for every entry).
        """
        src, dst = self._strip_protocol(path1), self._strip_protocol(path2)
        if self.info(src)["type"] == "directory":
            self.makedirs(dst, exist_ok=True)
            return
        self.client.copy(src, dst, overwrite=True)

    # -- bytes --------------------------------------------------------------------------

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        """The bytes of ``path`` from ``start`` to ``end`` (negative: from the end).

        Only the range crosses the network: one read request, received straight
        into the bytes returned (see ``SectorFile.read``). FileNotFoundError
        when missing, IsADirectoryError for a directory.
        """
        with self.client.open(self._strip_protocol(path)) as handle:
            first, last = _clamp(start, end, handle.size)
            if last <= first:
                return b""
            handle.seek(first)
            return handle.read(last - first)

    def cat_ranges(
        self,
        paths: list[str],
        starts: int | list[int] | None,
        ends: int | list[int] | None,
        max_gap: int | None = None,
        on_error: str = "return",
        **kwargs: Any,
    ) -> list[Any]:
        """Many byte ranges, fetched ``max_concurrency`` at a time, in the order asked.

        Each range has its own data connection, so slow slaves overlap. With
        ``on_error="return"`` a failed range is its exception in the list.
        """
        if not isinstance(paths, list):
            raise TypeError("paths must be a list")
        count = len(paths)
        starts_list = starts if isinstance(starts, list) else [starts] * count
        ends_list = ends if isinstance(ends, list) else [ends] * count
        if len(starts_list) != count or len(ends_list) != count:
            raise ValueError("paths, starts and ends must have the same length")

        def one(item: tuple[str, int | None, int | None]) -> Any:
            try:
                return self.cat_file(*item)
            except Exception as exc:
                if on_error == "return":
                    return exc
                raise

        items = list(zip(paths, starts_list, ends_list, strict=True))
        if count <= 1:
            return [one(item) for item in items]
        with ThreadPoolExecutor(min(count, self.max_concurrency)) as pool:
            return list(pool.map(one, items))

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        """Write ``value`` as the whole file, visible at once when complete.

        ``mode="create"`` refuses an existing file with FileExistsError,
        atomically: the master decides at open, so of two clients creating one
        path only one succeeds.
        """
        path = self._strip_protocol(path)
        with self.client.open(path, "xb" if mode == "create" else "wb") as handle:
            handle.write(value)

    def put_file(
        self,
        lpath: str,
        rpath: str,
        callback: Callback = DEFAULT_CALLBACK,
        mode: str = "overwrite",
        **kwargs: Any,
    ) -> None:
        """Upload one local file with ``Client.upload``: ``sendfile``, atomic, verified.

        ``callback`` sees the size and then each chunk sent. A local directory
        makes the remote directory. ``mode="create"`` refuses an existing file
        (FileExistsError, atomically at the master); a local read error is
        E_LOCALFILE.
        """
        rpath = self._strip_protocol(rpath)
        if os.path.isdir(lpath):
            self.makedirs(rpath, exist_ok=True)
            return
        callback.set_size(os.path.getsize(lpath))
        self.client.upload(
            lpath,
            rpath,
            progress=callback.relative_update,
            verify=True,
            exclusive=mode == "create",
        )

    def get_file(
        self,
        rpath: str,
        lpath: Any,
        callback: Callback = DEFAULT_CALLBACK,
        outfile: Any = None,
        **kwargs: Any,
    ) -> None:
        """Download one file with ``Client.download``, verified against its checksum.

        The local file appears only once complete and verified. ``lpath`` may
        also be an open binary file; a remote directory makes a local one.
        Raises FileNotFoundError for a missing file, SecurityError (E_SECURITY)
        when the bytes do not match the stored checksum.
        """
        rpath = self._strip_protocol(rpath)
        info = self.info(rpath)
        if outfile is None and isfilelike(lpath):
            outfile = lpath
        if info["type"] == "directory":
            if outfile is None:
                os.makedirs(lpath, exist_ok=True)
            return
        callback.set_size(info["size"])
        if outfile is not None:
            with self.client.open(rpath) as handle:
                while chunk := handle.read(BLOCK_SIZE):
                    outfile.write(chunk)
                    callback.relative_update(len(chunk))
            return
        os.makedirs(os.path.dirname(os.path.abspath(lpath)), exist_ok=True)
        self.client.download(rpath, lpath, progress=callback.relative_update)

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> SectorBufferedFile:
        """A buffered file (``rb``, ``wb``, ``ab``, ``xb``); writes commit when it closes.

        ``xb`` raises FileExistsError for an existing file (or one another client
        is creating), decided by the master when the file is opened.
        """
        path = self._strip_protocol(path)
        return SectorBufferedFile(
            self,
            path,
            mode,
            block_size=block_size or BLOCK_SIZE,
            autocommit=autocommit,
            cache_options=cache_options,
            **kwargs,
        )

    def _info_or_none(self, path: str) -> dict[str, Any] | None:
        try:
            return self.info(path)
        except (FileNotFoundError, NotADirectoryError):
            return None


class SectorBufferedFile(AbstractBufferedFile):
    """A file from :meth:`SectorFileSystem.open`, buffered by fsspec.

    Reading pins the version current at open (the read grant), so a file
    rewritten meanwhile is still read consistently; blocks come through one
    :class:`SectorFile` and its pooled data connection, with fsspec's
    read-ahead cache in front. Writing streams each block to the slave as it
    fills; the new version becomes visible when the file closes, all at once.
    Leaving a ``with`` block by an exception, :meth:`discard`, or dropping the
    file without closing it leaves the previous version in place.
    """

    def __init__(self, fs: SectorFileSystem, path: str, mode: str = "rb", **kwargs: Any):
        self._handle: SectorFile | None = None
        size = None
        if mode == "rb":
            self._handle = fs.client.open(path)
            size = self._handle.size
        elif mode == "xb":  # at open, not at the first block: FileExistsError belongs here
            self._handle = fs.client.open(path, "xb")
        super().__init__(fs, path, mode, size=size, **kwargs)

    def read(self, length: int = -1) -> bytes:
        """Up to ``length`` bytes (all the rest if negative); b"" at the end.

        Large reads go straight to the slave; small ones through the
        read-ahead cache. ValueError if the file is closed or not readable.
        """
        length = -1 if length is None else int(length)
        if self.mode == "rb" and not self.closed:
            end = self.size if length < 0 else min(self.size, self.loc + length)
            if end - self.loc >= DIRECT_READ:
                data = self._fetch_range(self.loc, end)
                self.loc += len(data)
                return data
        return super().read(length)

    def _fetch_range(self, start: int, end: int) -> bytes:
        """Bytes ``start:end`` of the version opened; fewer only at the end of the file."""
        assert self._handle is not None
        self._handle.seek(start)
        return self._handle.read(max(0, min(end, self.size) - start))

    def _initiate_upload(self) -> None:
        if self._handle is None:  # (``xb`` opened it already)
            self._handle = self.fs.client.open(self.path, "ab" if self.mode == "ab" else "wb")

    def _upload_chunk(self, final: bool = False) -> bool:
        assert self._handle is not None
        self._handle.write(self.buffer.getbuffer())
        if final and self.autocommit:
            self.commit()
        return True

    def commit(self) -> None:
        """Make what was written the file's content (the master's one transaction).

        Raises SectorConnectionError if the slave connection broke (nothing is
        committed then) and E_SECURITY if the slave's receipt is refused.
        """
        if self._handle is not None:
            handle, self._handle = self._handle, None
            handle.close()

    def discard(self) -> None:
        """Drop what was written; the previous version stays. Never fails."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            handle.abort()

    def close(self) -> None:
        """Commit a written file (unless autocommit is off); release a read connection.

        Raises as :meth:`commit` does; the file is closed either way.
        """
        try:
            super().close()
        finally:
            if self.mode == "rb" and self._handle is not None:
                handle, self._handle = self._handle, None
                handle.close()

    def __del__(self) -> None:
        # io.IOBase would close(), committing a file nobody closed: a writer that
        # vanished without closing leaves the previous version, as one that died does.
        if not self.closed and self._handle is not None:
            self.closed = True
            try:
                self._handle.abort()
            except Exception:
                pass

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if exc_type is not None and self.writable():
            self.discard()
            self.closed = True
            return
        self.close()


def _clamp(start: int | None, end: int | None, size: int) -> tuple[int, int]:
    """Python slice rules for a byte range of a file of ``size`` bytes."""
    first = 0 if start is None else (max(0, size + start) if start < 0 else min(start, size))
    last = size if end is None else (max(0, size + end) if end < 0 else min(end, size))
    return first, last


def _is_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


__all__ = ["SectorBufferedFile", "SectorFileSystem"]
