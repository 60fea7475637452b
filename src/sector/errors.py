"""Sector's error codes and the exceptions that carry them.

The codes are an interface users already know from Sector and PySector: every
module-level call returns them as negative integers. The richer API raises
:class:`SectorError` subclasses instead; each also subclasses the built-in
exception a Python programmer would reach for (``FileNotFoundError`` for
``E_NOEXIST`` ...), so ``except FileNotFoundError`` just works.

This module imports nothing of ours: the servers, the client and the protocol
all share it.
"""

from __future__ import annotations

import errno
import io

E_UNKNOWN = -1
E_PERMISSION = -1001
E_EXIST = -1002
E_NOEXIST = -1003
E_BUSY = -1004
E_LOCALFILE = -1005
E_NOEMPTY = -1006
E_SECURITY = -2000
E_NOCERT = -2001
E_ACCOUNT = -2002
E_PASSWORD = -2003
E_ACL = -2004
E_INITCTX = -2005
E_NOSECSERV = -2006
E_EXPIRED = -2007
E_CONNECTION = -3000
E_RESOURCE = -4000
E_NODISK = -4001
E_TIMEDOUT = -5000
E_INVALID = -6000
E_SUPPORT = -6001

#: code -> (symbolic name, what it means to a person)
DESCRIPTIONS: dict[int, tuple[str, str]] = {
    E_UNKNOWN: ("E_UNKNOWN", "undefined error"),
    E_PERMISSION: ("E_PERMISSION", "permission denied"),
    E_EXIST: ("E_EXIST", "file or directory already exists"),
    E_NOEXIST: ("E_NOEXIST", "no such file or directory"),
    E_BUSY: ("E_BUSY", "file is busy (being written)"),
    E_LOCALFILE: ("E_LOCALFILE", "local file error"),
    E_NOEMPTY: ("E_NOEMPTY", "directory not empty"),
    E_SECURITY: ("E_SECURITY", "security check failed"),
    E_NOCERT: ("E_NOCERT", "no certificate found"),
    E_ACCOUNT: ("E_ACCOUNT", "user does not exist"),
    E_PASSWORD: ("E_PASSWORD", "incorrect password"),
    E_ACL: ("E_ACL", "login from a disallowed IP address"),
    E_INITCTX: ("E_INITCTX", "failed to set up TLS"),
    E_NOSECSERV: ("E_NOSECSERV", "security server unreachable"),
    E_EXPIRED: ("E_EXPIRED", "session expired"),
    E_CONNECTION: ("E_CONNECTION", "cannot connect or connection broken"),
    E_RESOURCE: ("E_RESOURCE", "no available resources"),
    E_NODISK: ("E_NODISK", "not enough disk space"),
    E_TIMEDOUT: ("E_TIMEDOUT", "operation timed out"),
    E_INVALID: ("E_INVALID", "invalid parameter"),
    E_SUPPORT: ("E_SUPPORT", "operation not supported"),
}


def code_name(code: int) -> str:
    """``-1003`` -> ``"E_NOEXIST"``; unknown codes are shown as numbers."""
    return DESCRIPTIONS.get(code, (str(code), ""))[0]


def describe(code: int) -> str:
    """A short phrase for a person, e.g. ``"no such file or directory"``."""
    return DESCRIPTIONS.get(code, ("", f"error {code}"))[1]


#: Finer kinds of E_INVALID the wire can name, so the client raises the right built-in.
KIND_IS_A_DIRECTORY = "isdir"
KIND_NOT_A_DIRECTORY = "notdir"


class SectorError(Exception):
    """Base of every error the Sector API raises; ``.code`` is the Sector code.

    ``kind`` refines a code shared by several exceptions (E_INVALID is also
    "is a directory"), so that an error crossing the wire comes back as the
    same class: see :func:`error_for`.
    """

    code: int = E_UNKNOWN
    kind: str | None = None

    def __init__(self, message: str = "", path: str | None = None, code: int | None = None):
        if code is not None:
            self.code = code
        self.path = path
        self.detail = message or describe(self.code)
        text = f"{path}: {self.detail}" if path else self.detail
        super().__init__(f"{text} ({code_name(self.code)})")

    def __reduce__(self):  # keep class/code/path through pickling (multiprocessing, xdist)
        return (type(self), (self.detail, self.path, self.code))


