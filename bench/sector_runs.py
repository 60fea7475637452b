"""Sector's side of every workload: large files, parallel streams and namespace scale.

Clusters are real ``LocalCluster`` processes on 127.0.0.1 (ephemeral ports)
under the work directory, so they write to the same disk as the baselines.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sector.client import Client
from sector.cluster import LocalCluster
from sector.master.store import ROOT_ID, Store

from .common import MB, CpuMeter, MiB, drop_caches, fsync_path, log, percentile, rss_bytes


@contextmanager
def cluster(home: Path, slaves: int = 1) -> Iterator[LocalCluster]:
    """A running cluster, stopped (every process, by PID) however the block ends."""
    running = LocalCluster(home=home, slaves=slaves, port=0, log_level=1, heartbeat=1.0,
                           slave_timeout=10.0)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def server_pids(running: LocalCluster) -> dict[str, int]:
    return {p.name: p.popen.pid for p in running.processes}


def cpu_by_role(used: dict[str, float]) -> dict[str, float]:
    """Fold per-process CPU seconds into client / slave / master."""
    roles = {"client": 0.0, "slave": 0.0, "master": 0.0}
    for name, seconds in used.items():
        role = "slave" if name.startswith("slave") else name
        roles[role] = roles.get(role, 0.0) + seconds
    return roles


def upload(client: Client, running: LocalCluster, source: Path, remote: str,
           drop: bool, secure: bool = False) -> tuple[float, dict[str, float]]:
    """Seconds and CPU seconds by role for one upload from a (cold) local file;
    with ``secure``, over TLS (SF_MODE.SECURE)."""
    if drop:
        drop_caches()
    meter = CpuMeter(server_pids(running))
    meter.start()
    started = time.perf_counter()
    client.upload(source, remote, secure=secure)
    elapsed = time.perf_counter() - started
    return elapsed, cpu_by_role(meter.stop())


def download(client: Client, running: LocalCluster, remote: str, target: Path,
             drop: bool, streams: int = 1,
             secure: bool = False) -> tuple[float, dict[str, float]]:
    """Seconds (until the local copy is fsynced, like ``cp`` + ``sync``) and CPU by role;
    with ``secure``, over TLS."""
    target.unlink(missing_ok=True)
    if drop:
        drop_caches()
    meter = CpuMeter(server_pids(running))
    meter.start()
    started = time.perf_counter()
    client.download(remote, target, streams=streams, secure=secure)
    fsync_path(target)
    elapsed = time.perf_counter() - started
    used = cpu_by_role(meter.stop())
    target.unlink()
    return elapsed, used


def read_ranges(client: Client, remote: str, streams: int, size: int) -> float:
    """Read ``remote`` as ``streams`` contiguous ranges on parallel connections; seconds.

    Each thread opens the file itself (its own grant, its own pooled data
    connection) and reads into memory with ``readinto``; ``recv_into`` releases
    the GIL, so the threads overlap on the sockets.
    """
    bounds = [size * i // streams for i in range(streams + 1)]
    errors: list[BaseException] = []

    def one(start: int, end: int) -> None:
        try:
            buffer = memoryview(bytearray(4 * MiB))
            with client.open(remote) as remote_file:
                remote_file.seek(start)
                position = start
                while position < end:
                    count = remote_file.readinto(buffer[: min(len(buffer), end - position)])
                    if count <= 0:
                        raise RuntimeError("short read")
                    position += count
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(bounds[i], bounds[i + 1]))
               for i in range(streams)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


def large_files(work: Path, source: Path, size: int, runs: int, drop: bool,
                streams: int) -> dict:
    """Upload and download of ``source`` ``runs`` times, then parallel-range reads."""
    from .baselines import cold_read, cp_with_fsync, dd_with_fsync

    out: dict = {"upload_s": [], "download_s": [], "cp_s": [], "cp_cpu": [], "dd_s": [],
                 "cold_read_s": [], "secure_upload_s": [], "secure_download_s": [],
                 "cpu": {"upload": [], "download": [], "secure_upload": [],
                         "secure_download": []}}
    with cluster(work / "sector-large") as running:
        client = running.connect()
        try:
            for run in range(1, runs + 1):
                log(f"large file run {run}/{runs}: cp, dd, cold read, upload, download")
                seconds, cpu = cp_with_fsync(source, work / "cp-copy.bin", drop)
                out["cp_s"].append(seconds)
                out["cp_cpu"].append(cpu)
                out["dd_s"].append(dd_with_fsync(source, work / "dd-copy.bin", drop))
                out["cold_read_s"].append(cold_read(source, drop))
                seconds, used = upload(client, running, source, "/bench/big.bin", drop)
                out["upload_s"].append(seconds)
                out["cpu"]["upload"].append(used)
                seconds, used = download(client, running, "/bench/big.bin",
                                         work / "download.bin", drop)
                out["download_s"].append(seconds)
                out["cpu"]["download"].append(used)
                # the same bytes over TLS (SF_MODE.SECURE), right after the plain ones
                log(f"large file run {run}/{runs}: upload, download in SECURE mode")
                seconds, used = upload(client, running, source, "/bench/big-secure.bin", drop,
                                       secure=True)
                out["secure_upload_s"].append(seconds)
                out["cpu"]["secure_upload"].append(used)
                seconds, used = download(client, running, "/bench/big-secure.bin",
                                         work / "download.bin", drop, secure=True)
                out["secure_download_s"].append(seconds)
                out["cpu"]["secure_download"].append(used)
                client.rm("/bench/big-secure.bin")
            log(f"parallel streams: 1 vs {streams} ranges (file in the page cache)")
            read_ranges(client, "/bench/big.bin", 1, size)  # warm: the file is cached
            single, parallel = [], []
            for _ in range(runs):
                single.append(read_ranges(client, "/bench/big.bin", 1, size))
                parallel.append(read_ranges(client, "/bench/big.bin", streams, size))
            out["single_stream_s"], out["parallel_s"] = single, parallel
            client.rm("/bench/big.bin")
        finally:
            client.close()
    return out


def transfer_rate(size: int, seconds: float) -> float:
    return size / seconds / MB


# ----------------------------------------------------------------- namespace scale

def fill_store(db: Path, dirs: int, per_dir: int, first_dir: int = 0) -> float:
    """Insert ``dirs`` x ``per_dir`` file entries under /ns straight into the store."""
    started = time.perf_counter()
    store = Store(db)
    try:
        with store.transaction():
            top = store.lookup(ROOT_ID, "ns") or store.insert(ROOT_ID, "ns", True)
            checksum = "0" * 32
            for d in range(first_dir, first_dir + dirs):
                folder = store.insert(top.id, f"d{d:05d}", True)
                for f in range(per_dir):
                    store.insert(folder.id, f"f{f:05d}", False, size=1024, version=1,
                                 checksum=checksum)
    finally:
        store.close()
    return time.perf_counter() - started


def probe_namespace(running: LocalCluster, dirs: int, per_dir: int, stats: int,
                    listings: int) -> dict:
    """stat and ls latencies through the API, master RSS, and restart time."""
    rng = random.Random(4)
    client = running.connect()
    try:
        stat_ms = []
        for _ in range(stats):
            path = f"/ns/d{rng.randrange(dirs):05d}/f{rng.randrange(per_dir):05d}"
            started = time.perf_counter()
            client.stat(path)
            stat_ms.append((time.perf_counter() - started) * 1000)
        ls_ms = []
        for _ in range(listings):
            path = f"/ns/d{rng.randrange(dirs):05d}"
            started = time.perf_counter()
            entries = client.ls(path)
            ls_ms.append((time.perf_counter() - started) * 1000)
            if len(entries) != per_dir:
                raise RuntimeError(f"ls {path} returned {len(entries)} entries")
        rss = rss_bytes(running.process("master").popen.pid)
        started = time.perf_counter()
        running.restart_master(kill=True)
        probe = f"/ns/d{dirs - 1:05d}/f{per_dir - 1:05d}"
        deadline = time.monotonic() + 120
        while True:
            try:
                client.stat(probe)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        restart = time.perf_counter() - started
    finally:
        client.close()
    return {
        "entries": dirs * per_dir + dirs + 1,
        "ls_entries": per_dir,
        "stat_p50_ms": percentile(stat_ms, 0.5),
        "stat_p99_ms": percentile(stat_ms, 0.99),
        "ls_p50_ms": percentile(ls_ms, 0.5),
        "ls_p99_ms": percentile(ls_ms, 0.99),
        "master_rss_mb": rss / MB,
        "restart_s": restart,
    }


def namespace_scale(work: Path, entries: int, per_dir: int, stats: int, listings: int) -> dict:
    """The probes at a small namespace (the baseline) and again at ``entries`` entries."""
    home = work / "sector-namespace"
    db = home / "master" / "metadata.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    small_dirs = 2
    fill_store(db, small_dirs, per_dir)
    with cluster(home) as running:
        log(f"namespace: probing {small_dirs * per_dir:,} entries (baseline)")
        small = probe_namespace(running, small_dirs, per_dir, stats, listings)
    big_dirs = max(small_dirs, entries // per_dir)
    log(f"namespace: filling the store to {big_dirs * per_dir:,} entries")
    fill = fill_store(db, big_dirs - small_dirs, per_dir, first_dir=small_dirs)
    with cluster(home) as running:
        log(f"namespace: probing {big_dirs * per_dir:,} entries")
        large = probe_namespace(running, big_dirs, per_dir, stats, listings)
    large["fill_s"] = fill
    large["db_mb"] = os.path.getsize(db) / MB
    return {"small": small, "large": large}
