"""``Client.ls``: a directory in columns from the master, Stats on the client, never stale.

The master answers ``ls`` from a cache of each directory's columns; these
tests hold it to the promise that every change acknowledged to one client is
in the next listing of another.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from msgspec.structs import replace

from sector.client import Client, Stat
from sector.cluster import LocalCluster
from sector.errors import SectorConnectionError
from sector.protocol.master import LsReply
from tests.support import connect


def put(client: Client, path: str, data: bytes) -> None:
    with client.open(path, "wb") as remote:
        remote.write(data)


@pytest.fixture
def other(cluster: LocalCluster) -> Iterator[Client]:
    """A second logged-in client: the one that makes the changes."""
    session = connect(cluster)
    yield session
    session.close()


def test_a_listing_gives_each_entry_as_stat_gives_it(client: Client, workdir: str) -> None:
    put(client, f"{workdir}/b", b"12345")
    client.mkdir(f"{workdir}/a")
    listed = client.ls(workdir)
    assert [(s.name, s.isdir) for s in listed] == [("a", True), ("b", False)]
    b = client.stat(f"{workdir}/b")
    assert (listed[1].size, listed[1].version, listed[1].checksum) == (5, b.version, b.checksum)
    assert (listed[1].timestamp, listed[1].created) == (b.timestamp, b.created)
    assert client.ls(f"{workdir}/b") == [replace(b, slaves=[])]  # a file lists as itself


def test_listed_entries_stay_out_of_the_cycle_collector(client: Client, workdir: str) -> None:
    """A listing makes one Stat per entry; tracked, they set off whole-heap collections
    that more than halved a client's listing rate."""
    put(client, f"{workdir}/a", b"x")
    [entry] = client.ls(workdir)
    assert not gc.is_tracked(entry)
    assert not gc.is_tracked(client.stat(f"{workdir}/a"))


def test_each_listed_entry_has_its_own_slaves_list(client: Client, workdir: str) -> None:
    for name in ("a", "b"):
        put(client, f"{workdir}/{name}", b"x")
    first, second = client.ls(workdir)
    first.slaves.append("somewhere:1")
    assert second.slaves == [] and client.ls(workdir)[0].slaves == []


def test_every_acknowledged_change_is_in_the_next_listing_of_another_client(
    client: Client, other: Client, workdir: str
) -> None:
    def names() -> list[tuple[str, int]]:
        return [(s.name, s.size) for s in client.ls(workdir)]

    put(other, f"{workdir}/a", b"1")
    assert names() == [("a", 1)]
    assert names() == [("a", 1)]  # from the master's cache, unchanged
    put(other, f"{workdir}/a", b"22")
    assert names() == [("a", 2)]
    other.move(f"{workdir}/a", f"{workdir}/z")
    assert names() == [("z", 2)]
    other.mkdir(f"{workdir}/d")
    assert names() == [("d", 0), ("z", 2)]
    other.rm(f"{workdir}/z")
    assert names() == [("d", 0)]


def test_a_listing_with_columns_of_unequal_length_is_refused() -> None:
    uneven = LsReply(["a", "b"], [False], [1, 2], [0.0, 0.0], [1, 1], ["", ""], [0.0, 0.0])
    with pytest.raises(SectorConnectionError, match="unequal length"):
        Stat.listed(uneven)
