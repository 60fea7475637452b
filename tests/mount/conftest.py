"""Mount a real cluster through the kernel, the way users do: ``sector mount --foreground``.

The mount runs as a subprocess of the installed ``sector`` command; tests wait
for the kernel to show it (``os.path.ismount``) and always unmount in teardown,
even when the test failed, because a stuck mount would block everyone else's
work on the machine. Tests here are skipped only when ``/dev/fuse`` is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sector.cluster import LocalCluster
from tests.cli.conftest import COMMAND, clean_env
from tests.support import wait_until

if not os.path.exists("/dev/fuse"):
    pytest.skip("/dev/fuse is missing: this machine offers no FUSE", allow_module_level=True)

MOUNT_TIMEOUT = 30.0


@dataclass
class Mount:
    """A running ``sector mount --foreground``: its directory, process and log."""

    path: Path
    process: subprocess.Popen
    log: Path

    def local(self, sector_path: str) -> Path:
        """Where a Sector path appears on this mount."""
        return self.path / sector_path.lstrip("/")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def unmount(self) -> None:
        """Unmount (lazily if something still holds it) and wait for the process to end."""
        patience = MOUNT_TIMEOUT
        if kernel_lists(self.path):
            tool = shutil.which("fusermount3") or "fusermount3"
            if subprocess.run([tool, "-u", str(self.path)], capture_output=True).returncode:
                # still in use (a failed test's open file): detach it from the tree now;
                # the process would serve until that file is closed, so do not wait long
                subprocess.run([tool, "-uz", str(self.path)], capture_output=True)
                patience = 2.0
        try:
            self.process.wait(timeout=patience)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def kernel_lists(path: Path) -> bool:
    """Whether ``path`` is in the kernel's mount table. (``os.path.ismount`` stats it: a
    mount whose root cannot be stat'ed looks unmounted, and would be left behind.)"""
    target = os.path.realpath(path)
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == target for line in mounts)


def start_mount(cluster: LocalCluster, where: Path, *options: str, **env: str) -> Mount:
    """Mount ``cluster`` on ``where``/mnt and wait until the kernel shows it."""
    path = where / "mnt"
    path.mkdir(parents=True, exist_ok=True)
    log = where / "mount.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*COMMAND, "mount", "--foreground", str(path), *options],
            env=clean_env(cluster.layout.home, **env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    mount = Mount(path, process, log)
    try:
        wait_until(
            lambda: os.path.ismount(path) or process.poll() is not None,
            MOUNT_TIMEOUT,
            "the mount to appear",
        )
        assert os.path.ismount(path), f"sector mount exited: {mount.log_text()}"
    except BaseException:
        mount.unmount()
        raise
    return mount


@pytest.fixture(scope="session")
def mount(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mount]:
    """The shared cluster mounted for the whole session."""
    running = start_mount(cluster, tmp_path_factory.mktemp("mount"))
    yield running
    running.unmount()


@pytest.fixture
def here(mount: Mount, workdir: str) -> Path:
    """This test's own directory, seen through the mount (``workdir`` in Sector)."""
    return mount.local(workdir)


@pytest.fixture
def make_mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Mount]]:
    """Private mounts (of private clusters) for tests that stop servers."""
    started: list[Mount] = []

    def make(cluster: LocalCluster, *options: str, **env: str) -> Mount:
        running = start_mount(cluster, tmp_path_factory.mktemp("private-mount"), *options, **env)
        started.append(running)
        return running

    yield make
    for running in started:
        running.unmount()
