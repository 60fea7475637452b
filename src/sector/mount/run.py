"""Mounting and unmounting: libfuse options, the foreground loop, ``fusermount3 -u``.

The FUSE loop always runs in the foreground of *some* process: ``sector
mount`` without ``--foreground`` starts ``sector mount --foreground`` as a
detached child (its output going to a log file) and waits until the kernel
shows the mount, rather than letting libfuse ``fork()`` a Python process that
already holds threads and a TLS session.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..client import Client
from .fs import DEFAULT_TIMEOUTS

if TYPE_CHECKING:
    from .fs import SectorOperations

log = logging.getLogger("sector.mount")

#: Options every Sector mount gets unless ``-o`` says otherwise. ``no_rofd_flush``:
#: closing a descriptor opened read-only sends the kernel's FLUSH no more - only a
#: writer's close has something to publish - one request fewer per file read.
BASE_OPTIONS: dict[str, str | bool] = {
    "subtype": "sector",
    "no_rofd_flush": True,
    **{key: str(value) for key, value in DEFAULT_TIMEOUTS.items()},
}


#: The kernel's read-ahead on the mount (its bdi's ``read_ahead_kb``), raised from
#: Linux's 128 KiB where we may (as root): paired, ``cp`` of 512 MiB out of the mount
#: went from 377-560 to 601-724 MB/s (1 MiB requests instead of 128 KiB ones).
READ_AHEAD_KB = 1024


class MountUnavailable(RuntimeError):
    """FUSE cannot be used here; the message says what to install."""


def parse_options(groups: Iterable[str]) -> dict[str, str | bool]:
    """``-o ro,allow_other -o attr_timeout=5`` -> ``{ro: True, allow_other: True,
    attr_timeout: "5"}``."""
    options: dict[str, str | bool] = {}
    for group in groups:
        for item in group.split(","):
            item = item.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            options[key] = value if sep else True
    return options


def mount_options(fsname: str, extra: dict[str, str | bool]) -> dict[str, str | bool]:
    """libfuse's options: ours, then ``-o``'s.

    ``allow_other`` brings ``default_permissions``: the kernel then checks the
    modes we show, so other local users get read-only access, as the modes
    say. Without it only the mounting user reaches the mount, the master
    checks its every request anyway, and the mount answers ``access`` and
    write opens from the same rights (:meth:`SectorOperations.access`); the
    kernel's check is not worth its price there: it needs fresh attributes of
    the directory, and every create, rename or unlink in it drops them, so
    profiled, each such operation cost one more ``stat`` at the master.
    """
    options: dict[str, str | bool] = {**BASE_OPTIONS, "fsname": fsname}
    if extra.get("allow_other"):
        options["default_permissions"] = True
    return {**options, **extra}


def check_available() -> None:
    """Raise :class:`MountUnavailable` naming what is missing for a FUSE mount."""
    if not os.path.exists("/dev/fuse"):
        raise MountUnavailable("/dev/fuse is missing: this kernel or container offers no FUSE")
    try:
        import mfusepy  # noqa: F401 - loading it loads libfuse3
    except ImportError:
        raise MountUnavailable(
            "the FUSE binding is not installed: pip install 'pysector[mount]'"
        ) from None
    except OSError as exc:
        raise MountUnavailable(
            f"libfuse3 cannot be loaded ({exc}): apt-get install fuse3 libfuse3-3"
        ) from None


def serve(client: Client, mountpoint: str, options: dict[str, str | bool]) -> None:
    """Mount and serve until unmounted (or SIGINT/SIGTERM, which unmount); then log out."""
    check_available()
    from .fs import SectorFUSE, SectorOperations

    operations = SectorOperations(client, attr_timeout=_seconds(options, "attr_timeout"))
    log.info("mounting %s on %s with %s", options.get("fsname"), mountpoint, options)
    threading.Thread(
        target=_once_mounted, args=(operations, mountpoint), name="read-ahead", daemon=True
    ).start()
    try:
        SectorFUSE(operations, mountpoint, foreground=True, raw_fi=True, **options)
    except RuntimeError as exc:
        # libfuse's loop also ends with a status after SIGINT/SIGTERM: only a
        # mount that never came up is a failure (libfuse said why on stderr)
        if not operations.started:
            raise OSError(0, f"libfuse could not mount it (status {exc})", mountpoint) from None
    finally:
        client.close()
    log.info("unmounted %s", mountpoint)


def _seconds(options: dict[str, str | bool], key: str) -> float:
    """A cache lifetime from the mount options (``-o attr_timeout=0.5``), as libfuse
    reads it; our default where absent or not a number (libfuse then refuses it)."""
    try:
        return float(options.get(key, DEFAULT_TIMEOUTS[key]))  # type: ignore[arg-type]
    except ValueError:
        return DEFAULT_TIMEOUTS[key]


def _once_mounted(operations: SectorOperations, mountpoint: str) -> None:
    operations.mounted.wait()  # (a stat before the kernel's init would hang the loop)
    raise_read_ahead(mountpoint)


def raise_read_ahead(mountpoint: str, kb: int = READ_AHEAD_KB) -> None:
    """Let the kernel read ahead ``kb`` KiB on the mount at ``mountpoint``, if it reads
    ahead less and we are allowed to say so (root); otherwise log why not."""
    try:
        device = os.stat(mountpoint).st_dev  # (EIO while the master is away)
        knob = Path(f"/sys/class/bdi/{os.major(device)}:{os.minor(device)}/read_ahead_kb")
        if int(knob.read_text()) < kb:
            knob.write_text(str(kb))
            log.info("kernel read-ahead on %s raised to %d KiB", mountpoint, kb)
    except (OSError, ValueError) as exc:
        log.info("kernel read-ahead on %s left as it was: %s", mountpoint, exc)


def unmount(mountpoint: str, lazy: bool = False) -> None:
    """Unmount with ``fusermount3 -u`` (plain ``umount`` when it is missing and we are root).

    Raises ``OSError`` with what the tool said (not mounted, busy, ...).
    """
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    if tool is not None:
        command = [tool, "-u", *(["-z"] if lazy else []), mountpoint]
    else:
        command = ["umount", *(["-l"] if lazy else []), mountpoint]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        said = result.stderr.strip().splitlines()
        reason = said[-1] if said else f"{command[0]} exited with {result.returncode}"
        # "fusermount3: failed to unmount /x: Device or resource busy" -> the reason
        reason = reason.rsplit(": ", 1)[-1] if ": " in reason else reason
        raise OSError(0, reason.lower(), mountpoint)


def default_log_path(home: Path, mountpoint: str) -> Path:
    """``$SECTOR_HOME/logs/mount-<mountpoint with / as _>.log``."""
    slug = os.path.abspath(mountpoint).strip("/").replace("/", "_") or "root"
    return home / "logs" / f"mount-{slug}.log"
