"""fsspec's own abstract test suites, run against a real Sector cluster.

Every class ``fsspec.tests.abstract`` ships is collected here (copy, get, put,
open, pipe ... whichever the installed fsspec has), so an fsspec upgrade that
adds a suite runs it without anyone editing this file.
"""

from __future__ import annotations

import itertools
import os
import posixpath

import fsspec.tests.abstract as abstract
import pytest

from sector.cluster import LocalCluster
from sector.fs import SectorFileSystem

from .conftest import sector_fs

_numbers = itertools.count(os.getpid() * 10_000)

SUITES = {
    name: suite
    for name, suite in vars(abstract).items()
    if name.startswith("Abstract") and name.endswith("Tests") and isinstance(suite, type)
}


def test_the_installed_fsspec_ships_the_suites_we_expect() -> None:
    assert {"AbstractCopyTests", "AbstractGetTests", "AbstractPutTests"} <= set(SUITES)


class SectorFixtures(abstract.AbstractFixtures):
    """Where the suites work: a fresh directory of the shared cluster per test."""

    @pytest.fixture
    def fs(self, cluster: LocalCluster) -> SectorFileSystem:
        return sector_fs(cluster)

    @pytest.fixture
    def fs_join(self):
        return posixpath.join

    @pytest.fixture
    def fs_path(self, fs: SectorFileSystem) -> str:
        # not the shared ``workdir``: its name holds the test's parameters, and
        # the brackets there would be glob characters to these suites
        path = f"/tests/fsspec-{next(_numbers)}"
        fs.makedirs(path)
        return path


for _name, _suite in SUITES.items():
    _test_class = type(_name.replace("Abstract", "TestSector"), (SectorFixtures, _suite), {})
    globals()[_test_class.__name__] = _test_class
