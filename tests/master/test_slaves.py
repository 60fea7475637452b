"""The slave registry, on a clock the tests drive (no waiting)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sector.clock import ManualClock
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
