"""What checking every byte costs, and downloads drawn from two replicas at once.

Part ``integrity`` of ``python -m bench``:

* the CPU the client spends checking what it reads - the 64 KiB block sums of
  :mod:`sector.protocol.checksum`, one xxh3-64 per block - beside what the
  whole-file xxh3-128 that downloads computed before block checks cost, over
  the same bytes in memory, and beside the client's whole CPU per GB of a
  download (the ``large`` part);
* a file with two replicas (two slaves, ``REPLICA_NUM 2``) downloaded with one
  stream and with two, one from each replica, run by run in turn. Skipped,
  saying why, when the cluster does not reach two replicas in time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import xxhash

from sector.cluster import Layout, LocalCluster, write_conf
from sector.protocol import checksum
from sector.provision import set_values

from .common import MiB, log
from .sector_runs import download


class Unavailable(Exception):
    """The two-replica comparison cannot run here (the message says why)."""


def hashing_cost(size: int) -> dict[str, float]:
    """CPU seconds to check ``size`` bytes: block sums (now) and the whole-file hash (before)."""
    buffer = memoryview(os.urandom(64 * MiB))
    rounds = max(1, size // len(buffer))

    def cpu(action) -> float:
        started = time.process_time()
        for _ in range(rounds):
            action()
        return time.process_time() - started

    def blocks() -> None:
        for lo in range(0, len(buffer), 4 * MiB):  # as the client receives: 4 MiB buffers
            checksum.block_sums(buffer[lo : lo + 4 * MiB])

    def whole() -> None:
        hasher = xxhash.xxh3_128()
        for lo in range(0, len(buffer), 4 * MiB):
            hasher.update(buffer[lo : lo + 4 * MiB])
        hasher.hexdigest()

    hashed = rounds * len(buffer)
    return {"bytes": hashed, "blocks_s": cpu(blocks), "whole_s": cpu(whole)}


def two_replicas(work: Path, source: Path, size: int, runs: int, drop: bool, wait: float) -> dict:
    """Download seconds (and CPU by role) with one stream and with two, run by run.

    ``wait``: seconds the cluster gets to make the second replica.
    """
    home = work / "sector-replicas"
    layout = Layout(home)
    write_conf(layout, port=0, log_level=1, heartbeat=1.0)
    conf = layout.conf / "master.conf"
    conf.write_text(set_values(conf.read_text(), "REPLICA_NUM", ["2"], conf))
    out: dict = {"single_s": [], "dual_s": [], "cpu": {"single": [], "dual": []}}
    running = LocalCluster(home=home, slaves=2, port=0, log_level=1, heartbeat=1.0)
    running.start()
    try:
        client = running.connect()
        try:
            client.upload(source, "/bench/two.bin")
            log("waiting for the second replica")
            deadline = time.monotonic() + wait
            while len(client.stat("/bench/two.bin").slaves) < 2:
                if time.monotonic() > deadline:
                    raise Unavailable(f"the file did not get a second replica within {wait:.0f} s")
                time.sleep(0.2)  # polling the cluster's progress, with a deadline
            target = work / "two.bin"
            for run in range(1, runs + 1):
                log(f"two replicas run {run}/{runs}: one stream, then two")
                for key, streams in (("single", 1), ("dual", 2)):
                    seconds, used = download(
                        client, running, "/bench/two.bin", target, drop, streams=streams
                    )
                    out[f"{key}_s"].append(seconds)
                    out["cpu"][key].append(used)
        finally:
            client.close()
    finally:
        running.stop()
    return out
