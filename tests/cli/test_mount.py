"""``sector mount`` / ``sector umount`` as a person runs them: background, foreground, errors."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sector.cluster import pid_alive
from tests.support import wait_until

from .conftest import Sector

if not os.path.exists("/dev/fuse"):
    pytest.skip("/dev/fuse is missing: this machine offers no FUSE", allow_module_level=True)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def mountpoint(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "mnt"
    path.mkdir()
    yield path
    if os.path.ismount(path):  # a failed test must not leave a mount behind
        subprocess.run(["fusermount3", "-uz", str(path)], check=False)


def test_background_mount_says_where_it_logs_and_umount_ends_it(
    sector: Sector, mountpoint: Path, tmp_path: Path, remote: str
) -> None:
    log = tmp_path / "mount.log"
    out = sector.ok("mount", str(mountpoint), "--log", str(log))
    match = re.fullmatch(
        rf"Mounted sector://127\.0\.0\.1:\d+ on {re.escape(str(mountpoint))} \(process (\d+)\)\.\n"
        rf"  log       : {re.escape(str(log))}\n"
        rf"  unmount   : sector umount {re.escape(str(mountpoint))}\n",
        out,
    )
    assert match, out
    pid = int(match.group(1))
    assert os.path.ismount(mountpoint)
    assert (mountpoint / remote.lstrip("/")).is_dir()
    assert "kernel connection" in log.read_text()

    already = sector.fails("mount", str(mountpoint))
    assert already == f"sector: {mountpoint}: already a mount point (E_LOCALFILE)"
    assert sector.ok("umount", str(mountpoint)) == ""
    assert not os.path.ismount(mountpoint)
    wait_until(lambda: not pid_alive(pid), 30, "the mount process to exit")
    assert sector.fails("umount", str(mountpoint)) == (
        f"sector: {mountpoint}: not mounted (E_LOCALFILE)"
    )


def test_foreground_mount_unmounts_on_ctrl_c(sector: Sector, mountpoint: Path) -> None:
    process = sector.popen(
        "mount", "--foreground", str(mountpoint), stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until(lambda: os.path.ismount(mountpoint), 30, "the mount to appear")
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert not os.path.ismount(mountpoint)
    assert f"Unmounted {mountpoint}." in err


def test_a_wrong_password_is_reported_on_the_terminal_not_in_a_log(
    sector: Sector, mountpoint: Path
) -> None:
    line = sector.fails("mount", str(mountpoint), env={"SECTOR_PASSWORD": "wrong"})
    assert line.startswith("sector: ") and "(E_PASSWORD)" in line, line
    assert not os.path.ismount(mountpoint)
