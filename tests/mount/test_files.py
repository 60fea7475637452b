"""An open file's staged writes (mount/files.py), driven as the kernel drives them.

``OpenFile`` is called here the way the FUSE operations call it - 1 MiB
writes in libfuse's buffer, reads, ``getattr``'s size, truncates, the commit
at ``close`` - against a real cluster but without a kernel mount, so each
step's effect can be checked exactly. Large writes are gathered by
:class:`WriteBehind` and sent from a thread: whatever the program does next
must see them as if they had been written at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from sector.client import Client
from sector.clock import ManualClock
from sector.cluster import LocalCluster
from sector.errors import SectorError
from sector.mount.files import OpenFile, RecentCommits, WriteBehind
from sector.protocol.messages import READ
from tests.support import wait_until

pytestmark = pytest.mark.timeout(120)

MiB = 1024 * 1024


def sector_bytes(client: Client, path: str) -> bytes:
    with client.open(path, READ) as remote:
        return remote.read()


def kernel_write(file: OpenFile, offset: int, data: bytes) -> None:
    """As libfuse hands a write over: a view of memory taken back (scribbled on) after."""
    buffer = bytearray(data)
    assert file.write(offset, memoryview(buffer)) == len(data)
    buffer[:] = bytes(len(buffer))  # libfuse reuses its buffer for the next request


def read(file: OpenFile, offset: int, size: int) -> bytes:
    buffer = bytearray(size)
    count = file.read_into(offset, memoryview(buffer))
    return bytes(buffer[:count])


def test_large_writes_are_read_back_before_they_are_sent(client: Client, workdir: str) -> None:
    path = f"{workdir}/big"
    data = os.urandom(20 * MiB + 12_345)  # two full batches and a partial one
    file = OpenFile(client, path)
    file.create()
    for offset in range(0, len(data), MiB):
        kernel_write(file, offset, data[offset : offset + MiB])
    assert file.size == len(data)  # what getattr shows
    assert read(file, 19 * MiB, 2 * MiB) == data[19 * MiB :]  # from the unsent batch
    assert read(file, 3 * MiB, 100) == data[3 * MiB : 3 * MiB + 100]
    assert not client.exists(path)  # staged, not published
    file.close()
    assert sector_bytes(client, path) == data


def test_later_writes_land_over_earlier_ones_whatever_their_size(
    client: Client, workdir: str
) -> None:
    path = f"{workdir}/layers"
    file = OpenFile(client, path)
    file.create()
    kernel_write(file, 0, b"a" * (3 * MiB))  # gathered behind
    kernel_write(file, MiB, b"small")  # written directly, after the gathered bytes
    kernel_write(file, 6 * MiB, b"b" * MiB)  # a jump: the batch so far goes first
    kernel_write(file, 512 * 1024, b"c" * MiB)  # back over the first batch
    file.commit()
    expected = bytearray(b"a" * (3 * MiB) + bytes(3 * MiB) + b"b" * MiB)
    expected[MiB : MiB + 5] = b"small"
    expected[512 * 1024 : 512 * 1024 + MiB] = b"c" * MiB
    assert sector_bytes(client, path) == expected
    file.close()


def test_truncate_and_append_see_the_gathered_writes(client: Client, workdir: str) -> None:
    path = f"{workdir}/cut"
    data = os.urandom(10 * MiB)
    file = OpenFile(client, path)
    file.create()
    for offset in range(0, len(data), MiB):
        kernel_write(file, offset, data[offset : offset + MiB])
    file.truncate(9 * MiB + 7)  # inside the unsent partial batch
    assert file.append(memoryview(b"tail" * 40_000)) == 160_000
    assert file.size == 9 * MiB + 7 + 160_000
    file.close()
    assert sector_bytes(client, path) == data[: 9 * MiB + 7] + b"tail" * 40_000


def test_memory_held_behind_is_bounded_however_large_the_file(client: Client, workdir: str) -> None:
    file = OpenFile(client, f"{workdir}/long")
    file.create()
    chunk = os.urandom(MiB)
    for offset in range(0, 80 * MiB, MiB):
        kernel_write(file, offset, chunk)
        behind = file.behind
        assert behind is not None
        in_use = (behind.batch is not None) + behind.queue.qsize() + 1  # +1: being sent
        assert in_use + behind.free.qsize() <= WriteBehind.DEPTH + 2
    file.close()
    assert client.stat(f"{workdir}/long").size == 80 * MiB


def test_a_failed_send_behind_is_reported_and_nothing_is_published(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(slaves=1)
    client = cluster.connect()
    try:
        with client.open("/kept", "wb") as old:
            old.write(b"the committed version")
        before = client.stat("/kept")
        file = OpenFile(client, "/kept", before)
        kernel_write(file, 0, b"x" * MiB)  # opens the write session on the only slave
        cluster.stop_process("slave1", kill=True)
        with pytest.raises(SectorError):  # at a later write
            for offset in range(MiB, 64 * MiB, MiB):
                kernel_write(file, offset, b"x" * MiB)
        with pytest.raises(SectorError):  # and again at close: the session is broken
            file.close()
        after = client.stat("/kept")
        assert (after.version, after.size) == (before.version, before.size)
    finally:
        client.close()


def test_read_ahead_requests_handed_over_out_of_order_keep_the_stream(
    client: Client, workdir: str
) -> None:
    """The kernel sends a file's read-ahead as several requests at once and libfuse's
    threads deliver them in any order: one arriving behind the stream is read directly
    and the stream goes on; only a jump past everything fetched ends it."""
    path = f"{workdir}/streamed"
    data = os.urandom(40 * MiB)
    with client.open(path, "wb") as remote:
        remote.write(data)
    file = OpenFile(client, path)
    file.open_reader()
    assert read(file, 0, MiB) == data[:MiB]
    stream = file.read_ahead
    assert stream is not None
    order = [m for m in range(1, 16) if m % 4 != 1] + [m for m in range(1, 16) if m % 4 == 1]
    for m in order:  # every fourth MiB late, some of them 12 MiB behind the newest
        assert read(file, m * MiB, MiB) == data[m * MiB : (m + 1) * MiB]
    assert file.read_ahead is stream  # still streaming
    assert read(file, 16 * MiB, 3 * MiB) == data[16 * MiB : 19 * MiB]
    assert file.read_ahead is stream
    assert read(file, 39 * MiB, MiB) == data[39 * MiB :]  # past all it fetched: a jump
    assert file.read_ahead is None
    file.close()


def test_a_stream_from_an_odd_offset_reads_exactly_and_stops_when_the_file_closes(
    client: Client, workdir: str
) -> None:
    """The read-ahead streams from wherever sequential reading began (not only a block
    boundary); closing the file part-way stops the stream at once, its thread gone
    though it was waiting for room to queue more."""
    path = f"{workdir}/odd-stream"
    data = os.urandom(48 * MiB + 777)
    with client.open(path, "wb") as remote:
        remote.write(data)
    file = OpenFile(client, path)
    file.open_reader()
    position = 3 * MiB + 12345  # a first read here is a jump: read directly
    for size in (MiB, MiB, 128 * 1024, 3 * MiB + 1, MiB):
        assert read(file, position, size) == data[position : position + size]
        position += size
    stream = file.read_ahead
    assert stream is not None  # started at the second read, 4 MiB + 12345 into the file
    # the thread fills its queue and waits for room: the program stopped reading
    wait_until(stream.chunks.full, what="the read-ahead queue to fill")
    file.close()
    assert not stream.thread.is_alive()


# --- what the mount remembers of its own commits -------------------------------------------


def test_a_commit_is_remembered_for_the_lifetime_then_forgotten() -> None:
    clock = ManualClock()
    recent: RecentCommits[int] = RecentCommits(1.0, clock)
    recent.put("/d/a", 10, clock.monotonic())
    clock.advance(0.5)
    recent.put("/d/b", 20, clock.monotonic())
    assert (recent.get("/d/a"), recent.get("/d/b")) == (10, 20)
    clock.advance(0.6)  # a is 1.1 s old, b 0.6 s
    assert (recent.get("/d/a"), recent.get("/d/b")) == (None, 20)
    recent.put("/d/late", 30, clock.monotonic() - 2.0)  # committed too long ago to answer
    assert recent.get("/d/late") is None


def test_a_file_closed_long_after_its_commit_ages_from_the_commit() -> None:
    """Files are remembered when closed, not always in the order they were committed."""
    clock = ManualClock()
    recent: RecentCommits[str] = RecentCommits(1.0, clock)
    recent.put("/fresh", "fresh", clock.monotonic())
    recent.put("/fsynced-early", "early", clock.monotonic() - 0.9)  # closed only now
    clock.advance(0.2)
    assert (recent.get("/fresh"), recent.get("/fsynced-early")) == ("fresh", None)


def test_forgetting_a_tree_forgets_everything_beneath_it_and_nothing_beside() -> None:
    clock = ManualClock()
    recent: RecentCommits[str] = RecentCommits(1.0, clock)
    for path in ("/d", "/d/x", "/d/sub/y", "/dx", "/e/z"):
        recent.put(path, path, clock.monotonic())
    recent.forget("/d")  # one path only: what an open, unlink or utime changes
    assert (recent.get("/d"), recent.get("/d/x")) == (None, "/d/x")
    recent.forget_tree("/d")  # a directory renamed away
    assert [recent.get(p) for p in ("/d", "/d/x", "/d/sub/y", "/dx", "/e/z")] == [
        None,
        None,
        None,
        "/dx",
        "/e/z",
    ]


def test_a_lifetime_of_zero_keeps_nothing() -> None:
    clock = ManualClock()
    recent: RecentCommits[int] = RecentCommits(0.0, clock)
    recent.put("/f", 1, clock.monotonic())
    assert recent.get("/f") is None and not recent.fresh(clock.monotonic())


def test_an_open_file_notes_when_this_mount_committed_it(client: Client, workdir: str) -> None:
    clock = ManualClock()
    file = OpenFile(client, f"{workdir}/noted.bin", clock=clock)
    file.create()
    assert file.committed_at is None  # staged only
    kernel_write(file, 0, b"abc")
    clock.advance(5.0)
    file.commit()
    assert file.committed_at == clock.monotonic() and (file.size, file.version) == (3, 1)
    file.close()
