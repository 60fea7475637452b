#!/usr/bin/env python3
"""zarr_array.py - a chunked zarr array stored on Sector through ``fs.get_mapper()``.

    python examples/zarr_array.py [BASE_URL]

Every chunk is a Sector file, written whole and visible atomically. BASE_URL
defaults to ``sector:///examples/zarr``.
"""

from __future__ import annotations

import sys

import fsspec
import numpy as np
import zarr


def main(base: str) -> None:
    fs, root = fsspec.core.url_to_fs(base)
    store = fs.get_mapper(f"{root}/temperature.zarr")
    grid = zarr.open_array(store, mode="w", shape=(365, 180), chunks=(73, 90), dtype="f4")
    days = np.arange(365, dtype="f4")[:, None]
    grid[:] = 15 + 10 * np.sin(days / 58.0) + np.zeros((1, 180), dtype="f4")
    print(f"{len(fs.find(f'{root}/temperature.zarr'))} files in {root}/temperature.zarr")

    again = zarr.open_array(fs.get_mapper(f"{root}/temperature.zarr"), mode="r")
    print(f"shape {again.shape}, chunks {again.chunks}")
    print(f"day 100, first 3 cells: {[round(float(x), 2) for x in again[100, :3]]}")


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "sector:///examples/zarr")
