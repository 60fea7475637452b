"""What replicas cost a writer, and how fast a dead slave's data comes back.

On one cluster of three slaves (REPLICA_NUM 2), run after run and in turn:

* the same upload into a directory kept at one replica (the baseline), at two
  (the copy follows in the background) and at two with HiRELIABLE (the close
  waits for the chain) - each started with nothing else copying, so that the
  ratio is the writer's own cost, and each run starting with the next kind, so
  that no kind always comes first after the cp;
* the disk's own ``cp`` + fsync of that file, the baseline of repair;
* repair: a slave holding about two thirds of ``size`` bytes is killed (after the
  page cache is dropped) and the time until every file has two live replicas
  again gives the repair rate; meanwhile a client reads another file in a loop,
  its throughput beside the one it had just before the kill.

``python -m bench --only repl`` runs it (``--quick``: 8 MiB); :func:`measure` is
what the suite calls.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path

from sector.client import Client
from sector.cluster import LocalCluster
from sector.protocol.messages import WRITE

from .baselines import cp_with_fsync
from .common import MiB, drop_caches, log

#: Files the repair's data is spread over (a slave dies holding about 2/3 of them).
REPAIR_FILES = 8
#: Seconds of reading before the fault, for the readers' baseline.
READ_WINDOW = 3.0
SETTLE_TIMEOUT = 600.0


@contextmanager
def replicated_cluster(home: Path, slaves: int = 3):
    running = LocalCluster(home=home, slaves=slaves, port=0, log_level=1, heartbeat=0.5,
                           slave_timeout=5.0, replicas=2)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def health(client: Client) -> dict:
    return client.sysinfo()["master"]["health"]


def settled(client: Client) -> bool:
    figures = health(client)
    return figures["scanned"] and not any(
        figures[k] for k in ("under_replicated", "lost", "copying", "queued")
    )


def wait_settled(client: Client, timeout: float = SETTLE_TIMEOUT) -> float:
    """Seconds until every file is at its target with nothing copying (polled, 20 ms)."""
    started = time.perf_counter()
    while not settled(client):
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"replication did not settle within {timeout:.0f}s")
        time.sleep(0.02)  # polling a condition, with a deadline
    return time.perf_counter() - started


def measure(work: Path, source: Path, size: int, runs: int, drop: bool) -> dict:
    out: dict = {"upload_1_s": [], "upload_2_s": [], "upload_hi_s": [], "cp_s": []}
    with replicated_cluster(work / "sector-repl") as running:
        client = running.connect()
        try:
            client.mkdir("/one")
            client.set_replication("/one", 1)
            client.mkdir("/two")
            client.mkdir("/sure")
            client.set_replication("/sure", 2, hireliable=True)
            wait_settled(client)
            kinds = [("upload_1_s", "/one"), ("upload_2_s", "/two"), ("upload_hi_s", "/sure")]
            for run in range(1, runs + 1):
                # each run starts with another kind: none always pays (or skips) the warm-up
                shift = (run - 1) % len(kinds)
                order = kinds[shift:] + kinds[:shift]
                log(f"replication run {run}/{runs}: cp, then uploads "
                    + ", ".join(folder for _, folder in order))
                out["cp_s"].append(cp_with_fsync(source, work / "repl-cp.bin", drop)[0])
                for key, folder in order:
                    if drop:
                        drop_caches()
                    started = time.perf_counter()
                    client.upload(source, f"{folder}/big.bin")
                    out[key].append(time.perf_counter() - started)
                    wait_settled(client)  # the background copy ends before the next upload
                for folder in ("/one", "/two", "/sure"):
                    client.rm(f"{folder}/big.bin")
            out.update(repair(running, client, source, size, drop))
        finally:
            client.close()
    return out


def repair(running: LocalCluster, client: Client, source: Path, size: int, drop: bool) -> dict:
    """Kill the slave holding most of ``size`` bytes; the repair's rate, and a reader's."""
    part = max(1, size // REPAIR_FILES)
    with open(source, "rb") as data:
        chunk = data.read(part)
    for n in range(REPAIR_FILES):
        with client.open(f"/repair/{n}", WRITE) as remote:
            remote.write(chunk)
    client.upload(source, "/reads/file")
    wait_settled(client)
    addresses = {f"/repair/{n}": client.stat(f"/repair/{n}").slaves for n in range(REPAIR_FILES)}
    reader_home = set(client.stat("/reads/file").slaves)
    root = Client(*running.master_address)  # where slaves are is for administrators
    root.login("root", (running.layout.conf / "root.password").read_text().strip(),
               running.layout.cert)
    slaves = root.sysinfo()["slaves"]
    root.close()

    def held(address: str) -> int:
        return sum(part for holders in addresses.values() if address in holders)

    # the victim: the slave holding most repair data and, if it can be, not the reader's file
    victim = max(slaves, key=lambda s: (held(s["address"]), s["address"] not in reader_home))
    lost = held(victim["address"])
    number = next(
        n for n in range(1, running.slaves + 1)
        if (running.layout.slave_dir(n) / "slave.id").read_text().strip() == victim["id"]
    )
    reader = Reader(running, "/reads/file")
    reader.start()
    try:
        time.sleep(READ_WINDOW)  # the readers' baseline window: a measurement, not a wait
        before = reader.rate()
        if drop:
            drop_caches()
        log(f"repair: killing slave{number}, which holds {lost / MiB:.0f} MiB to copy")
        reader.mark()
        started = time.perf_counter()
        running.stop_process(f"slave{number}", kill=True)
        wait_settled(client)
        elapsed = time.perf_counter() - started
        during = reader.rate()
    finally:
        reader.stop()
    if reader.errors:
        raise reader.errors[0]
    return {"repair_bytes": lost, "repair_s": elapsed, "read_before_mb_s": before,
            "read_during_mb_s": during}


class Reader:
    """A client reading one file over and over on its own thread, counting bytes."""

    def __init__(self, running: LocalCluster, path: str):
        self.client = running.connect()
        self.path = path
        self.bytes = 0
        self.since = time.perf_counter()
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.since = time.perf_counter()
        self._thread.start()

    def mark(self) -> None:
        self.bytes, self.since = 0, time.perf_counter()

    def rate(self) -> float:
        """MB/s since the last mark (or the start)."""
        return self.bytes / (time.perf_counter() - self.since) / 1e6

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.client.close()

    def _run(self) -> None:
        buffer = memoryview(bytearray(4 * MiB))
        try:
            while not self._stop.is_set():
                with self.client.open(self.path) as remote:
                    while not self._stop.is_set():
                        count = remote.readinto(buffer)
                        if count <= 0:
                            break
                        self.bytes += count
        except BaseException as exc:
            self.errors.append(exc)
