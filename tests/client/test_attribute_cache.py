"""A caching client never shows what another client has been told is changed.

Two real clients on the shared cluster: ``cached`` answers ``stat`` from its
cache where it may, ``other`` changes things. After each change ``other`` is
acknowledged, ``cached``'s very next call must see it - whether it was busy
(it lets go at once) or idle (the master waits its lease out).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from sector.client import Client
from sector.cluster import LocalCluster
from sector.master.cache_leases import CACHE_LEASE
from tests.support import PASSWORD, USER, connect, wait_until


def caching_client(cluster: LocalCluster) -> Client:
    assert cluster.master_address is not None
    session = Client(*cluster.master_address, cache=True)
    session.login(USER, PASSWORD, cluster.layout.cert)
    return session


@pytest.fixture
def cached(cluster: LocalCluster) -> Iterator[Client]:
    session = caching_client(cluster)
    yield session
    session.close()


def put(client: Client, path: str, data: bytes, replicas: int = 2) -> None:
    """Write ``path`` and wait for its ``replicas`` (the shared cluster keeps two, the
    second made in the background: a replica appearing recalls a cached ``stat`` too,
    which would make these tests' cache hits a race)."""
    with client.open(path, "wb") as remote:
        remote.write(data)
    wait_until(lambda: len(client.stat(path).slaves) >= replicas, what=f"{path}'s replicas")


def cached_twice(client: Client, path: str) -> None:
    """Stat ``path`` twice, the second answer from the cache."""
    assert client.cache is not None
    client.stat(path)
    hits = client.cache.hits
    client.stat(path)
    assert client.cache.hits == hits + 1


def test_a_repeated_stat_is_answered_from_the_cache(
    cached: Client, client: Client, workdir: str
) -> None:
    put(client, f"{workdir}/f", b"abc")
    first = cached.stat(f"{workdir}/f")
    cached_twice(cached, f"{workdir}/f")
    again = cached.stat(f"{workdir}/f")
    assert again == first and again is not first
    again.slaves.append("changed by the caller")
    assert cached.stat(f"{workdir}/f").slaves == first.slaves  # the cache keeps its own copy


def test_a_new_version_written_by_another_client_is_seen_at_once(
    cached: Client, client: Client, workdir: str
) -> None:
    path = f"{workdir}/f"
    put(client, path, b"one")
    cached_twice(cached, path)
    put(client, path, b"three", replicas=0)  # acknowledged at close
    after = cached.stat(path)
    assert (after.size, after.version) == (5, 2)


def test_a_removal_by_another_client_is_seen_at_once(
    cached: Client, client: Client, workdir: str
) -> None:
    path = f"{workdir}/f"
    put(client, path, b"x")
    cached_twice(cached, path)
    client.rm(path)
    assert not cached.exists(path)


def test_renaming_a_directory_above_is_seen_at_once(
    cached: Client, client: Client, workdir: str
) -> None:
    put(client, f"{workdir}/d/e/f", b"x")
    cached_twice(cached, f"{workdir}/d/e/f")
    cached_twice(cached, f"{workdir}/d")
    client.move(f"{workdir}/d", f"{workdir}/moved")
    with pytest.raises(FileNotFoundError):
        cached.stat(f"{workdir}/d/e/f")
    with pytest.raises(FileNotFoundError):
        cached.stat(f"{workdir}/d")
    assert cached.stat(f"{workdir}/moved/e/f").size == 1


def test_a_new_time_is_seen_at_once(cached: Client, client: Client, workdir: str) -> None:
    path = f"{workdir}/f"
    put(client, path, b"x")
    cached_twice(cached, path)
    client.set_mtime(path, 1_000_000.0)
    assert cached.stat(path).timestamp == 1_000_000.0


def test_a_client_sees_its_own_changes(cached: Client, workdir: str) -> None:
    path = f"{workdir}/f"
    put(cached, path, b"one")
    cached_twice(cached, path)
    put(cached, path, b"three", replicas=0)
    assert cached.stat(path).size == 5
    cached_twice(cached, path)
    started = time.monotonic()
    cached.rm(path)  # recalls its own lease: it lets go while it waits for the reply
    assert time.monotonic() - started < CACHE_LEASE / 2  # not waited out
    assert not cached.exists(path)


def test_a_caching_client_creating_in_a_directory_it_cached_is_not_held_up(
    cached: Client, workdir: str
) -> None:
    cached_twice(cached, workdir)  # a new file touches the directory: its lease is recalled
    started = time.monotonic()
    put(cached, f"{workdir}/new", b"x", replicas=0)  # its close, on the master connection, lets go
    assert time.monotonic() - started < CACHE_LEASE / 2
    assert cached.stat(f"{workdir}/new").size == 1


def test_an_idle_holder_holds_a_change_up_no_longer_than_its_lease(
    cached: Client, client: Client, workdir: str
) -> None:
    path = f"{workdir}/f"
    put(client, path, b"x")
    cached_twice(cached, path)  # then reads nothing: it cannot let go before its lease ends
    started = time.monotonic()
    client.rm(path)
    assert time.monotonic() - started < CACHE_LEASE + 5.0  # a loaded machine's slack
    assert not cached.exists(path)


def test_a_change_to_a_file_nobody_cached_waits_for_nobody(
    cached: Client, client: Client, workdir: str
) -> None:
    put(client, f"{workdir}/kept", b"x")
    put(client, f"{workdir}/f", b"x")
    cached_twice(cached, f"{workdir}/kept")
    started = time.monotonic()
    client.rm(f"{workdir}/f")
    assert time.monotonic() - started < CACHE_LEASE  # no recall: answered at once
    assert cached.stat(f"{workdir}/kept").size == 1


def test_a_client_whose_master_restarted_forgets_its_cache(make_cluster) -> None:  # noqa: ANN001
    cluster: LocalCluster = make_cluster(slaves=1)
    writer = connect(cluster)
    reader = caching_client(cluster)
    try:
        put(writer, "/f", b"x", replicas=1)
        cached_twice(reader, "/f")
        cluster.restart_master()
        writer.rm("/f")  # on a fresh session, to a master that never leased /f
        assert not reader.exists("/f")
    finally:
        reader.close()
        writer.close()
