"""Sector's FUSE mount beside what it must beat, measured back to back in one run.

Issue 11's targets are ratios: ``cp`` of the large file into and out of
``sector mount`` against ``sector upload``/``download`` of the same file
(>= 0.7x) and against MooseFS's own FUSE mount (>= 1.5x); each small-file
phase through the mount against MooseFS's mount (>= 1x). On two shared
cores the rates swing with whatever else runs, so every run here measures
all of them in turn, one right after the other - upload, ``cp`` in, MooseFS
``cp`` in, download, ``cp`` out, MooseFS ``cp`` out; the API's, the mount's
and MooseFS's small-file phases - and the figures are medians of ratios'
parts taken at the same moments.

The mount is a real ``sector mount --foreground`` process on its own
cluster; MooseFS is started beside it when the ``peer`` part is asked for
(``python -m bench --only mount,peer``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from sector.cluster import LocalCluster

from . import metadata
from .baselines import timed_cp
from .common import log
from .sector_runs import cluster, download, server_pids, upload

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


def _large(
    out: dict,
    running: LocalCluster,
    mount: tuple[Path, int],
    peer,  # MooseFS | None
    work: Path,
    source: Path,
    drop: bool,
) -> None:
    """One run of the large-file comparisons, each write then each read back to back."""
    client = running.connect()
    where, pid = mount
    pids = {**server_pids(running), "mount": pid}
    local = work / "mount-out.bin"
    inside = where / "bench" / "big-mount.bin"
    try:
        seconds, used = upload(client, running, source, "/bench/big-api.bin", drop)
        out["upload_s"].append(seconds)
        out["cpu"]["upload"].append(used)
        seconds, used = timed_cp(source, inside, drop, pids)
        out["mount_in_s"].append(seconds)
        out["cpu"]["mount_in"].append(used)
        if peer is not None:
            seconds, used = timed_cp(source, peer.mount / "big.bin", drop, peer.pids)
            out["moosefs_in_s"].append(seconds)
            out["cpu"]["moosefs_in"].append(used)
        seconds, used = download(client, running, "/bench/big-api.bin", local, drop)
        out["download_s"].append(seconds)
        out["cpu"]["download"].append(used)
        seconds, used = timed_cp(inside, local, drop, pids)
        local.unlink()
        out["mount_out_s"].append(seconds)
        out["cpu"]["mount_out"].append(used)
        if peer is not None:
            seconds, used = timed_cp(peer.mount / "big.bin", local, drop, peer.pids)
            local.unlink()
            out["moosefs_out_s"].append(seconds)
            out["cpu"]["moosefs_out"].append(used)
            (peer.mount / "big.bin").unlink()
        inside.unlink()
        client.rm("/bench/big-api.bin")
    finally:
        client.close()


def _phases(
    out: dict, running: LocalCluster, where: Path, peer, run: int, clients: int, files: int
) -> None:
    """The small-file phases on the API, through the mount and on MooseFS, in turn."""
    host, port = running.master_address or ("127.0.0.1", 0)
    key = str(clients)
    api_dir, mount_dir = f"/meta-api/{run}-{clients}", f"/meta-mount/{run}-{clients}"
    client = running.connect()
    try:
        client.mkdir(api_dir)
        client.mkdir(mount_dir)
    finally:
        client.close()
    api = metadata.Target("sector", api_dir, host, port, str(running.layout.cert))
    targets = [("api", api), ("mount", metadata.Target("local", str(where / mount_dir[1:])))]
    if peer is not None:
        directory = peer.mount / f"meta-{run}-{clients}"
        directory.mkdir()
        targets.append(("moosefs", metadata.Target("local", str(directory))))
    for name, target in targets:
        log(f"mount comparison run {run + 1}: small files on {name}, {clients} client(s)")
        out[name].setdefault(key, []).append(metadata.run_phases(target, clients, files))


def measure(
    work: Path,
    source: Path,
    runs: int,
    drop: bool,
    clients: int,
    files: int,
    peer: bool,
    skipped: dict[str, str],
) -> dict:
    """Every mount figure with its same-run baselines (MooseFS's only with ``peer``).

    ``skipped`` gets the reason when MooseFS was asked for and cannot run.
    """
    from .moosefs import MooseFS, PeerUnavailable

    large: dict = {
        key: []
        for key in (
            "upload_s",
            "download_s",
            "mount_in_s",
            "mount_out_s",
            "moosefs_in_s",
            "moosefs_out_s",
        )
    }
    large["cpu"] = {
        key: []
        for key in ("upload", "download", "mount_in", "mount_out", "moosefs_in", "moosefs_out")
    }
    small: dict = {"api": {}, "mount": {}, "moosefs": {}}
    with ExitStack() as stack:
        running = stack.enter_context(cluster(work / "sector-mount"))
        mount = stack.enter_context(mounted(running, work / "sector-mnt"))
        moose = None
        if peer:
            moose = MooseFS(work / "moosefs-mount")
            try:
                log("starting MooseFS beside the mount")
                moose.start()
                stack.callback(moose.stop)
            except PeerUnavailable as exc:
                skipped["mount vs MooseFS"] = f"MooseFS skipped: {exc}"
                log(skipped["mount vs MooseFS"])
                moose = None
        for run in range(runs):
            log(f"mount comparison run {run + 1}/{runs}: large file")
            _large(large, running, mount, moose, work, source, drop)
        for run in range(runs):
            for count in sorted({1, clients}):
                _phases(small, running, mount[0], moose, run, count, files)
    return {"large": large, "small": small}
