#!/usr/bin/env python3
"""arrow_dataset.py - a partitioned Parquet dataset on Sector, written and queried with pyarrow.

    python examples/arrow_dataset.py [BASE_URL]

Arrow speaks to any fsspec file system through ``PyFileSystem(FSSpecHandler(fs))``;
the file system comes from the URL (``fsspec.core.url_to_fs``), so the cluster
and user are found as for the ``sector`` command. BASE_URL defaults to
``sector:///examples/arrow``.
"""

from __future__ import annotations

import sys

import fsspec
import pyarrow as pa
import pyarrow.dataset as ds
from pyarrow.fs import FSSpecHandler, PyFileSystem


def main(base: str) -> None:
    fs, root = fsspec.core.url_to_fs(base)
    arrow_fs = PyFileSystem(FSSpecHandler(fs))
    if fs.exists(f"{root}/sales"):
        fs.rm(f"{root}/sales", recursive=True)  # one request, however many files
    sales = pa.table(
        {
            "year": [2023, 2023, 2024, 2024, 2024],
            "region": ["north", "south", "north", "south", "south"],
            "amount": [120.0, 80.5, 130.25, 95.0, 40.0],
        }
    )
    ds.write_dataset(
        sales,
        f"{root}/sales",
        filesystem=arrow_fs,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("year", pa.int64())]), flavor="hive"),
    )
    for name in sorted(fs.find(f"{root}/sales")):
        print(name)
    dataset = ds.dataset(
        f"{root}/sales", filesystem=arrow_fs, format="parquet", partitioning="hive"
    )
    totals = (
        dataset.to_table(filter=ds.field("year") == 2024)
        .group_by("region")
        .aggregate([("amount", "sum")])
        .sort_by("region")
    )
    print(totals.to_pandas().to_string(index=False))


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "sector:///examples/arrow")
