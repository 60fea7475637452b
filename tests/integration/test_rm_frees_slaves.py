"""Removing files frees their bytes on the live slaves that hold them (orders are batched)."""

from __future__ import annotations

from sector.protocol.messages import WRITE
from tests.support import connect, wait_until


def _objects(cluster, number: int) -> set[str]:
    return {p.name for p in (cluster.layout.slave_dir(number) / "objects").rglob("*.*.*")}


def test_rm_of_files_and_of_a_directory_deletes_their_objects(make_cluster) -> None:
    cluster = make_cluster(slaves=1)
    client = connect(cluster)
    try:
        for name in ("/a", "/d/b", "/d/e/c"):
            with client.open(name, WRITE) as handle:
                handle.write(name.encode())
        assert len(_objects(cluster, 1)) == 3
        client.rm("/a")
        wait_until(lambda: len(_objects(cluster, 1)) == 2, what="the file's object to go")
        client.rm("/d")
        wait_until(lambda: not _objects(cluster, 1), what="the directory's objects to go")
    finally:
        client.close()
