"""Sector's FUSE mount in the benchmark: the same ``cp`` and metadata phases as MooseFS's.

The mount is a real ``sector mount --foreground`` process on the benchmark's
own cluster, so its figures sit beside ``sector upload``/``download`` of the
same file in the same run (the 0.7x target) and beside MooseFS's own FUSE
mount (the 1.5x and "at least equal" targets).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sector.cluster import LocalCluster

from .common import log

MOUNT_DEADLINE = 30.0


class MountUnavailable(Exception):
    """FUSE cannot be used on this machine; the message says why."""


def check() -> None:
    from sector.mount.run import MountUnavailable as Missing
    from sector.mount.run import check_available

    try:
        check_available()
    except Missing as exc:
        raise MountUnavailable(str(exc)) from None


@contextmanager
def mounted(running: LocalCluster, where: Path) -> Iterator[tuple[Path, int]]:
    """(mount point, pid of the mount process) while ``running`` is mounted at ``where``."""
    where.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECTOR_")}
    env["SECTOR_HOME"] = str(running.layout.home)
    log_path = where.with_suffix(".log")
    with open(log_path, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sector.cli.main", "mount", "--foreground", str(where)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + MOUNT_DEADLINE
        while not os.path.ismount(where):
            if process.poll() is not None or time.monotonic() > deadline:
                raise MountUnavailable(f"sector mount failed: {log_path.read_text()[-2000:]}")
            time.sleep(0.05)  # polling the kernel's mount table; the deadline bounds it
        log(f"Sector mounted on {where} (log {log_path})")
        yield where, process.pid
    finally:
        if os.path.ismount(where):
            done = subprocess.run(["fusermount3", "-u", str(where)], capture_output=True)
            if done.returncode:
                subprocess.run(["fusermount3", "-uz", str(where)], capture_output=True)
        try:
            process.wait(timeout=MOUNT_DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
