"""The scrub: every object re-read at the configured pace, damage quarantined, sums mended."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from sector.clock import ManualClock
from sector.protocol import checksum
from sector.slave.scrub import MAX_PAUSE, MIN_COST, QUIET, Scrub
from sector.slave.storage import Storage, WriteSession

MiB = 1024 * 1024


def store(storage: Storage, oid: int, data: bytes) -> None:
    session = WriteSession.begin(storage, oid, 1, lease=1, base=0)
    session.write_at(0, memoryview(data))
    session.commit()


class Paced:
    """A scrub whose sleeps move a manual clock instead of waiting."""

    def __init__(self, storage: Storage, rate: float):
        self.clock = ManualClock()
        self.slept = 0.0
        #: when a client last wrote, as the slave would say
        self.wrote_at = float("-inf")
        self.scrub = Scrub(storage, rate, self.clock, self.sleep, lambda: self.wrote_at)

    async def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.clock.advance(seconds)

    def one_pass(self) -> None:
        asyncio.run(self.scrub.one_pass())


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return Storage(tmp_path / "data")


def test_a_pass_reads_everything_at_the_configured_rate(storage: Storage) -> None:
    sizes = [MiB, 3 * MiB + 5, 10]
    for oid, size in enumerate(sizes, start=1):
        store(storage, oid, os.urandom(size))
    paced = Paced(storage, rate=2 * MiB)
    paced.one_pass()
    expected = (sum(sizes) + len(sizes) * MIN_COST) / (2 * MiB)
    assert paced.slept == pytest.approx(expected, rel=0.01)
    assert (paced.scrub.passes, paced.scrub.checked, paced.scrub.damaged) == (1, 3, 0)
    assert storage.quarantined == []


def test_a_flipped_byte_is_found_and_the_object_quarantined(storage: Storage) -> None:
    store(storage, 1, os.urandom(2 * MiB))
    store(storage, 2, os.urandom(MiB))
    rotten = storage.find(2, 1)
    assert rotten is not None
    with open(rotten.path, "r+b") as handle:
        handle.seek(MiB - 1)
        handle.write(b"\xff" if handle.read(1) != b"\xff" else b"\x00")
    paced = Paced(storage, rate=64 * MiB)
    paced.one_pass()
    assert paced.scrub.damaged == 1
    assert storage.find(2, 1) is None and storage.find(1, 1) is not None
    assert storage.quarantined == [(2, 1)]  # for the master, with the next heartbeat


def test_rotten_sums_of_good_bytes_are_mended(storage: Storage) -> None:
    data = os.urandom(MiB)
    store(storage, 1, data)
    stored = storage.find(1, 1)
    assert stored is not None
    stored.sums_path.write_bytes(b"rot")
    Paced(storage, rate=64 * MiB).one_pass()
    assert storage.find(1, 1) is stored
    assert stored.sums_path.read_bytes() == checksum.block_sums(data)
    assert storage.quarantined == []


def test_an_object_deleted_while_being_scrubbed_is_skipped(storage: Storage) -> None:
    store(storage, 1, os.urandom(MiB))
    paced = Paced(storage, rate=64 * MiB)
    original = paced.sleep

    async def delete_midway(seconds: float) -> None:
        storage.delete(1, 1)
        await original(seconds)

    paced.scrub.sleep = delete_midway
    paced.one_pass()
    assert (paced.scrub.checked, paced.scrub.damaged) == (0, 0)
    assert storage.quarantined == []


def test_the_scrub_waits_for_a_quiet_moment_after_a_write(storage: Storage) -> None:
    store(storage, 1, os.urandom(10))
    paced = Paced(storage, rate=64 * MiB)
    paced.wrote_at = paced.clock.monotonic() - QUIET / 4  # a client wrote just now
    paced.one_pass()
    reading = MIN_COST / (64 * MiB)
    assert paced.slept == pytest.approx(QUIET * 3 / 4 + reading)
    assert paced.scrub.checked == 1


def test_writes_without_a_break_slow_the_scrub_but_never_stop_it(storage: Storage) -> None:
    for oid in (1, 2):
        store(storage, oid, os.urandom(10))
    paced = Paced(storage, rate=64 * MiB)
    original = paced.sleep

    async def written_to_meanwhile(seconds: float) -> None:
        await original(seconds)
        paced.wrote_at = paced.clock.monotonic()  # another write, always

    paced.scrub.sleep = written_to_meanwhile
    paced.wrote_at = paced.clock.monotonic()
    paced.one_pass()
    assert paced.scrub.checked == 2
    assert paced.slept == pytest.approx(2 * MAX_PAUSE, rel=0.01)