# errno.* values are given so that OSError subclasses look natural (e.errno, e.filename).
class _OSLike(SectorError, OSError):
    errno_value = 0

    def __init__(self, message: str = "", path: str | None = None, code: int | None = None):
        SectorError.__init__(self, message, path, code)
        self.errno = self.errno_value
        self.strerror = self.detail
        self.filename = path

    def __str__(self) -> str:  # OSError's "[Errno 2] ..." would hide the Sector code name
        return Exception.__str__(self)


class SectorPermissionError(_OSLike, PermissionError):
    code, errno_value = E_PERMISSION, errno.EACCES


class SectorExistsError(_OSLike, FileExistsError):
    code, errno_value = E_EXIST, errno.EEXIST


class SectorNotFoundError(_OSLike, FileNotFoundError):
    code, errno_value = E_NOEXIST, errno.ENOENT


class SectorBusyError(_OSLike, BlockingIOError):
    code, errno_value = E_BUSY, errno.EBUSY


class SectorLocalFileError(_OSLike):
    code, errno_value = E_LOCALFILE, errno.EIO


class UnsupportedOperationError(_OSLike, io.UnsupportedOperation):
    """A file call the file was not opened for (reading one opened to write ...).

    ``io.UnsupportedOperation``, as Python's own files raise, with E_INVALID.
    """

    code, errno_value = E_INVALID, errno.EBADF


class SectorNotEmptyError(_OSLike):
    code, errno_value = E_NOEMPTY, errno.ENOTEMPTY


class SectorIsADirectoryError(_OSLike, IsADirectoryError):
    code, errno_value, kind = E_INVALID, errno.EISDIR, KIND_IS_A_DIRECTORY


class SectorNotADirectoryError(_OSLike, NotADirectoryError):
    code, errno_value, kind = E_INVALID, errno.ENOTDIR, KIND_NOT_A_DIRECTORY


class SecurityError(SectorError):
    """Login or certificate problems: E_SECURITY and the E_-2xxx family."""

    code = E_SECURITY


class SectorConnectionError(SectorError, ConnectionError):
    code = E_CONNECTION


class ResourceError(SectorError):
    code = E_RESOURCE


class NoDiskError(ResourceError):
    code = E_NODISK


class SectorTimeoutError(SectorError, TimeoutError):
    code = E_TIMEDOUT


class InvalidError(SectorError, ValueError):
    code = E_INVALID


class NotSupportedError(SectorError, NotImplementedError):
    code = E_SUPPORT


_BY_CODE: dict[int, type[SectorError]] = {
    E_PERMISSION: SectorPermissionError,
    E_EXIST: SectorExistsError,
    E_NOEXIST: SectorNotFoundError,
    E_BUSY: SectorBusyError,
    E_LOCALFILE: SectorLocalFileError,
    E_NOEMPTY: SectorNotEmptyError,
    E_CONNECTION: SectorConnectionError,
    E_RESOURCE: ResourceError,
    E_NODISK: NoDiskError,
    E_TIMEDOUT: SectorTimeoutError,
    E_INVALID: InvalidError,
    E_SUPPORT: NotSupportedError,
}

_BY_KIND: dict[str, type[SectorError]] = {
    KIND_IS_A_DIRECTORY: SectorIsADirectoryError,
    KIND_NOT_A_DIRECTORY: SectorNotADirectoryError,
}


def error_for(
    code: int, message: str = "", path: str | None = None, kind: str | None = None
) -> SectorError:
    """The exception instance that best represents ``code``."""
    if kind in _BY_KIND:
        return _BY_KIND[kind](message, path)
    if -2999 <= code <= -2000:
        return SecurityError(message, path, code=code)
    cls = _BY_CODE.get(code, SectorError)
    return cls(message, path, code=code)
