#!/usr/bin/env python3
"""locality.py - send work to where the data is, as Sector's Sphere did.

    python examples/locality.py [BASE_URL]

``fs.hosts(path)`` names the slaves (host, port) holding a file's current
version. Grouping files by that host gives one work list per machine; here a
thread pool runs one worker per host (on a real cluster each worker would run
*on* that host, e.g. a Dask worker pinned there with
``client.submit(..., workers=[host])``). BASE_URL defaults to
``sector:///examples/locality``.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import fsspec


def count_lines(fs: fsspec.AbstractFileSystem, paths: list[str]) -> int:
    return sum(fs.cat_file(path).count(b"\n") for path in paths)


def main(base: str) -> None:
    fs, root = fsspec.core.url_to_fs(base)
    # written three at a time, as an ingest job would: the master spreads
    # concurrent writes over the slaves
    with ThreadPoolExecutor(max_workers=3) as pool:
        for n in range(12):
            pool.submit(fs.pipe_file, f"{root}/log-{n:02d}.txt", b"event\n" * (n + 1))

    by_host: dict[tuple[str, int], list[str]] = defaultdict(list)
    for path in sorted(fs.glob(f"{root}/log-*.txt")):
        holders = fs.hosts(path)
        by_host[holders[0] if holders else ("nowhere", 0)].append(path)

    with ThreadPoolExecutor(max_workers=len(by_host)) as pool:
        counts = {host: pool.submit(count_lines, fs, paths) for host, paths in by_host.items()}
    for (host, port), future in sorted(counts.items()):
        files = len(by_host[(host, port)])
        print(f"{host}:{port}: {files} files, {future.result()} lines")
    print(f"total: {sum(f.result() for f in counts.values())} lines")


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "sector:///examples/locality")
