"""CPU per operation of each process, phase by phase: what to compare across two checkouts.

``python -m bench.cpu --files 5000`` runs the small-file phases from one
client against a one-slave cluster and prints, per operation, the CPU time
the master, the slave and the client spent (user + system, read from the
kernel) and the wall time. On a shared machine the rates in ``python -m
bench`` swing by 20 % from run to run; CPU per operation moves far less, so
to judge a change run this on the old and the new code back to back, a few
times in turn (``PYTHONPATH=<old checkout>/src python -m bench.cpu``). The
kernel counts CPU time in clock ticks (10 ms), hence thousands of operations.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from sector.client import Client
from sector.protocol.messages import WRITE

from .metadata import PAYLOAD
from .sector_runs import cluster


def phases(client: Client, files: int) -> list[tuple[str, int, Callable[[], None]]]:
    """(name, operations, workload) in the order they must run."""
    names = [f"/cpu/f{i:06d}" for i in range(files)]
    data = b"x" * PAYLOAD
    listings = max(1, files // 100)

    def create() -> None:
        for name in names:
            remote = client.open(name, WRITE)
            remote.write(data)
            remote.close()

    def stat() -> None:
        for name in names:
            client.stat(name)

    def ls() -> None:
        for _ in range(listings):
            client.ls("/cpu")

    def read() -> None:
        for name in names:
            with client.open(name) as remote:
                remote.read()

    def rename() -> None:
        for name in names:
            client.move(name, name + ".r")

    def delete() -> None:
        for name in names:
            client.rm(name + ".r")

    return [
        ("create", files, create),
        ("stat", files, stat),
        (f"ls ({files:,} entries)", listings, ls),
        ("read", files, read),
        ("rename", files, rename),
        ("delete", files, delete),
    ]


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__)
    parser.add_argument("--files", type=int, default=5000)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="sector-cpu-", dir="/var/tmp"))
    try:
        with cluster(work / "cluster") as running:
            servers = {p.name: psutil.Process(p.popen.pid) for p in running.processes}
            client = running.connect()
            client.mkdir("/cpu")
            columns = ("master µs", "slave µs", "client µs", "wall µs")
            print(f"{'phase':22} " + " ".join(f"{c:>10}" for c in columns))
            try:
                for name, count, workload in phases(client, args.files):
                    before = {n: cpu_seconds(p) for n, p in servers.items()}
                    own, wall = time.process_time(), time.perf_counter()
                    workload()
                    own, wall = time.process_time() - own, time.perf_counter() - wall
                    used = {n: cpu_seconds(p) - before[n] for n, p in servers.items()}
                    slaves = sum(v for n, v in used.items() if n != "master")
                    per = 1e6 / count
                    print(
                        f"{name:22} {used['master'] * per:10.1f} {slaves * per:10.1f} "
                        f"{own * per:10.1f} {wall * per:10.1f}"
                    )
            finally:
                client.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
