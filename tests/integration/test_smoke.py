"""The first thing a user tries: the five sessions of PySector's README, as written.

Only the certificate path and the local files differ (they are this machine's).
"""

from __future__ import annotations

from pathlib import Path

import sector
from tests.support import PASSWORD, USER


def _session(cluster) -> None:
    host, port = cluster.master_address
    assert sector.init(host, port) == 0
    assert sector.login(USER, PASSWORD, str(cluster.layout.cert)) == 0


def _end() -> None:
    assert sector.logout() == 0
    assert sector.closeclient() == 0


def test_the_pysector_readme_sessions_run_as_written(cluster, tmp_path: Path) -> None:
    module_source = tmp_path / "SectorModule.cpp"
    module_source.write_bytes(b"// SectorModule.cpp\n#include <Python.h>\n" * 2000)

    # 1. Create a new directory in Sector named 'mydir'
    _session(cluster)
    assert sector.mkdir("/mydir") == 0
    _end()

    # 2. Remove a path from the Sector file system
    _session(cluster)
    assert sector.rm("/mydir") == 0
    assert sector.stat("/mydir") is None
    _end()

    # 3. Upload a file from the local file system to the Sector file system
    _session(cluster)
    assert sector.upload(str(module_source), "/SectorModule.cpp") == 0
    _end()

    # 4. Download a file from Sector to the local file system
    _session(cluster)
    downloaded = tmp_path / "downloaded.cpp"
    assert sector.download("/SectorModule.cpp", str(downloaded)) == 0
    assert downloaded.read_bytes() == module_source.read_bytes()
    _end()

    # 5. Read from a file in the Sector file system
    _session(cluster)
    f = sector.open("/SectorModule.cpp", 1)
    data = sector.read(f, 4096)
    received = data
    while len(data) != 0:
        data = sector.read(f, 4096)
        received += data
    assert sector.close(f) == 0
    assert received == module_source.read_bytes()
    _end()
    sector.init(*cluster.master_address)
    sector.login(USER, PASSWORD, str(cluster.layout.cert))
    sector.rm("/SectorModule.cpp")
    _end()
