"""Sector through fsspec, beside what the same bytes cost without it, in the same run.

Three comparisons (issue 10):

- one large file read through ``fs.cat_file`` and through ``fs.open()`` in
  8 MiB reads, beside ``Client.download`` of the same file (what ``sector
  download`` runs; the command adds only its start-up) - interleaved run by run;
- ``fs.cat_ranges`` over 64 ranges (4 MiB each, smaller for a small file)
  beside the same ranges read one after another with ``fs.cat_file``;
- ``pd.read_parquet`` of a ~200 MB Parquet file through ``sector://`` beside
  the same file on the local disk.

The page cache is dropped before every large-file read and every Parquet read
when the suite may (root), so each side starts cold; the range reads run warm
(into memory), because they measure overlap, not the disk.
"""

from __future__ import annotations

import time
from pathlib import Path

import fsspec

from .common import MiB, drop_caches, log
from .sector_runs import cluster

READ_BLOCK = 8 * MiB
RANGES = 64
RANGE_SIZE = 4 * MiB
#: Rows of the Parquet file: three float64 columns and an int64 id of random values,
#: ~200 MB on disk at full size (random doubles do not compress).
PARQUET_ROWS = 6_250_000


def _timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _read_in_blocks(fs: fsspec.AbstractFileSystem, path: str) -> int:
    total = 0
    with fs.open(path, "rb") as handle:
        while block := handle.read(READ_BLOCK):
            total += len(block)
    return total


def make_parquet(path: Path, rows: int) -> None:
    import numpy as np
    import pandas as pd

    generator = np.random.default_rng(10)
    frame = pd.DataFrame(
        {
            "id": np.arange(rows, dtype="int64"),
            "x": generator.random(rows),
            "y": generator.random(rows),
            "z": generator.standard_normal(rows),
        }
    )
    frame.to_parquet(path, compression="snappy")


def run(work: Path, source: Path, size: int, runs: int, drop: bool, quick: bool) -> dict:
    """Seconds for every read, by kind and run, plus the sizes they moved."""
    import pandas as pd

    out: dict = {
        "size": size,
        "download_s": [],
        "cat_file_s": [],
        "open_read_s": [],
        "ranges": {},
        "parquet": {},
    }
    with cluster(work / "sector-data", slaves=1) as running:
        assert running.master_address is not None
        host, port = running.master_address
        options = {
            "host": host,
            "port": port,
            "user": "test",
            "password": "xxx",
            "cert": str(running.layout.cert),
        }
        fs = fsspec.filesystem("sector", skip_instance_cache=True, **options)
        client = running.connect()
        try:
            client.upload(source, "/data/big.bin")
            local = work / "data-download.bin"
            for number in range(runs):
                log(f"fsspec large-file run {number + 1}/{runs}")
                for key, action in (
                    ("download_s", lambda: client.download("/data/big.bin", local)),
                    ("cat_file_s", lambda: fs.cat_file("/data/big.bin")),
                    ("open_read_s", lambda: _read_in_blocks(fs, "/data/big.bin")),
                ):
                    if drop:
                        drop_caches()
                    out[key].append(_timed(action))
                    local.unlink(missing_ok=True)

            range_size = min(RANGE_SIZE, size // RANGES)
            step = size // RANGES
            starts = [n * step for n in range(RANGES)]
            ends = [s + range_size for s in starts]
            paths = ["/data/big.bin"] * RANGES
            fs.cat_file("/data/big.bin")  # warm: this part measures overlap, not the disk
            out["ranges"] = {
                "count": RANGES,
                "size": range_size,
                "parallel_s": [],
                "sequential_s": [],
            }
            for number in range(runs):
                log(f"fsspec cat_ranges run {number + 1}/{runs}")
                out["ranges"]["parallel_s"].append(
                    _timed(lambda: fs.cat_ranges(paths, starts, ends, on_error="raise"))
                )
                out["ranges"]["sequential_s"].append(
                    _timed(
                        lambda: [
                            fs.cat_file(p, s, e)
                            for p, s, e in zip(paths, starts, ends, strict=True)
                        ]
                    )
                )

            rows = PARQUET_ROWS // 50 if quick else PARQUET_ROWS
            parquet = work / "table.parquet"
            log(f"making a Parquet file of {rows:,} rows")
            make_parquet(parquet, rows)
            client.upload(parquet, "/data/table.parquet")
            url = f"sector://{host}:{port}/data/table.parquet"
            out["parquet"] = {
                "bytes": parquet.stat().st_size,
                "rows": rows,
                "local_s": [],
                "sector_s": [],
            }
            for number in range(runs):
                log(f"read_parquet run {number + 1}/{runs}")
                for key, target, storage in (
                    ("local_s", str(parquet), None),
                    ("sector_s", url, options),
                ):
                    if drop:
                        drop_caches()
                    out["parquet"][key].append(
                        _timed(lambda t=target, s=storage: pd.read_parquet(t, storage_options=s))
                    )
        finally:
            client.close()
            fs.close()
    return out
