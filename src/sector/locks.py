"""One server per directory: an exclusive lock held for as long as the server runs.

A master locks ``master.lock`` in its metadata directory, a slave ``slave.lock``
in its data directory, before touching anything else there (a slave starting
up empties ``tmp/``; two masters on one SQLite file would fight over leases).
A second process on the same directory - started by ``sector up``, by hand, or
on another machine sharing the mount - stops with one line naming the holder.

The lock is a POSIX record lock (``fcntl.lockf``), not ``flock``: NFS carries
POSIX locks between machines by protocol (NLM for v3, built into v4), while
``flock`` on NFS is only emulated by some clients and purely local on others.
POSIX locks have one trap - closing *any* descriptor of the file drops the
lock - so the file is opened once, here, and nothing else opens it. A mount
whose locks do not work (NFS without ``lockd``: ``ENOLCK``) refuses to start
rather than run unprotected.

The lock file also records ``pid host`` of its holder, because a lock cannot
say who holds it across machines (``F_GETLK``'s pid is meaningless over NFS).
The record is informative only: the lock decides, and the file is never
deleted (a process could be holding the old inode while another locks a new one).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from dataclasses import dataclass
from pathlib import Path

MASTER_LOCK = "master.lock"
SLAVE_LOCK = "slave.lock"


@dataclass(frozen=True)
class Holder:
    """Who a lock file says holds it."""

    pid: int
    host: str

    def describe(self) -> str:
        return (
            f"pid {self.pid}"
            if self.host == socket.gethostname()
            else (f"pid {self.pid} on host {self.host}")
        )


class DirectoryInUse(Exception):
    """Another process holds the directory's lock; the message names it."""

    def __init__(self, path: Path, holder: Holder | None):
        self.path, self.holder = path, holder
        who = holder.describe() if holder else "another process (which did not record its pid)"
        super().__init__(f"{path.parent} is in use by {who} (lock {path.name})")


class DirectoryLock:
    """An acquired lock; it lasts until :meth:`release` or the process exits."""

    def __init__(self, path: Path, fd: int):
        self.path, self._fd = path, fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the only descriptor releases the lock
            self._fd = -1


def acquire(directory: Path, name: str) -> DirectoryLock:
    """Lock ``directory/name`` or raise :class:`DirectoryInUse` (OSError if locks don't work)."""
    path = directory / name
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _parse(os.pread(fd, 256, 0))
        os.close(fd)
        if exc.errno in (errno.EACCES, errno.EAGAIN):
            raise DirectoryInUse(path, holder) from None
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    return DirectoryLock(path, fd)


def recorded_holder(path: Path) -> Holder | None:
    """The ``pid host`` a lock file records: its last holder, who may have exited since."""
    try:
        return _parse(path.read_bytes()[:256])
    except OSError:
        return None


def _parse(data: bytes) -> Holder | None:
    parts = data.decode(errors="replace").split()
    if len(parts) >= 2 and parts[0].isdigit():
        return Holder(int(parts[0]), parts[1])
    return None
