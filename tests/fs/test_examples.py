"""The data-stack examples, run as scripts the way a person runs them.

Each gets only ``SECTOR_HOME`` (the test cluster's state directory, whose
``client.conf`` and ``cluster.json`` name the master and the user) and a
``sector:///`` base URL without host, as after ``sector up``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sector.client import Client
from sector.cluster import LocalCluster
from tests.support import slave_addresses

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(cluster: LocalCluster, name: str, base: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECTOR_")}
    env["SECTOR_HOME"] = str(cluster.layout.home)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), f"sector://{base}"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def base(workdir: str) -> str:
    return workdir


def test_pandas_example(cluster: LocalCluster, base: str) -> None:
    out = run_example(cluster, "pandas_io.py", base)
    assert "Oslo 2024-05-01     3.5" in out
    assert out.rstrip().splitlines()[-3:] == ["Lima    18.7", "Oslo     3.8", "Pune    31.2"]


def test_arrow_example(cluster: LocalCluster, base: str) -> None:
    out = run_example(cluster, "arrow_dataset.py", base)
    assert f"{base}/sales/year=2024/part-0.parquet" in out
    assert [line.split() for line in out.splitlines()[-2:]] == [
        ["north", "130.25"],
        ["south", "135.00"],
    ]


def test_dask_example(cluster: LocalCluster, base: str) -> None:
    out = run_example(cluster, "dask_csv.py", base)
    assert out.startswith("4 partitions\n")
    assert "s0         34  49.5" in out


def test_zarr_example(cluster: LocalCluster, base: str) -> None:
    out = run_example(cluster, "zarr_array.py", base)
    assert "shape (365, 180), chunks (73, 90)" in out


def test_upath_example(cluster: LocalCluster, base: str) -> None:
    out = run_example(cluster, "upath_notes.py", base)
    assert out.splitlines() == [
        "monday.txt: 1 line(s), 20 bytes; first: rack 4 fan replaced",
        "tuesday.txt: 2 line(s), 36 bytes; first: slave 3 disk at 91%",
    ]


def test_locality_example(cluster: LocalCluster, base: str, client: Client) -> None:
    out = run_example(cluster, "locality.py", base)
    *per_host, total = out.splitlines()
    assert total == "total: 78 lines"  # 1 + 2 + ... + 12
    slaves = {"{}:{}".format(*address) for address in slave_addresses(cluster)}
    assert per_host and {line.split(": ")[0] for line in per_host} <= slaves
    assert sum(int(line.split(": ")[1].split()[0]) for line in per_host) == 12
