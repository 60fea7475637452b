"""What the client attribute cache buys, and what its coherence costs a writer.

``python -m bench.cache`` starts a local cluster (one slave), writes ``--files``
small files, then measures in the same run:

* repeated ``stat`` of those files, ``--rounds`` times over, by one client
  without the cache (the baseline) and by one with ``cache=True``: stats per
  second and their ratio (after the first round a caching client holds every
  lease it may: the files are fewer than a lease's worth of stats);
* how long another client's ``rm`` takes when nobody caches the file (the
  baseline), when a *busy* caching client holds it (it keeps calling, so it
  lets go at its next call), and when an *idle* one does (the master waits its
  lease out: at most ``CACHE_LEASE``): milliseconds, median of ``--changes``.

Figures from a shared machine are noisy; the pairs are measured back to back.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sector.client import Client
from sector.cluster import DEFAULT_PASSWORD, DEFAULT_USER, LocalCluster
from sector.master.cache_leases import CACHE_LEASE

from .sector_runs import cluster


def login(running: LocalCluster, cache: bool) -> Client:
    assert running.master_address is not None
    client = Client(*running.master_address, cache=cache)
    client.login(DEFAULT_USER, DEFAULT_PASSWORD, running.layout.cert)
    return client


def stat_rate(client: Client, paths: list[str], rounds: int) -> float:
    """Stats per second over ``rounds`` passes of ``paths``."""
    started = time.perf_counter()
    for _ in range(rounds):
        for path in paths:
            client.stat(path)
    return rounds * len(paths) / (time.perf_counter() - started)


def rm_latency(writer: Client, path: str, before: Callable[[], None]) -> float:
    """Milliseconds ``writer.rm(path)`` takes once ``before`` has run (it may lease it)."""
    with writer.open(path, "wb") as remote:
        remote.write(b"x")
    before()
    started = time.perf_counter()
    writer.rm(path)
    return (time.perf_counter() - started) * 1e3


class BusyHolder:
    """A caching client that keeps calling (``stat`` of another file) on a thread."""

    def __init__(self, client: Client, busy_path: str):
        self.client, self.busy_path = client, busy_path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.client.stat(self.busy_path)
            time.sleep(0.001)  # a call a millisecond: a client at work, not a spin

    def __enter__(self) -> BusyHolder:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(running: LocalCluster, args: argparse.Namespace) -> dict[str, object]:
    writer, plain, caching = (login(running, cache) for cache in (False, False, True))
    try:
        paths = [f"/cache/f{i}" for i in range(args.files)]
        for path in paths:
            with writer.open(path, "wb") as remote:
                remote.write(b"x" * 100)
        figures: dict[str, object] = {
            "uncached": stat_rate(plain, paths, args.rounds),
            "cached": stat_rate(caching, paths, args.rounds),
            "nobody": [
                rm_latency(writer, f"/cache/n{i}", lambda: None) for i in range(args.changes)
            ],
        }

        def leased(path: str) -> Callable[[], None]:
            def lease() -> None:  # the caching client stats it, and so holds its lease
                caching.stat(path)

            return lease

        with BusyHolder(caching, paths[0]):
            figures["busy"] = [
                rm_latency(writer, f"/cache/b{i}", leased(f"/cache/b{i}"))
                for i in range(args.changes)
            ]
        figures["idle"] = [
            rm_latency(writer, f"/cache/i{i}", leased(f"/cache/i{i}")) for i in range(args.changes)
        ]
        return figures
    finally:
        for client in (writer, plain, caching):
            client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cache", description=__doc__)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--changes", type=int, default=5)
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="sector-bench-cache-") as work,
        cluster(Path(work) / "cluster") as running,
    ):
        m = measure(running, args)
    uncached, cached = float(m["uncached"]), float(m["cached"])  # type: ignore[arg-type]
    print(f"repeated stat of {args.files} files x {args.rounds}: stats/s")
    print(f"{'without cache (baseline)':34} {uncached:10.0f}")
    print(f"{'cache=True':34} {cached:10.0f}   {cached / uncached:.2f}x the baseline")
    print(f"another client's rm: median ms of {args.changes} (lease {CACHE_LEASE:g} s)")
    base = statistics.median(m["nobody"])  # type: ignore[arg-type]
    print(f"{'nobody caches the file (baseline)':34} {base:10.2f}")
    for label, key in (("a busy client caches it", "busy"), ("an idle client caches it", "idle")):
        median = statistics.median(m[key])  # type: ignore[arg-type]
        print(f"{label:34} {median:10.2f}   {median / base:.2f}x the baseline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
