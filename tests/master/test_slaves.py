"""The slave registry, on a clock the tests drive (no waiting)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from sector.clock import ManualClock
from sector.config import TopologyRule
from sector.master.slaves import Registry
from sector.master.store import Store
from sector.protocol.master import Usage

TIMEOUT = 30.0
MiB = 1024 * 1024


def usage(free: int = 1000 * MiB) -> Usage:
    return Usage(total=2000 * MiB, free=free, stored=0, files=0)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def registry(clock: ManualClock) -> Registry:
    return Registry(clock, TIMEOUT)


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock) -> Iterator[Store]:
    opened = Store(tmp_path / "meta.db", clock)
    yield opened
    opened.close()


# --- liveness -----------------------------------------------------------------------


def test_a_slave_is_alive_until_it_has_been_silent_longer_than_the_timeout(
    registry: Registry, clock: ManualClock
) -> None:
    slave = registry.register("s1", "127.0.0.2", 7000, usage())
    clock.advance(TIMEOUT)
    assert registry.expire() == [] and slave.alive
    clock.advance(0.001)
    assert registry.expire() == [slave]
    assert not slave.alive and registry.live() == []
    assert registry.expire() == []  # declared dead once


def test_a_heartbeat_restarts_the_silence(registry: Registry, clock: ManualClock) -> None:
    slave = registry.register("s1", "127.0.0.2", 7000, usage())
    for _ in range(5):
        clock.advance(TIMEOUT - 1)
        registry.update(slave, usage(free=5 * MiB))
        assert registry.expire() == []
    assert slave.free == 5 * MiB


def test_a_dead_slave_that_reports_again_is_alive(registry: Registry, clock: ManualClock) -> None:
    slave = registry.register("s1", "127.0.0.2", 7000, usage())
    clock.advance(TIMEOUT + 1)
    registry.expire()
    registry.update(slave, usage())
    assert slave.alive and registry.is_live("s1")


def test_re_registering_replaces_the_old_record(registry: Registry, clock: ManualClock) -> None:
    old = registry.register("s1", "127.0.0.2", 7000, usage())
    clock.advance(5)
    new = registry.register("s1", "127.0.0.2", 7001, usage())
    assert not registry.is_current(old) and registry.is_current(new)
    assert new.started == clock.time()


def test_a_slave_is_found_by_id_or_by_address(registry: Registry) -> None:
    slave = registry.register("s1", "127.0.0.2", 7000, usage())
    assert registry.find("s1") is slave
    assert registry.find("127.0.0.2:7000") is slave
    assert registry.find("127.0.0.2:7001") is None


# --- capacity -----------------------------------------------------------------------


def test_capacity_counts_each_file_system_once_and_only_live_slaves(
    registry: Registry, clock: ManualClock
) -> None:
    shared = Usage(total=100, free=40, stored=5, files=1, fs="host/801/aa")
    registry.register("b", "127.0.0.2", 7001, shared)
    registry.register("a", "127.0.0.3", 7002, Usage(100, 41, 7, 2, fs="host/801/aa"))
    registry.register("c", "127.0.0.4", 7003, Usage(50, 10, 1, 1, fs="host/802/bb"))
    registry.register("d", "127.0.0.5", 7004, Usage(70, 7, 2, 1))  # names no file system
    capacity = registry.capacity()
    # a speaks for the disk it shares with b (smallest id), d for its own
    assert (capacity.slaves, capacity.disks) == (4, 3)
    assert (capacity.total, capacity.free) == (100 + 50 + 70, 41 + 10 + 7)
    assert capacity.stored == 5 + 7 + 1 + 2  # every replica, shared disk or not

    clock.advance(TIMEOUT / 2)
    for slave_id in "abd":
        registry.update(registry.slaves[slave_id], registry_usage(registry, slave_id))
    clock.advance(TIMEOUT / 2 + 1)
    registry.expire()  # c fell silent
    capacity = registry.capacity()
    assert (capacity.slaves, capacity.disks, capacity.total) == (3, 2, 170)


def registry_usage(registry: Registry, slave_id: str) -> Usage:
    slave = registry.slaves[slave_id]
    return Usage(slave.total, slave.free, slave.stored, slave.files, slave.fs)


def test_a_slave_is_placed_by_topology_and_keeps_its_reported_traffic(clock: ManualClock) -> None:
    rules = [
        TopologyRule(ipaddress.ip_network("127.0.0.0/30"), "/dc1/rack1"),
        TopologyRule(ipaddress.ip_network("127.0.0.0/8"), "/dc1/rack2"),
    ]
    registry = Registry(clock, TIMEOUT, rules)
    first = registry.register("s1", "127.0.0.2", 7000, usage(), software="1.2.3")
    second = registry.register("s2", "127.0.0.9", 7000, usage())
    elsewhere = registry.register("s3", "10.1.2.3", 7000, usage())
    assert (first.location, second.location, elsewhere.location) == (
        "/dc1/rack1",
        "/dc1/rack2",
        "/",
    )
    assert first.software == "1.2.3"
    registry.update(first, Usage(1, 1, 0, 0, received=500, sent=900, load=1.5))
    assert (first.received, first.sent, first.load) == (500, 900, 1.5)
    clock.advance(3.0)
    assert registry.heartbeat_age(first) == 3.0
