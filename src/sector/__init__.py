"""Sector, rebuilt in Python, with PySector's module API as its front door.

The module functions behave exactly as PySector's did: they share one default
session, return a status (>= 0 on success, a negative Sector error code on
failure) and never raise for file-system errors::

    >>> import sector
    >>> sector.init('localhost', 6000)
    0
    >>> sector.login('test', 'xxx', '/home/me/.sector/conf/master_node.cert')
    0
    >>> f = sector.open('/mydir/a.bin', 1)
    >>> data = sector.read(f, 4096)

Underneath is the richer API they are built on: :class:`Client` (a context
manager holding a session) and :class:`SectorFile`, which raise exceptions
carrying the same codes (see :mod:`sector.errors`).
"""

from __future__ import annotations

import builtins
import functools
import logging
import os
import threading
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version
from typing import ParamSpec, TypeVar

from . import errors
from .client import Client, SectorFile, SectorTextFile, Stat
from .errors import (
    E_ACCOUNT,
    E_ACL,
    E_BUSY,
    E_CONNECTION,
    E_EXIST,
    E_EXPIRED,
    E_INITCTX,
    E_INVALID,
    E_LOCALFILE,
    E_NOCERT,
    E_NODISK,
    E_NOEMPTY,
    E_NOEXIST,
    E_NOSECSERV,
    E_PASSWORD,
    E_PERMISSION,
    E_RESOURCE,
    E_SECURITY,
    E_SUPPORT,
    E_TIMEDOUT,
    E_UNKNOWN,
    SectorError,
)
from .protocol.messages import APPEND, HIRELIABLE, READ, RW, SECURE, TRUNC, WRITE

#: The distribution is ``pysector`` (the name ``sector`` on the package index is
#: someone else's); the import name stays ``sector``.
DISTRIBUTION = "pysector"
try:
    __version__: str = _distribution_version(DISTRIBUTION)
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"


class SF_MODE:  # noqa: N801 - Sector's own name
    """Open modes, as Sector named them."""

    READ, WRITE, RW, TRUNC, APPEND, SECURE, HiRELIABLE = (
        READ,
        WRITE,
        RW,
        TRUNC,
        APPEND,
        SECURE,
        HIRELIABLE,
    )


class SF_POS:  # noqa: N801 - Sector's own name
    """Seek bases, as Sector named them (Python's files take os.SEEK_SET/CUR/END: 0/1/2)."""

    BEG, CUR, END = 1, 2, 3


#: SF_POS -> Python's whence: the module translates here, SectorFile speaks Python.
_WHENCE = {SF_POS.BEG: os.SEEK_SET, SF_POS.CUR: os.SEEK_CUR, SF_POS.END: os.SEEK_END}


_log = logging.getLogger("sector")
_state_lock = threading.RLock()
_address: tuple[str, int] = ("localhost", 6000)
_client: Client | None = None
_files: dict[int, SectorFile] = {}
_next_handle = 0

T = TypeVar("T")
P = ParamSpec("P")


def _code_of(exc: Exception) -> int:
    """The negative status PySector returned for ``exc``: the one boundary of this module.

    Every module function returns a status and never raises: a Sector error
    gives its code, an argument of the wrong type or value E_INVALID, a network
    error that escaped the client E_CONNECTION, any other local OSError
    E_LOCALFILE, and anything else - a bug of ours - E_UNKNOWN, logged with its
    traceback (logger ``sector``) so it is not lost.
    """
    if isinstance(exc, SectorError):
        return exc.code
    if isinstance(exc, (TypeError, ValueError)):  # arguments of the wrong kind
        return E_INVALID
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return E_CONNECTION
    if isinstance(exc, OSError):
        return E_LOCALFILE
    _log.error("unexpected error in the sector module", exc_info=exc)
    return E_UNKNOWN


