"""A :class:`SectorFileSystem` logged in to the shared test cluster.

The file system is built the way a user builds one - through fsspec's
registry, from the ``sector`` entry point - so these tests also prove that
no import of ours is needed.
"""

from __future__ import annotations

import fsspec
import pytest

from sector.cluster import LocalCluster
from sector.fs import SectorFileSystem

from ..conftest import PASSWORD, USER


def options(cluster: LocalCluster) -> dict[str, object]:
    """The storage options that reach ``cluster`` as the test user."""
    assert cluster.master_address is not None
    host, port = cluster.master_address
    return {
        "host": host,
        "port": port,
        "user": USER,
        "password": PASSWORD,
        "cert": str(cluster.layout.cert),
    }


def sector_fs(cluster: LocalCluster) -> SectorFileSystem:
    """The file system fsspec's registry gives for ``cluster`` (no import of ours needed)."""
    filesystem = fsspec.filesystem("sector", **options(cluster))
    assert isinstance(filesystem, SectorFileSystem)
    return filesystem


@pytest.fixture
def fs(cluster: LocalCluster) -> SectorFileSystem:
    return sector_fs(cluster)


@pytest.fixture
def url(cluster: LocalCluster, workdir: str) -> str:
    """``sector://host:port`` + this test's own directory."""
    assert cluster.master_address is not None
    host, port = cluster.master_address
    return f"sector://{host}:{port}{workdir}"


@pytest.fixture
def sector_env(cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """The password and certificate in the environment, as a user would set them."""
    monkeypatch.setenv("SECTOR_PASSWORD", PASSWORD)
    monkeypatch.setenv("SECTOR_CERT", str(cluster.layout.cert))
    monkeypatch.setenv("SECTOR_USER", USER)
