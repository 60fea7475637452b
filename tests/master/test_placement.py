"""Where new files, new replicas and reads go, and which surplus replica goes away.

Slaves exist only on paper here (registered in a :class:`Registry`); nothing
talks to them. Topology lines are the ones an operator would write.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from sector.clock import ManualClock
from sector.config import TopologyRule
from sector.errors import NoDiskError, ResourceError
from sector.master.placement import Placement
from sector.master.slaves import Registry, Slave
from sector.master.store import Store
from sector.master.targets import Policy
from sector.master.topology import Topology
from sector.protocol.master import Usage

MiB = 1024 * 1024
TWO = Policy(2)


def usage(free: int = 1000 * MiB, stored: int = 0, limit: int = 0, fs: str = "") -> Usage:
    return Usage(total=2000 * MiB, free=free, stored=stored, files=0, fs=fs, limit=limit)


def racks(*lines: str) -> Topology:
    rules = []
    for line in lines:
        network, location = line.split()
        rules.append(TopologyRule(ipaddress.ip_network(network), location))
    return Topology(rules)


#: Two racks of two hosts, as in the integration test on 127.0.0.2-5.
TWO_RACKS = racks("127.0.0.2/31 /dc1/rack1", "127.0.0.4/31 /dc1/rack2")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def registry(clock: ManualClock) -> Registry:
    return Registry(clock, 30.0)


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock) -> Iterator[Store]:
    opened = Store(tmp_path / "meta.db", clock)
    yield opened
    opened.close()


def hosts(registry: Registry, *addresses: str, **usage_kw: int) -> list[Slave]:
    return [
        registry.register(f"s{n}", host, 7000 + n, usage(**usage_kw))
        for n, host in enumerate(addresses, start=1)
    ]


# --- the topology ---------------------------------------------------------------------


def test_distance_counts_the_levels_two_hosts_do_not_share() -> None:
    topology = racks("10.1.1.0/24 /dc1/rack1", "10.1.2.0/24 /dc1/rack2", "10.2.0.0/16 /dc2")
    assert topology.distance("10.1.1.5", "10.1.1.5") == 0  # one machine
    assert topology.distance("10.1.1.5", "10.1.1.6") == 1  # one rack
    assert topology.distance("10.1.1.5", "10.1.2.6") == 2  # one data centre
    assert topology.distance("10.1.1.5", "10.2.9.9") == 3
    assert topology.path("10.9.9.9") == "/"  # no line covers it: the root
    assert topology.within("10.1.2.6", "/dc1") and not topology.within("10.2.0.1", "/dc1")


def test_the_narrowest_address_range_decides_a_location() -> None:
    topology = racks("10.0.0.0/8 /dc1", "10.0.2.0/24 /dc1/rack2")
    assert topology.path("10.0.2.9") == "/dc1/rack2"
    assert topology.path("10.0.3.9") == "/dc1"


# --- new files ------------------------------------------------------------------------


def test_new_files_go_to_the_roomiest_then_the_least_busy(registry: Registry, store: Store) -> None:
    placement = Placement(registry, store, min_free=64 * MiB)
    full = registry.register("full", "h", 1, usage(free=100 * MiB))
    empty = registry.register("empty", "h", 2, usage(free=900 * MiB))
    assert placement.for_write() is empty
    empty.active = 3  # busier, but far roomier: free space decides first
    assert placement.for_write() is empty
    twin = registry.register("twin", "h", 3, usage(free=880 * MiB))  # a tie: within 10 %
    assert placement.for_write() is twin
    assert full is not placement.for_write()


def test_one_writer_spreads_its_files_over_slaves_sharing_a_disk(
    registry: Registry, store: Store
) -> None:
    placement = Placement(registry, store, min_free=0)
    slaves = hosts(registry, "h", "h", "h", fs="host/disk")
    sizes = [(n * 7919) % 50_000 + 1 for n in range(100)]  # uneven, as files are
    for size in sizes:
        chosen = placement.for_write()
        placement.committed(chosen.id, size)  # what the master does at every commit
    third = sum(sizes) / 3
    for slave in slaves:
        assert abs(slave.stored - third) <= 0.2 * third


def test_no_room_and_no_slave_are_different_errors(
    registry: Registry, store: Store, clock: ManualClock
) -> None:
    placement = Placement(registry, store, min_free=64 * MiB)
    registry.register("tight", "h", 1, usage(free=10 * MiB))
    with pytest.raises(NoDiskError):
        placement.for_write()
    clock.advance(31)
    registry.expire()
    with pytest.raises(ResourceError, match="no live slave"):
        placement.for_write()


def test_a_slave_at_its_own_limit_takes_nothing_more(registry: Registry, store: Store) -> None:
    placement = Placement(registry, store, min_free=0)
    capped = registry.register("capped", "h", 1, usage(stored=100 * MiB, limit=100 * MiB))
    assert capped.room(0) == 0
    with pytest.raises(NoDiskError):
        placement.for_write(size_hint=1)
    other = registry.register("other", "h", 2, usage(free=10 * MiB))
    assert placement.for_write(size_hint=1) is other


def test_draining_slaves_and_forbidden_locations_take_no_new_file(
    registry: Registry, store: Store
) -> None:
    placement = Placement(registry, store, min_free=0, topology=TWO_RACKS)
    a, b, c, d = hosts(registry, "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
    a.draining = True
    assert placement.for_write() is not a
    assert placement.for_write(policy=Policy(1, location="/dc1/rack1")) is b
    with pytest.raises(ResourceError, match="/dc9"):
        placement.for_write(policy=Policy(1, location="/dc9"))


# --- new replicas ---------------------------------------------------------------------


def test_a_second_replica_goes_to_the_other_rack(registry: Registry, store: Store) -> None:
    placement = Placement(registry, store, min_free=0, topology=TWO_RACKS)
    a, b, c, d = hosts(registry, "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
    for first in (a, b, c, d):
        second = placement.for_replica([first], 1, TWO)
        assert second is not None
        assert TWO_RACKS.distance(first.host, second.host) == 2


def test_replication_distance_keeps_replicas_close(registry: Registry, store: Store) -> None:
    placement = Placement(registry, store, min_free=0, topology=TWO_RACKS)
    a, b, c, d = hosts(registry, "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
    assert placement.for_replica([a], 1, Policy(2, distance=1)) is b
    assert placement.for_replica([a, b], 1, Policy(3, distance=1)) is None  # rack full


def test_replication_location_pins_every_replica(registry: Registry, store: Store) -> None:
    placement = Placement(registry, store, min_free=0, topology=TWO_RACKS)
    a, b, c, d = hosts(registry, "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
    pinned = Policy(2, location="/dc1/rack2")
    assert placement.for_replica([c], 1, pinned) is d
    assert placement.for_replica([c, d], 1, pinned) is None


def test_a_replica_never_goes_where_the_file_is_or_where_there_is_no_room(
    registry: Registry, store: Store
) -> None:
    placement = Placement(registry, store, min_free=64 * MiB)
    a, b = hosts(registry, "h1", "h2")
    c = registry.register("small", "h3", 1, usage(free=65 * MiB))
    assert placement.for_replica([a], 10 * MiB, TWO) is b
    assert placement.for_replica([a, b], 10 * MiB, TWO) is None  # c has 1 MiB to give
    assert placement.for_replica([a, b], MiB, TWO) is c
    b.draining = True
    assert placement.for_replica([a], MiB, TWO) is c


def test_a_chain_for_a_hireliable_write_spreads_like_replicas(
    registry: Registry, store: Store
) -> None:
    placement = Placement(registry, store, min_free=0, topology=TWO_RACKS)
    a, b, c, d = hosts(registry, "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
    chain = placement.chain(a, 1, Policy(3), count=2)
    assert len(chain) == 2 and a not in chain
    assert {TWO_RACKS.location(s.host) for s in [a, *chain]} == {
        ("dc1", "rack1"),
        ("dc1", "rack2"),
    }


# --- surplus --------------------------------------------------------------------------


def test_surplus_goes_from_the_most_crowded_location(registry: Registry, store: Store) -> None:
    placement = Placement(registry, store, min_free=0, topology=TWO_RACKS)
    a, b, c, d = hosts(registry, "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
    a.free = 10 * MiB  # the fuller of rack 1
    assert placement.surplus([a, b, c], keep=2) == [a]
    dropped = {s.id for s in placement.surplus([a, b, c, d], keep=2)}
    assert dropped in ({"s1", "s3"}, {"s1", "s4"})  # one from each rack, the fuller first


# --- reading --------------------------------------------------------------------------


def test_reads_go_to_live_holders_of_the_current_version_nearest_then_least_busy(
    registry: Registry, store: Store
) -> None:
    placement = Placement(registry, store, min_free=0, topology=TWO_RACKS)
    busy, idle, stale, gone, far, leaving = (
        registry.register(i, host, n, usage())
        for n, (i, host) in enumerate(
            [
                ("a", "127.0.0.2"),
                ("b", "127.0.0.2"),
                ("c", "127.0.0.2"),
                ("d", "127.0.0.2"),
                ("e", "127.0.0.4"),
                ("f", "127.0.0.2"),
            ]
        )
    )
    busy.active = 3
    with store.transaction():
        row = store.insert(1, "f", False, version=2)
        for slave, version in ((busy, 2), (idle, 2), (stale, 1), (gone, 2), (far, 2), (leaving, 2)):
            store.set_replica(row.id, slave.id, version)
    gone.alive = False  # as expire() or a dropped connection leaves it
    leaving.draining = True
    assert placement.for_read(row) == [idle, far, busy, leaving]
    assert placement.for_read(row, near="127.0.0.3") == [idle, busy, far, leaving]
    # stat shows where a reader may go: the live holders, best first
    expected = ["127.0.0.2:1", "127.0.0.4:4", "127.0.0.2:0", "127.0.0.2:5"]
    assert placement.addresses(row) == expected