def _status(function: Callable[P, T]) -> Callable[P, T | int]:
    """Return ``function``'s result, or the negative code of what it raised (see _code_of)."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T | int:
        try:
            return function(*args, **kwargs)
        except Exception as exc:
            return _code_of(exc)

    return wrapper


def _or_none(function: Callable[P, T]) -> Callable[P, T | None]:
    """Return ``function``'s result, or None on any failure (PySector's ``stat`` and ``ls``)."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T | None:
        try:
            return function(*args, **kwargs)
        except Exception as exc:
            _code_of(exc)  # logs what is a bug
            return None

    return wrapper


def _session() -> Client:
    if _client is None:
        raise errors.SecurityError("not logged in: call sector.login() first")
    return _client


@_status
def init(host: str = "localhost", port: int = 6000) -> int:
    """Remember the master's address for ``login``: 0, or E_INVALID for a bad host or port."""
    global _address
    if not isinstance(host, str) or not isinstance(port, int) or not 0 < port < 65536:
        return E_INVALID
    with _state_lock:
        _address = (host, port)
    return 0


@_status
def login(user: str, password: str, cert_path: str | None = None) -> int:
    """Log in over TLS: 0, or E_NOCERT, E_SECURITY, E_ACCOUNT, E_PASSWORD, E_CONNECTION.

    ``cert_path`` defaults to ``$SECTOR_HOME/conf/master_node.cert``.
    """
    global _client
    with _state_lock:
        client = Client(*_address)
        client.login(user, password, cert_path)
        if _client is not None:
            _client.close()
        _client = client
    return 0


@_status
def logout() -> int:
    """End the session (open files stay open until closeclient): 0, never an error code."""
    global _client
    with _state_lock:
        if _client is not None:
            _client.logout()
    return 0


@_status
def closeclient() -> int:
    """Drop every open file (uncommitted writes are discarded) and connection: 0, never fails."""
    global _client
    with _state_lock:
        for handle in builtins.list(_files):
            _files.pop(handle).abort()
        if _client is not None:
            _client.close()
            _client = None
    return 0


@_status
def mkdir(path: str) -> int:
    """Create a directory and its missing parents: 0, or E_EXIST, E_PERMISSION, E_INVALID."""
    _session().mkdir(path)
    return 0


@_status
def rm(path: str) -> int:
    """Remove a file or a directory with everything in it: 0, or E_NOEXIST, E_PERMISSION."""
    _session().rm(path, recursive=True)
    return 0


@_status
def move(old: str, new: str) -> int:
    """Rename (a directory as one metadata change): 0, or E_NOEXIST, E_EXIST if ``new`` exists."""
    _session().move(old, new)
    return 0


@_status
def cp(src: str, dst: str) -> int:
    """Copy a file, slave-side: 0, or E_NOEXIST, E_EXIST if ``dst`` exists, E_INVALID (a dir)."""
    _session().copy(src, dst)
    return 0


@_or_none
def stat(path: str) -> Stat | None:
    """Name, isdir, timestamp, size (and version, checksum, slaves); None on failure."""
    return _session().stat(path)


@_or_none
def ls(path: str = "/") -> builtins.list[Stat] | None:
    """The entries of a directory (a file lists as itself); None on failure."""
    return _session().ls(path)


@_status
def open(path: str, mode: int = READ) -> int:  # noqa: A001 - PySector's name
    """A handle (>= 0) for read/write/close, or E_NOEXIST, E_BUSY, E_PERMISSION, E_SUPPORT.

    ``mode`` is SF_MODE's bits (a binary Python mode string works too; a text
    mode is E_INVALID: these functions move bytes).
    """
    global _next_handle
    if isinstance(mode, str) and "b" not in mode:
        return E_INVALID
    handle_file = _session().open(path, mode)
    with _state_lock:
        handle = _next_handle
        _next_handle += 1
        _files[handle] = handle_file
    return handle


