"""Sector errors as the errno a POSIX program expects: the mount's one translation point.

Every file-system operation the kernel sends runs inside :func:`errno_boundary`
(applied once, in :mod:`.fs`), so a Sector exception never reaches libfuse and
no operation converts errors on its own. The table is the contract the README
states: ``E_NOEXIST`` is ``ENOENT``, ``E_BUSY`` (another client is writing the
file) is ``EBUSY``, ``E_NODISK`` is ``ENOSPC``, a master that cannot be reached
is ``EIO`` - answered as soon as the connection is refused, never after a hang.
"""

from __future__ import annotations

import errno
import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import (
    E_ACCOUNT,
    E_ACL,
    E_BUSY,
    E_CONNECTION,
    E_EXIST,
    E_EXPIRED,
    E_INVALID,
    E_LOCALFILE,
    E_NODISK,
    E_NOEMPTY,
    E_NOEXIST,
    E_PASSWORD,
    E_PERMISSION,
    E_RESOURCE,
    E_SECURITY,
    E_SUPPORT,
    E_TIMEDOUT,
    E_UNKNOWN,
    SectorError,
)

log = logging.getLogger("sector.mount")

#: Sector code -> errno. Codes not listed (and E_UNKNOWN) are EIO: something
#: went wrong that the program can do nothing about but report.
ERRNO_BY_CODE: dict[int, int] = {
    E_PERMISSION: errno.EACCES,
    E_EXIST: errno.EEXIST,
    E_NOEXIST: errno.ENOENT,
    E_BUSY: errno.EBUSY,
    E_NOEMPTY: errno.ENOTEMPTY,
    E_NODISK: errno.ENOSPC,
    E_INVALID: errno.EINVAL,
    E_SUPPORT: errno.EOPNOTSUPP,
    E_TIMEDOUT: errno.ETIMEDOUT,
    E_CONNECTION: errno.EIO,
    E_RESOURCE: errno.EIO,
    E_LOCALFILE: errno.EIO,
    E_UNKNOWN: errno.EIO,
    # The mount logged in once; a later refusal means the session or a token was
    # rejected: the program was not allowed to do what it asked.
    E_SECURITY: errno.EACCES,
    E_EXPIRED: errno.EACCES,
    E_ACCOUNT: errno.EACCES,
    E_PASSWORD: errno.EACCES,
    E_ACL: errno.EACCES,
}


class MountError(OSError):
    """An errno to hand to the kernel, raised by the mount's own checks."""

    def __init__(self, number: int, detail: str = ""):
        super().__init__(number, detail or errno.errorcode.get(number, str(number)))


def errno_for(exc: BaseException) -> int:
    """The errno that tells a POSIX program what ``exc`` means."""
    if isinstance(exc, SectorError):
        # is/is-not-a-directory travel as E_INVALID with a finer kind; their
        # exception classes already carry the precise errno.
        specific = getattr(exc, "errno", None)
        if exc.code == E_INVALID and specific:
            return specific
        return ERRNO_BY_CODE.get(exc.code, errno.EIO)
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    return errno.EIO


F = TypeVar("F", bound=Callable[..., Any])


def errno_boundary(operation: F) -> F:
    """Run a FUSE operation; any failure leaves as ``OSError(errno)`` for libfuse.

    Expected failures (a missing file, a busy one) are logged at debug level;
    anything that is not an ``OSError`` or a Sector error is a bug in the mount,
    logged with its traceback and answered with ``EIO`` rather than letting the
    binding guess.
    """

    name = operation.__name__

    @functools.wraps(operation)
    def run(*args: Any, **kwargs: Any) -> Any:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s", name, ", ".join(_shown(a) for a in args[1:]))
        try:
            return operation(*args, **kwargs)
        except MountError:
            raise
        except (SectorError, OSError) as exc:
            number = errno_for(exc)
            log.debug("%s%s: %s -> %s", name, args[1:2], exc, errno.errorcode.get(number))
            raise MountError(number, str(exc)) from None
        except Exception:
            log.exception("%s%s failed unexpectedly", name, args[1:2])
            raise MountError(errno.EIO) from None

    return run  # type: ignore[return-value]


def _shown(argument: Any) -> str:
    if isinstance(argument, (bytes, memoryview)):
        return f"<{len(argument)} bytes>"
    if isinstance(argument, (str, int)) or argument is None:
        return repr(argument)
    return f"fh={getattr(argument, 'fh', '?')} flags={getattr(argument, 'flags', 0):#o}"
