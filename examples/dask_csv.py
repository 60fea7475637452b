#!/usr/bin/env python3
"""dask_csv.py - Dask reading a multi-file CSV dataset from Sector with one glob.

    python examples/dask_csv.py [BASE_URL]

Writes ``part-0.csv`` ... ``part-3.csv`` under BASE_URL (default
``sector:///examples/dask``), then ``dd.read_csv(".../part-*.csv")`` makes one
partition per file and the synchronous scheduler runs the job in this process.
"""

from __future__ import annotations

import sys

import dask
import dask.dataframe as dd
import pandas as pd


def main(base: str) -> None:
    for part in range(4):
        rows = pd.DataFrame(
            {
                "sensor": [f"s{n % 3}" for n in range(part * 25, part * 25 + 25)],
                "reading": [float(n) for n in range(part * 25, part * 25 + 25)],
            }
        )
        rows.to_csv(f"{base}/part-{part}.csv", index=False)
    frame = dd.read_csv(f"{base}/part-*.csv")
    print(f"{frame.npartitions} partitions")
    with dask.config.set(scheduler="synchronous"):
        summary = frame.groupby("sensor")["reading"].agg(["count", "mean"]).compute()
    print(summary.sort_index().to_string())


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "sector:///examples/dask")