def _file(handle: int) -> SectorFile:
    with _state_lock:
        found = _files.get(handle) if isinstance(handle, int) else None
    if found is None:
        raise errors.InvalidError(f"no open file with handle {handle!r}")
    return found


@_status
def close(handle: int) -> int:
    """Close a handle, committing what was written: 0, or E_INVALID, E_CONNECTION, E_SECURITY."""
    with _state_lock:
        found = _files.pop(handle, None)
    if found is None:
        return E_INVALID
    found.close()
    return 0


@_status
def read(handle: int, size: int) -> bytes:
    """Up to ``size`` bytes (binary-safe, each checked against its block sums), b'' at the end.

    A replica that fails, stalls or sends bad bytes is left for the next one;
    only when none is left: E_CONNECTION (slaves unreachable) or E_RESOURCE (no
    good replica). E_INVALID for an unknown handle.
    """
    return _file(handle).read(size)


@_status
def write(handle: int, data: bytes | str, length: int | None = None) -> int:
    """Write ``data`` (or its first ``length`` bytes): the count, or E_INVALID, E_CONNECTION."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    view = memoryview(data).cast("B")
    if length is not None:
        if length < 0:
            return E_INVALID
        view = view[:length]
    return _file(handle).write(view)


@_status
def seek(handle: int, offset: int, whence: int = SF_POS.BEG) -> int:
    """Move to ``offset`` from SF_POS.BEG/CUR/END (1/2/3): the new position, or E_INVALID."""
    if whence not in _WHENCE:
        return E_INVALID
    return _file(handle).seek(offset, _WHENCE[whence])


@_status
def tell(handle: int) -> int:
    """The position in the file, or E_INVALID for an unknown handle."""
    return _file(handle).tell()


@_status
def eof(handle: int) -> bool:
    """True at (or past) the end of the file; E_INVALID for an unknown handle."""
    return _file(handle).eof()


@_status
def flush(handle: int) -> int:
    """Send buffered bytes to the slave (visible only at close): 0, or E_INVALID, E_CONNECTION."""
    _file(handle).flush()
    return 0


@_status
def upload(local: str | os.PathLike, remote: str) -> int:
    """Copy a local file into Sector, atomically: 0, or E_LOCALFILE, E_PERMISSION, E_RESOURCE."""
    _session().upload(local, remote)
    return 0


@_status
def download(remote: str, local: str | os.PathLike) -> int:
    """Copy a Sector file to local disk, verified: 0, or E_NOEXIST, E_LOCALFILE, E_SECURITY."""
    _session().download(remote, local)
    return 0


remove = rm
copy = cp
list = ls  # noqa: A001 - PySector's name

__all__ = [
    "__version__",
    "APPEND",
    "HIRELIABLE",
    "READ",
    "RW",
    "SECURE",
    "TRUNC",
    "WRITE",
    "SF_MODE",
    "SF_POS",
    "Client",
    "SectorFile",
    "SectorTextFile",
    "Stat",
    "SectorError",
    "errors",
    "init",
    "login",
    "logout",
    "closeclient",
    "mkdir",
    "rm",
    "remove",
    "move",
    "cp",
    "copy",
    "stat",
    "ls",
    "list",
    "open",
    "close",
    "read",
    "write",
    "seek",
    "tell",
    "eof",
    "flush",
    "upload",
    "download",
    "E_UNKNOWN",
    "E_PERMISSION",
    "E_EXIST",
    "E_NOEXIST",
    "E_BUSY",
    "E_LOCALFILE",
    "E_NOEMPTY",
    "E_SECURITY",
    "E_NOCERT",
    "E_ACCOUNT",
    "E_PASSWORD",
    "E_ACL",
    "E_INITCTX",
    "E_NOSECSERV",
    "E_EXPIRED",
    "E_CONNECTION",
    "E_RESOURCE",
    "E_NODISK",
    "E_TIMEDOUT",
    "E_INVALID",
    "E_SUPPORT",
]
