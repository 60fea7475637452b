"""The file system's contract, through the kernel with plain ``open()`` and ``os`` calls.

What a POSIX program does (random writes, appends, truncation, renames,
directories) and what the README promises about it: close-to-open
consistency, a file visible to other clients only when closed (or fsynced),
never half-written, and the right errno for each Sector error.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sector.client import Client
from sector.cluster import LocalCluster
from sector.protocol.messages import READ, TRUNC, WRITE
from tests.mount.conftest import Mount
from tests.support import random_file, sha256_of, wait_until

pytestmark = pytest.mark.timeout(120)


def sector_bytes(client: Client, path: str) -> bytes:
    with client.open(path, READ) as remote:
        return remote.read()


def test_python_program_with_plain_open_and_os_calls(here: Path, workdir: str, client: Client):
    os.mkdir(here / "work")
    data = here / "work" / "data.bin"
    with open(data, "wb") as out:
        out.write(b"a" * 100_000)
    with open(data, "r+b") as f:  # writes into the middle and past the end
        f.seek(50_000)
        f.write(b"B" * 10)
        f.seek(150_000)
        f.write(b"end")
    expected = b"a" * 50_000 + b"B" * 10 + b"a" * 49_990 + bytes(50_000) + b"end"
    assert data.read_bytes() == expected
    with open(data, "ab") as f:  # O_APPEND
        f.write(b"+tail")
    expected += b"+tail"
    assert os.stat(data).st_size == len(expected)
    os.truncate(data, 100)
    assert data.read_bytes() == expected[:100]
    with open(data, "r+b") as f:
        f.truncate(120)  # ftruncate grows with zeros
        f.seek(0)
        assert f.read() == expected[:100] + bytes(20)
    os.rename(data, here / "work" / "renamed.bin")
    assert sorted(os.listdir(here / "work")) == ["renamed.bin"]
    assert sector_bytes(client, f"{workdir}/work/renamed.bin") == expected[:100] + bytes(20)
    os.makedirs(here / "work" / "a" / "b")
    assert os.path.isdir(here / "work" / "a" / "b")
    os.rename(here / "work" / "a", here / "work" / "c")  # a directory moves whole
    assert os.listdir(here / "work" / "c") == ["b"]
    os.rmdir(here / "work" / "c" / "b")
    os.rmdir(here / "work" / "c")
    os.unlink(here / "work" / "renamed.bin")
    assert os.listdir(here / "work") == []
    assert not client.exists(f"{workdir}/work/renamed.bin")


def test_ls_shows_sizes_and_types_from_one_listing(here: Path):
    (here / "d").mkdir()
    (here / "f").write_bytes(b"12345")
    entries = {e.name: e for e in os.scandir(here)}
    assert entries["d"].is_dir() and entries["f"].is_file()
    assert entries["f"].stat().st_size == 5
    assert os.stat(here / "f").st_blksize == 1024 * 1024  # cp's buffer size
    # every field the mount fills in: from the listing (readdirplus) as from getattr
    for shown in (entries["f"].stat(), os.stat(here / "f")):
        assert (shown.st_nlink, shown.st_uid, shown.st_gid) == (1, os.getuid(), os.getgid())
        assert (shown.st_blocks, stat.S_IMODE(shown.st_mode)) == (1, 0o644)
        assert shown.st_mtime_ns == shown.st_ctime_ns == shown.st_atime_ns > 0
    assert os.stat(here / "d").st_nlink == 2


def test_a_new_file_is_invisible_to_other_clients_until_close(
    here: Path, workdir: str, client: Client
):
    with open(here / "new.txt", "wb") as f:
        f.write(b"first part, ")
        f.flush()  # reaches the mount, but is not a close
        assert not client.exists(f"{workdir}/new.txt")
        f.write(b"second part")
    assert sector_bytes(client, f"{workdir}/new.txt") == b"first part, second part"


def test_a_rewrite_is_published_whole_at_close_never_half_written(
    here: Path, workdir: str, client: Client
):
    (here / "doc.txt").write_bytes(b"old version")
    with open(here / "doc.txt", "r+b") as f:
        f.write(b"NEW")
        f.seek(0, os.SEEK_END)
        f.write(b" and more")
        f.flush()
        assert sector_bytes(client, f"{workdir}/doc.txt") == b"old version"
    assert sector_bytes(client, f"{workdir}/doc.txt") == b"NEW version and more"


def test_fsync_publishes_without_closing(here: Path, workdir: str, client: Client):
    with open(here / "log.txt", "wb") as f:
        f.write(b"line 1\n")
        f.flush()
        os.fsync(f.fileno())
        assert sector_bytes(client, f"{workdir}/log.txt") == b"line 1\n"
        f.write(b"line 2\n")
    assert sector_bytes(client, f"{workdir}/log.txt") == b"line 1\nline 2\n"


def test_open_sees_what_another_client_closed_before_it(here: Path, workdir: str, client: Client):
    (here / "shared.txt").write_bytes(b"version one")
    assert (here / "shared.txt").read_bytes() == b"version one"  # now in the page cache
    with client.open(f"{workdir}/shared.txt", WRITE | TRUNC) as remote:
        remote.write(b"version two, longer")
    assert (here / "shared.txt").read_bytes() == b"version two, longer"


def test_names_other_clients_make_or_remove_are_seen_within_the_cache_timeout(
    here: Path, workdir: str, client: Client
):
    """A name looked up and missing is not remembered (``negative_timeout=0``): another
    client's file is there at once; a removed one is gone after ``entry_timeout``
    (1 s) at most, and an ``open`` of it fails at once (it asks the master)."""
    assert not (here / "theirs.txt").exists()
    with client.open(f"{workdir}/theirs.txt", WRITE) as remote:
        remote.write(b"made elsewhere")
    assert (here / "theirs.txt").read_bytes() == b"made elsewhere"
    client.rm(f"{workdir}/theirs.txt")
    with pytest.raises(FileNotFoundError):
        (here / "theirs.txt").read_bytes()
    # entry_timeout (1 s), and slack for a busy CI machine
    wait_until(lambda: not (here / "theirs.txt").exists(), timeout=3, what="the name to go")


def master_answered(cluster: LocalCluster, op: str) -> float:
    """How many ``op`` requests the master has answered so far (its ``/metrics``)."""
    with urllib.request.urlopen(
        cluster.dashboard_url.rstrip("/") + "/metrics", timeout=10
    ) as answer:
        scrape = answer.read().decode()
    for family in text_string_to_metric_families(scrape):
        if family.name == "sector_master_request_duration_seconds":
            for sample in family.samples:
                if sample.name.endswith("_count") and sample.labels["op"] == op:
                    return sample.value
    return 0.0


def test_a_file_this_mount_just_wrote_is_stated_without_asking_the_master(
    cluster: LocalCluster, make_mount: Callable[..., Mount], workdir: str
):
    """The kernel forgets a file's size and time at every write and asks at the next
    ``stat``; the mount answers from its own commit for ``attr_timeout``, and
    forgets the answer at its own next change of the path. (Long timeouts here, the
    names' too: on a slow machine the directory's name could otherwise expire, and
    looking it up again is a master ``stat`` of its own.)"""
    mount = make_mount(cluster, "-o", "attr_timeout=60,entry_timeout=60")
    # the new mount's own start-up stat of its root (to set the read-ahead) is behind us
    wait_until(lambda: "kernel read-ahead on" in mount.log_text(), what="the mount's start-up")
    here = mount.local(workdir)
    (here / "fresh.bin").write_bytes(b"x" * 1234)
    stats = master_answered(cluster, "stat")
    assert os.stat(here / "fresh.bin").st_size == 1234
    assert master_answered(cluster, "stat") == stats
    with open(here / "fresh.bin", "ab") as f:  # changed through the mount: the new size
        f.write(b"y" * 10)
    assert os.stat(here / "fresh.bin").st_size == 1244
    os.utime(here / "fresh.bin", ns=(1_500_000_000_000_000_000,) * 2)
    assert os.stat(here / "fresh.bin").st_mtime_ns == 1_500_000_000_000_000_000
    os.rename(here / "fresh.bin", here / "moved.bin")
    assert not (here / "fresh.bin").exists() and (here / "moved.bin").stat().st_size == 1244
    os.unlink(here / "moved.bin")
    assert not (here / "moved.bin").exists()


def test_another_clients_rewrite_of_a_file_this_mount_wrote_shows_within_the_timeout(
    here: Path, workdir: str, client: Client
):
    (here / "ours.txt").write_bytes(b"short")
    assert os.stat(here / "ours.txt").st_size == 5
    with client.open(f"{workdir}/ours.txt", WRITE | TRUNC) as remote:
        remote.write(b"a good deal longer")
    wait_until(
        lambda: os.stat(here / "ours.txt").st_size == 18,
        5.0,
        "the other client's size through the mount (attr_timeout is 1 s)",
    )
    assert (here / "ours.txt").read_bytes() == b"a good deal longer"


def test_rename_over_an_existing_file_is_atomic_for_other_clients(
    here: Path, workdir: str, client: Client, cluster
):
    (here / "target").write_bytes(b"old")
    missing: list[int] = []
    stop = threading.Event()
    watcher = cluster.connect()

    def watch() -> None:
        while not stop.is_set():
            if not watcher.exists(f"{workdir}/target"):
                missing.append(1)

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        for i in range(100):
            (here / "incoming").write_bytes(b"new %d" % i)
            os.rename(here / "incoming", here / "target")
    finally:
        stop.set()
        thread.join()
        watcher.close()
    assert (here / "target").read_bytes() == b"new 99"
    assert missing == []


def test_rename_replaces_an_existing_file_as_posix_says(here: Path, workdir: str, client: Client):
    (here / "a").write_bytes(b"from a")
    (here / "b").write_bytes(b"from b")
    os.rename(here / "a", here / "b")
    assert os.listdir(here) == ["b"]
    assert sector_bytes(client, f"{workdir}/b") == b"from a"
    (here / "d").mkdir()
    (here / "e").mkdir()
    (here / "e" / "x").write_bytes(b"x")
    with pytest.raises(OSError) as raised:
        os.rename(here / "d", here / "e")  # onto a directory that is not empty
    assert raised.value.errno == errno.ENOTEMPTY
    os.rename(here / "e" / "x", here / "x")
    os.rename(here / "d", here / "e")  # onto an empty directory: replaced
    assert sorted(os.listdir(here)) == ["b", "e", "x"]


def test_utime_sets_the_time_the_master_keeps(here: Path, workdir: str, client: Client) -> None:
    (here / "dated").write_bytes(b"x")
    os.utime(here / "dated", ns=(1_500_000_000_000_000_000, 1_500_000_000_250_000_000))
    assert os.stat(here / "dated").st_mtime_ns == 1_500_000_000_250_000_000
    assert client.stat(f"{workdir}/dated").timestamp == 1_500_000_000.25
    with open(here / "dated", "r+b") as f:  # set while changes are staged: kept by the commit
        f.write(b"y")
        f.flush()  # (a write after the utime would set the time to now, as POSIX says)
        os.utime(f.fileno(), (1_400_000_000, 1_400_000_000))
    assert client.stat(f"{workdir}/dated").timestamp == 1_400_000_000
    assert sector_bytes(client, f"{workdir}/dated") == b"y"
    os.utime(here / "dated")  # now
    assert abs(client.stat(f"{workdir}/dated").timestamp - time.time()) < 60


def errno_of(call, *args) -> int:
    with pytest.raises(OSError) as raised:
        call(*args)
    return raised.value.errno


def test_errors_carry_the_posix_errno(here: Path, workdir: str, client: Client):
    (here / "dir").mkdir()
    (here / "dir" / "inside").write_bytes(b"1")
    (here / "file").write_bytes(b"1")
    assert errno_of(open, here / "missing") == errno.ENOENT
    assert errno_of(os.mkdir, here / "dir") == errno.EEXIST
    assert errno_of(os.open, here / "file", os.O_CREAT | os.O_EXCL | os.O_WRONLY) == errno.EEXIST
    assert errno_of(os.rmdir, here / "dir") == errno.ENOTEMPTY
    assert errno_of(open, here / "dir", "wb") == errno.EISDIR
    assert errno_of(os.listdir, here / "file") == errno.ENOTDIR
    assert errno_of(os.rmdir, here / "file") == errno.ENOTDIR
    assert errno_of(os.unlink, here / "dir") == errno.EISDIR


def test_o_excl_is_decided_by_the_master(here: Path, workdir: str, client: Client) -> None:
    with client.open(f"{workdir}/lock", "wb") as remote:  # another client is creating it
        remote.write(b"theirs")
        flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY
        assert errno_of(os.open, here / "lock", flags) == errno.EEXIST
    fd = os.open(here / "mine", flags)
    os.write(fd, b"mine")
    os.close(fd)
    assert sector_bytes(client, f"{workdir}/mine") == b"mine"
    assert sector_bytes(client, f"{workdir}/lock") == b"theirs"


def test_a_file_another_client_is_writing_is_busy(here: Path, workdir: str, client: Client):
    (here / "busy").write_bytes(b"committed")
    with client.open(f"{workdir}/busy", WRITE | TRUNC) as remote:
        remote.write(b"being written elsewhere")
        fd = os.open(here / "busy", os.O_RDWR)
        try:
            assert os.pread(fd, 100, 0) == b"committed"  # readers see the committed version
            assert errno_of(os.pwrite, fd, b"X", 0) == errno.EBUSY
        finally:
            os.close(fd)
    assert sector_bytes(client, f"{workdir}/busy") == b"being written elsewhere"
    assert errno_of(os.unlink, here / "missing") == errno.ENOENT


def test_a_large_file_reads_right_sequentially_and_after_jumps(
    here: Path, workdir: str, client: Client, tmp_path: Path
):
    """Sequential reads stream ahead (mount/files.py ReadAhead); jumps fall back cleanly."""
    source = tmp_path / "large.bin"
    digest = random_file(source, 21_000_001)
    client.upload(source, f"{workdir}/large.bin")
    assert sha256_of(here / "large.bin") == digest
    expected = source.read_bytes()
    with open(here / "large.bin", "rb", buffering=0) as f:
        assert f.read(5_000_000) == expected[:5_000_000]  # streaming by now
        f.seek(15_000_000)  # jump forward past the stream
        assert f.read(1_000_000) == expected[15_000_000:16_000_000]
        f.seek(1_000)  # and back
        assert f.read(4_000_000) == expected[1_000:4_001_000]
        f.seek(20_999_990)
        assert f.read(100) == expected[20_999_990:]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may set a mount's read-ahead")
def test_the_kernel_reads_ahead_1_mib_on_the_mount(here: Path) -> None:
    """Linux reads ahead 128 KiB on a FUSE mount; in 1 MiB requests ``cp`` out is faster."""
    device = os.stat(here).st_dev
    knob = Path(f"/sys/class/bdi/{os.major(device)}:{os.minor(device)}/read_ahead_kb")
    wait_until(lambda: knob.read_text().strip() == "1024", timeout=10, what="read-ahead")
