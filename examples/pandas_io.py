#!/usr/bin/env python3
"""pandas_io.py - pandas reading and writing CSV and Parquet on Sector through sector:// URLs.

    python examples/pandas_io.py [BASE_URL]

BASE_URL defaults to ``sector:///examples/pandas``: no host means the cluster
the ``sector`` command would use (``SECTOR_MASTER``, ``client.conf``, or the
one ``sector up`` runs), and so do the user and password. Nothing of Sector's
is imported: pandas finds ``sector://`` through fsspec's entry point.
"""

from __future__ import annotations

import sys

import pandas as pd


def main(base: str) -> None:
    weather = pd.DataFrame(
        {
            "city": ["Oslo", "Lima", "Pune", "Oslo", "Lima"],
            "day": pd.date_range("2024-05-01", periods=5, freq="D"),
            "temp_c": [3.5, 19.0, 31.2, 4.1, 18.4],
        }
    )
    weather.to_csv(f"{base}/weather.csv", index=False)
    weather.to_parquet(f"{base}/weather.parquet")

    from_csv = pd.read_csv(f"{base}/weather.csv", parse_dates=["day"])
    from_parquet = pd.read_parquet(f"{base}/weather.parquet", columns=["city", "temp_c"])
    print(from_csv.to_string(index=False))
    print()
    print(from_parquet.groupby("city")["temp_c"].mean().round(2).to_string())


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "sector:///examples/pandas")
