"""A soak run: faults for minutes under concurrent reads and writes, then every byte checked.

``python -m bench.soak`` (``--minutes 3`` by default) starts a cluster of four
slaves keeping two replicas, then, while writer threads create and rewrite
files and reader threads read them back, keeps killing (``kill -9``) random
slaves and starting them again, and once kills the master. At the end every
server runs again, the cluster is left to settle, and every file is read back
through the API and compared byte for byte with what its last successful
``close`` wrote. It prints the files written, the faults injected, the files
verified and the files lost - which must be 0 (the exit status says so).

A write whose ``close`` failed (its slave or the master died under it) may
have been committed or not: either version is then accepted, never a mix and
never anything else. A read that fails while every slave holding the file is
down is counted, not treated as a loss: the bytes are back with their slave.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sector.client import Client
from sector.cluster import LocalCluster
from sector.errors import SectorError, code_name
from sector.protocol.messages import READ, TRUNC, WRITE

from .common import log

SLAVES = 4
SETTLE_TIMEOUT = 300.0


@dataclass
class Ledger:
    """What each file may hold now: the digests its last closes may have left."""

    expected: dict[str, set[str]] = field(default_factory=dict)
    #: Every digest any close of the path may have left: what a reader may see, as a
    #: rewrite can commit (once or more) between its pick and its open.
    history: dict[str, set[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    written: int = 0
    write_failures: int = 0
    reads: int = 0
    read_failures: int = 0
    #: Failed reads by the error the caller saw (E_CONNECTION, E_RESOURCE ...).
    failure_kinds: Counter[str] = field(default_factory=Counter)
    wrong_reads: list[str] = field(default_factory=list)

    def may_hold(self, path: str, digest: str) -> None:
        """A write of ``digest`` is about to start: from its commit on, readers may see it
        (before its writer's thread records the commit)."""
        with self.lock:
            self.history.setdefault(path, set()).add(digest)

    def committed(self, path: str, digest: str) -> None:
        with self.lock:
            self.expected[path] = {digest}
            self.history.setdefault(path, set()).add(digest)
            self.written += 1

    def uncertain(self, path: str, digest: str) -> None:
        """A close failed: the new version may or may not be the file's content."""
        with self.lock:
            self.expected.setdefault(path, {""}).add(digest)
            self.history.setdefault(path, set()).add(digest)
            self.write_failures += 1

    def pick(self, rng: random.Random) -> tuple[str, set[str]] | None:
        with self.lock:
            if not self.expected:
                return None
            path = rng.choice(list(self.expected))
            return path, set(self.expected[path])


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def writer(cluster: LocalCluster, ledger: Ledger, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    client = connect(cluster)
    n = 0
    while not stop.is_set():
        picked = ledger.pick(rng) if rng.random() < 0.3 else None
        if picked is not None:
            path = picked[0]  # rewrite one
        else:
            n += 1
            path = f"/soak/w{seed}/{n:05d}"
        data = rng.randbytes(rng.choice((1_000, 50_000, 300_000, 2_000_000)))
        ledger.may_hold(path, digest(data))  # readers may see it from the commit on
        try:
            remote = client.open(path, WRITE | TRUNC)
        except (SectorError, OSError):
            continue  # not opened: nothing changed
        try:
            with remote:
                remote.write(data)
        except (SectorError, OSError):
            ledger.uncertain(path, digest(data))
            continue
        ledger.committed(path, digest(data))
    client.close()


def reader(cluster: LocalCluster, ledger: Ledger, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    client = connect(cluster)
    while not stop.is_set():
        picked = ledger.pick(rng)
        if picked is None:
            stop.wait(0.05)
            continue
        path, candidates = picked
        step = "open"  # the master's part (grant) or the slaves' (the bytes)?
        try:
            with client.open(path, READ) as remote:
                step = "read"
                data = remote.read()
        except (SectorError, OSError) as exc:
            with ledger.lock:
                ledger.read_failures += 1
                ledger.failure_kinds[f"{step} {_kind(exc)}"] += 1
            continue
        with ledger.lock:
            ledger.reads += 1
            # rewrites may have committed since the pick: bytes that no close of this
            # file wrote (a mix of versions, damage) are wrong
            if digest(data) not in candidates | ledger.history.get(path, set()):
                ledger.wrong_reads.append(
                    f"{path}: {len(data)} bytes, {digest(data)[:12]}, "
                    f"{len(ledger.history.get(path, ()))} versions written"
                )
    client.close()


def _kind(exc: BaseException) -> str:
    """The error code a failed read gave its caller, else the exception's name."""
    if isinstance(exc, SectorError):
        return code_name(exc.code)
    return type(exc).__name__


def connect(cluster: LocalCluster) -> Client:
    return cluster.connect()


def settled(client: Client) -> bool:
    health = client.sysinfo()["master"]["health"]
    return health["scanned"] and not any(
        health[k] for k in ("under_replicated", "lost", "copying", "queued")
    )


def wait_for(condition, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)  # polling a condition, with a deadline


def soak(home: Path, minutes: float, seed: int) -> int:
    rng = random.Random(seed)
    cluster = LocalCluster(home=home, slaves=SLAVES, port=0, log_level=1, heartbeat=0.3,
                           slave_timeout=3.0, replicas=2)
    cluster.start()
    ledger = Ledger()
    stop = threading.Event()
    faults = {"slave kills": 0, "slave restarts": 0, "master kills": 0}
    threads = [threading.Thread(target=writer, args=(cluster, ledger, stop, s)) for s in (1, 2)]
    threads += [threading.Thread(target=reader, args=(cluster, ledger, stop, s)) for s in (3, 4)]
    try:
        for thread in threads:
            thread.start()
        began = time.monotonic()
        end = began + minutes * 60
        master_killed = False
        down: dict[int, float] = {}  # slave number -> when to start it again
        while time.monotonic() < end:
            now = time.monotonic()
            for number, when in list(down.items()):
                if now >= when:
                    cluster.start_slave(number)
                    faults["slave restarts"] += 1
                    del down[number]
            if not master_killed and now - began > minutes * 30:
                log("soak: kill -9 the master")
                cluster.restart_master(kill=True)
                faults["master kills"] += 1
                master_killed = True
            elif len(down) < 2 and rng.random() < 0.5:
                number = rng.choice([n for n in range(1, SLAVES + 1) if n not in down])
                log(f"soak: kill -9 slave{number}")
                cluster.stop_process(f"slave{number}", kill=True)
                faults["slave kills"] += 1
                down[number] = time.monotonic() + rng.uniform(2, 12)
            stop.wait(rng.uniform(2, 6))
        stop.set()
        for thread in threads:
            thread.join()
        for number in list(down):
            cluster.start_slave(number)
            faults["slave restarts"] += 1
        client = connect(cluster)
        faults_ended = time.monotonic()
        wait_for(lambda: sum(s["status"] == "alive" for s in client.sysinfo()["slaves"])
                 == SLAVES, SETTLE_TIMEOUT, "every slave back")
        wait_for(lambda: settled(client), SETTLE_TIMEOUT, "every file at 2 replicas")
        converged = time.monotonic() - faults_ended
        verified, lost = 0, []
        for path, candidates in sorted(ledger.expected.items()):
            try:
                with client.open(path, READ) as remote:
                    got = digest(remote.read())
            except FileNotFoundError:
                got = ""  # a create whose close failed: absent is one of its outcomes
            except (SectorError, OSError) as exc:
                lost.append(f"{path}: {exc}")
                continue
            if got in candidates:
                verified += 1
            else:
                lost.append(f"{path}: unexpected content")
        client.close()
    finally:
        stop.set()
        cluster.stop()
    print(f"soak: {minutes:g} minutes, {SLAVES} slaves, 2 replicas, seed {seed}")
    print(f"files written:        {ledger.written} commits to {len(ledger.expected)} files"
          f" ({ledger.write_failures} writes failed under faults)")
    print("faults injected:      " + ", ".join(f"{v} {k}" for k, v in faults.items()))
    kinds = ", ".join(f"{k} {v}" for k, v in ledger.failure_kinds.most_common()) or "none"
    print(f"reads during faults:  {ledger.reads} verified, {ledger.read_failures} failed "
          f"({kinds}; up to two of the four slaves are down at once, so both holders of a "
          f"file may be, and the master restarts once), {len(ledger.wrong_reads)} wrong bytes")
    print(f"converged:            every file at 2 live replicas {converged:.1f} s after "
          "the faults stopped")
    print(f"files verified:       {verified}")
    print(f"files lost:           {len(lost)}")
    for line in lost[:20] + ledger.wrong_reads[:20]:
        print(f"  {line}")
    return 1 if lost or ledger.wrong_reads else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--minutes", type=float, default=3.0, help="how long to inject faults")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 10_000)
    parser.add_argument("--work-parent", type=Path, default=Path("/var/tmp"))
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="sector-soak-", dir=args.work_parent))
    try:
        return soak(home, args.minutes, args.seed)
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
