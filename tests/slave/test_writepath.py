"""Large writes go to the disk the way this slave measured to be faster."""

from __future__ import annotations

import mmap
from pathlib import Path

import pytest

from sector.clock import ManualClock
from sector.slave.storage import Storage, WriteSession
from sector.slave.writepath import BUFFERED, DIRECT, EXPLORE_EVERY, MEASURED_MIN, WritePath

MB = 1_000_000


def test_each_way_is_tried_once_then_the_faster_is_kept_and_the_other_tried_now_and_then() -> None:
    path = WritePath()
    first, second = path.choose(), path.choose()
    assert {first, second} == {DIRECT, BUFFERED}  # before measuring, each way gets a turn
    path.measured(first, MEASURED_MIN, MEASURED_MIN / (300 * MB))  # 300 MB/s
    path.measured(second, MEASURED_MIN, MEASURED_MIN / (500 * MB))  # 500 MB/s
    ways = [path.choose() for _ in range(2 * EXPLORE_EVERY)]
    assert ways.count(second) == 2 * EXPLORE_EVERY - 2
    assert ways.count(first) == 2  # still measured, in case the disk changes


def test_the_choice_follows_a_disk_that_changes() -> None:
    path = WritePath()
    path.measured(DIRECT, MEASURED_MIN, MEASURED_MIN / (800 * MB))
    path.measured(BUFFERED, MEASURED_MIN, MEASURED_MIN / (400 * MB))
    assert path.favoured is DIRECT
    for _ in range(3):  # other tenants arrive: going around the cache slows down
        path.measured(DIRECT, MEASURED_MIN, MEASURED_MIN / (200 * MB))
    assert path.favoured is BUFFERED


def test_small_writes_teach_nothing_and_without_o_direct_there_is_no_choice() -> None:
    path = WritePath()
    path.measured(DIRECT, MEASURED_MIN - 1, 0.001)
    assert path.rates[DIRECT] == []
    assert WritePath(direct_allowed=False).choose() is BUFFERED


class Disk(ManualClock):
    """A clock that moves ``step`` seconds whenever it is read: every wait on the disk
    (each 4 MiB pwrite, the final fsync) then lasts ``step``."""

    step = 0.0

    def monotonic(self) -> float:
        self.advance(self.step)
        return super().monotonic()


def large_write(storage: Storage, oid: int, disk: Disk, step: float) -> WriteSession:
    """A 32 MiB write in 4 MiB page-aligned chunks (as the slave receives them), each
    wait on the disk lasting ``step`` seconds."""
    disk.step = step
    session = WriteSession.begin(storage, oid, 1, lease=oid, base=0)
    chunk = mmap.mmap(-1, 4 * 1024 * 1024)
    for number in range(8):
        session.write_at(number * len(chunk), memoryview(chunk), aligned=True)
    storage.commit_together([session])
    return session


def test_a_slave_measures_its_large_writes_and_sends_them_the_faster_way(tmp_path: Path) -> None:
    disk = Disk()
    storage = Storage(tmp_path / "data", disk)
    first = large_write(storage, 1, disk, step=0.04)
    second = large_write(storage, 2, disk, step=0.01)
    assert {first.way, second.way} == {DIRECT, BUFFERED}
    assert storage.write_path.favoured is second.way
    rates = storage.write_path.rates[second.way]
    flush = 0.01
    assert rates == [pytest.approx(32 * 1024 * 1024 / (second.way_seconds + flush))]
    third = large_write(storage, 3, disk, step=0.01)
    assert third.way is second.way
    assert storage.find(3, 1) is not None
