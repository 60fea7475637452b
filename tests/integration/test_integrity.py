"""Every byte read is checked, and reads carry on while one good replica lives.

Faults are real: bytes flipped in a slave's data directory, slaves killed
(SIGKILL) or stopped (SIGSTOP) in the middle of a download. Files get their
second replica from the master's replication (two slaves, two replicas), and
a replica given up as damaged is made again from the good one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sector
from sector import errors
from sector.aio import AsyncClient
from sector.client import Client
from sector.cluster import LocalCluster
from sector.protocol.checksum import BLOCK
from sector.protocol.messages import READ
from tests.cli.conftest import COMMAND, clean_env
from tests.support import (
    PASSWORD,
    USER,
    admin,
    connect,
    random_file,
    root_password,
    sha256_of,
    wait_until,
)

MiB = 1024 * 1024


# --- helpers: where a file's bytes are, and which slave readers go to --------------------


def slave_numbers(cluster: LocalCluster) -> list[int]:
    return sorted(int(p.name[5:]) for p in cluster.processes if p.name.startswith("slave"))


def number_of(cluster: LocalCluster, client: Client, address: tuple[str, int] | str) -> int:
    """The number (slaves/<n>) of the slave serving at ``address``."""
    name = address if isinstance(address, str) else "{}:{}".format(*address)
    # from the ready files (host port pid id): sysinfo shows addresses to administrators only
    [number] = [
        n
        for n in slave_numbers(cluster)
        if ":".join((cluster.layout.slave_dir(n) / "slave.addr").read_text().split()[:2]) == name
    ]
    return number


def object_path(cluster: LocalCluster, number: int, client: Client, path: str) -> Path:
    with client.open(path, READ) as handle:
        grant = handle.grant
    [found] = (cluster.layout.slave_dir(number) / "objects").rglob(
        f"{grant.oid}.{grant.version}.{grant.checksum}"
    )
    return found


def add_replicas(cluster: LocalCluster, client: Client, paths: list[str]) -> None:
    """Wait until every file in ``paths`` has a replica on every slave: the master's
    replication makes them (two replicas wanted, two slaves)."""
    for path in paths:
        wait_until(
            lambda path=path: len(client.stat(path).slaves) == len(slave_numbers(cluster)),
            what=f"every slave to hold {path}",
        )


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as rotten:
        rotten.seek(offset)
        byte = rotten.read(1)
        rotten.seek(offset)
        rotten.write(bytes([byte[0] ^ 0x40]))


def first_replica(cluster: LocalCluster, client: Client, path: str) -> int:
    """The slave a reader of ``path`` is sent to first (the grant's order is stable
    while no transfer is in flight)."""
    with client.open(path, READ) as handle:
        return number_of(cluster, client, handle.grant.replicas[0])


def rot_first_replica(cluster: LocalCluster, client: Client, path: str, offset: int) -> int:
    """Flip a byte of the replica readers go to first; its slave's number."""
    number = first_replica(cluster, client, path)
    flip_byte(object_path(cluster, number, client, path), offset)
    return number


def quarantined(cluster: LocalCluster, number: int) -> list[str]:
    folder = cluster.layout.slave_dir(number) / "quarantine"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@contextmanager
def module_session(cluster: LocalCluster) -> Iterator[None]:
    """PySector's module API logged in to ``cluster``."""
    assert cluster.master_address is not None
    assert sector.init(*cluster.master_address) == 0
    assert sector.login(USER, PASSWORD, str(cluster.layout.cert)) == 0
    try:
        yield
    finally:
        sector.closeclient()


@pytest.fixture
def two_slaves(make_cluster) -> LocalCluster:
    return make_cluster(slaves=2)


# --- bad bytes on one replica -------------------------------------------------------


def test_a_flipped_byte_in_one_replica_never_reaches_a_reader(
    two_slaves: LocalCluster, tmp_path: Path
) -> None:
    """Module read, Client reads at several offsets, ``sector cat`` and download all
    return the right bytes; each bad replica is reported, checked by its slave,
    quarantined there and no longer offered."""
    cluster = two_slaves
    client = connect(cluster)
    data = os.urandom(MiB + 12345)
    rot_at = 3 * BLOCK + 17
    paths = [f"/rot/{name}" for name in ("module", "client", "cat", "download")]
    for path in paths:
        with client.open(path, sector.WRITE) as handle:
            handle.write(data)
    add_replicas(cluster, client, paths)
    rotten = {path: rot_first_replica(cluster, client, path, rot_at) for path in paths}

    with module_session(cluster):
        handle = sector.open("/rot/module", sector.READ)
        assert handle >= 0
        assert sector.read(handle, len(data)) == data
        assert sector.close(handle) == 0

    with client.open("/rot/client", READ) as handle:
        for offset, length in [(rot_at - 5, 10), (0, 100), (rot_at, 1), (len(data) - 7, 7)]:
            handle.seek(offset)
            assert handle.read(length) == data[offset : offset + length]
        buffer = bytearray(2 * BLOCK + 3)
        handle.seek(rot_at - BLOCK)
        assert handle.readinto(buffer) == len(buffer)
        assert buffer == data[rot_at - BLOCK : rot_at + BLOCK + 3]

    cat = subprocess.run(
        [*COMMAND, "cat", "/rot/cat"],
        capture_output=True,
        env=clean_env(cluster.layout.home),
        timeout=120,
    )
    assert (cat.returncode, cat.stderr) == (0, b"")
    assert cat.stdout == data

    client.download("/rot/download", tmp_path / "download")
    assert (tmp_path / "download").read_bytes() == data

    for number in set(rotten.values()):
        wait_until(lambda n=number: quarantined(cluster, n), what="the bad replicas moved aside")
    for path in rotten:  # given up, and made again from the good replica
        add_replicas(cluster, client, [path])
        for number in slave_numbers(cluster):
            assert object_path(cluster, number, client, path).read_bytes() == data
    client.close()


def test_batch_and_asyncio_reads_go_around_a_rotten_first_replica(
    two_slaves: LocalCluster,
) -> None:
    """``read_many`` and ``AsyncClient.read_file`` read from the first replica the
    grant names: one whose bytes fail their sums is given up for the other."""
    cluster = two_slaves
    client = connect(cluster)
    data = os.urandom(3 * BLOCK + 999)
    paths = ["/rot-many/a", "/rot-many/b", "/rot-aio/c"]
    client.write_many((path, data) for path in paths)
    add_replicas(cluster, client, paths)
    for path in paths:
        rot_first_replica(cluster, client, path, BLOCK + 5)

    assert client.read_many(paths[:2]) == [data, data]

    async def read_aio() -> bytes:
        assert cluster.master_address is not None
        async with AsyncClient(*cluster.master_address) as aio:
            await aio.login(USER, PASSWORD, cluster.layout.cert)
            return await aio.read_file(paths[2])

    assert asyncio.run(read_aio()) == data
    client.close()


@pytest.mark.parametrize("where", ["before the range", "inside it", "after it"])
def test_a_large_read_at_odd_offsets_checks_the_blocks_at_both_ends(
    two_slaves: LocalCluster, where: str
) -> None:
    """A read of a few MiB at an offset inside a block is received straight into the
    bytes returned, but its end blocks are still checked whole: a flipped byte in the
    part of a block outside the range asked for still fails the replica over."""
    cluster = two_slaves
    client = connect(cluster)
    data = os.urandom(5 * MiB + 4321)
    offset, length = BLOCK + 1000, 3 * MiB + 777  # both ends inside a block
    rot_at = {
        "before the range": offset - 500,
        "inside it": offset + MiB,
        "after it": offset + length + 30,
    }[where]
    path = f"/rot-odd/{where.replace(' ', '-')}"
    with client.open(path, sector.WRITE) as handle:
        handle.write(data)
    add_replicas(cluster, client, [path])
    rotten = rot_first_replica(cluster, client, path, rot_at)

    with client.open(path, READ) as handle:
        handle.seek(offset)
        assert handle.read(length) == data[offset : offset + length]

    wait_until(lambda: quarantined(cluster, rotten), what="the bad replica moved aside")
    client.close()


def test_fsck_reports_a_flipped_byte_and_the_replica_is_given_up(
    two_slaves: LocalCluster,
) -> None:
    cluster = two_slaves
    client = connect(cluster)
    with client.open("/checked/f", sector.WRITE) as handle:
        handle.write(os.urandom(300_000))
    add_replicas(cluster, client, ["/checked/f"])
    number = rot_first_replica(cluster, client, "/checked/f", 1000)
    damaged_id = (cluster.layout.slave_dir(number) / "slave.id").read_text().strip()

    with admin(cluster) as root:  # which slave it is, is for administrators only
        report = root.fsck("/checked")
    assert report["problems"] == [
        {
            "path": "/checked/f",
            "slave": damaged_id,
            "problem": "damaged",
            "detail": "",
            "repaired": False,
        }
    ]
    assert quarantined(cluster, number)
    # a second look finds the damaged replica gone, not damaged again; and once the
    # replica is made again from the good one, nothing at all
    assert all(p["problem"] != "damaged" for p in client.fsck("/checked")["problems"])
    add_replicas(cluster, client, ["/checked/f"])
    assert client.fsck("/checked")["problems"] == []
    client.close()


def test_fsck_repair_copies_a_damaged_replica_again_before_it_answers(
    two_slaves: LocalCluster,
) -> None:
    """``sector fsck --repair`` (administrators only): when it returns, the damaged
    replica is quarantined and a good copy has taken its place."""
    cluster = two_slaves
    client = connect(cluster)
    data = os.urandom(2 * MiB)
    with client.open("/repaired/f", sector.WRITE) as handle:
        handle.write(data)
    add_replicas(cluster, client, ["/repaired/f"])
    number = rot_first_replica(cluster, client, "/repaired/f", 5 * BLOCK)

    with pytest.raises(errors.SectorPermissionError):
        client.fsck("/repaired", repair=True)
    fsck = subprocess.run(
        [*COMMAND, "fsck", "--repair", "/repaired"],
        capture_output=True,
        text=True,
        env=clean_env(
            cluster.layout.home, SECTOR_USER="root", SECTOR_PASSWORD=root_password(cluster)
        ),
        timeout=120,
    )
    assert fsck.returncode == 0, fsck.stderr
    assert "DAMAGED" in fsck.stdout and "repaired" in fsck.stdout
    assert "1 problem, all repaired" in fsck.stdout
    assert quarantined(cluster, number)
    assert len(client.stat("/repaired/f").slaves) == 2
    assert object_path(cluster, number, client, "/repaired/f").read_bytes() == data
    assert client.fsck("/repaired")["problems"] == []
    client.close()


# --- slaves that die or stall in the middle of a download ------------------------------


def _download_interrupted(
    cluster: LocalCluster,
    tmp_path: Path,
    fault: signal.Signals,
    data_timeout: float,
    streams: int = 1,
) -> None:
    """Download 200 MB; at about a third, send ``fault`` to the slave serving it (with
    several streams: the slave the first one started on)."""
    size = 200 * MiB
    source = tmp_path / "source"
    digest = random_file(source, size)
    client = Client(*cluster.master_address, data_timeout=data_timeout)  # type: ignore[misc]
    client.login(USER, PASSWORD, cluster.layout.cert)
    client.upload(source, "/big")
    source.unlink()
    add_replicas(cluster, client, ["/big"])
    serving = first_replica(cluster, client, "/big")
    pid = cluster.process(f"slave{serving}").popen.pid
    received = 0
    faulted = threading.Event()

    def progress(count: int) -> None:
        nonlocal received
        received += count
        if received >= size // 3 and not faulted.is_set():
            faulted.set()
            os.kill(pid, fault)

    try:
        client.download("/big", tmp_path / "big", progress=progress, streams=streams)
        assert faulted.is_set(), "the fault came before the download finished"
        assert sha256_of(tmp_path / "big") == digest
    finally:
        if fault == signal.SIGSTOP:
            os.kill(pid, signal.SIGCONT)
        client.close()


def test_a_download_continues_on_another_replica_when_its_slave_is_killed(
    two_slaves: LocalCluster, tmp_path: Path
) -> None:
    _download_interrupted(two_slaves, tmp_path, signal.SIGKILL, data_timeout=30.0)


def test_a_download_continues_on_another_replica_when_its_slave_stalls(
    two_slaves: LocalCluster, tmp_path: Path
) -> None:
    """SIGSTOP: the connection stays open and silent; DATA_TIMEOUT moves the reader on."""
    _download_interrupted(two_slaves, tmp_path, signal.SIGSTOP, data_timeout=1.0)


def test_a_download_from_two_replicas_at_once_survives_losing_one(
    two_slaves: LocalCluster, tmp_path: Path
) -> None:
    """streams=2: both replicas send ranges; when one slave dies the other finishes."""
    _download_interrupted(two_slaves, tmp_path, signal.SIGKILL, data_timeout=30.0, streams=2)


# --- every replica gone ----------------------------------------------------------------


def test_with_every_replica_gone_reads_fail_with_a_status_never_an_exception(
    make_cluster,
) -> None:
    cluster = make_cluster(slaves=1)
    client = Client(*cluster.master_address, data_timeout=1.0)  # type: ignore[misc]
    client.login(USER, PASSWORD, cluster.layout.cert)
    data = os.urandom(3 * MiB)
    with client.open("/lonely", sector.WRITE) as handle:
        handle.write(data)
    with module_session(cluster):
        handle = sector.open("/lonely", sector.READ)
        assert sector.read(handle, 10) == data[:10]
        opened = client.open("/lonely", READ)
        cluster.stop_process("slave1", kill=True)

        assert sector.read(handle, 2 * MiB) in (errors.E_CONNECTION, errors.E_RESOURCE)
        with pytest.raises((errors.SectorConnectionError, errors.ResourceError)):
            opened.read(2 * MiB)
        opened.close()
        wait_until(
            lambda: all(s["status"] == "dead" for s in client.sysinfo()["slaves"]),
            what="the master to notice",
        )
        assert sector.open("/lonely", sector.READ) == errors.E_RESOURCE
        with pytest.raises(errors.ResourceError):
            client.open("/lonely", READ)
        assert sector.close(handle) == 0
    client.close()


def test_a_read_from_stalled_slaves_ends_in_bounded_time(make_cluster) -> None:
    cluster = make_cluster(slaves=1)
    client = Client(*cluster.master_address, data_timeout=0.5)  # type: ignore[misc]
    client.login(USER, PASSWORD, cluster.layout.cert)
    with client.open("/stuck", sector.WRITE) as handle:
        handle.write(os.urandom(2 * MiB))
    pid = cluster.process("slave1").popen.pid
    with client.open("/stuck", READ) as handle:
        os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(errors.SectorConnectionError, match="sent nothing in time"):
                handle.read()
        finally:
            os.kill(pid, signal.SIGCONT)
    client.close()


# --- every offset, every length --------------------------------------------------------

#: Three blocks and a bit: ranges inside a block, across boundaries, to the short end.
RANGES_DATA = os.urandom(3 * BLOCK + 1234)


@contextmanager
def stored(cluster: LocalCluster, path: str, data: bytes) -> Iterator[tuple[Client, str]]:
    """A client of ``cluster`` and ``path``, which holds ``data``."""
    client = connect(cluster)
    with client.open(path, sector.WRITE | sector.TRUNC) as handle:
        handle.write(data)
    yield client, path
    client.close()


@pytest.fixture(scope="module")
def ranged_file(cluster: LocalCluster) -> Iterator[tuple[Client, str]]:
    with stored(cluster, "/tests/integrity-ranges", RANGES_DATA) as found:
        yield found


@given(st.integers(0, len(RANGES_DATA)), st.integers(0, len(RANGES_DATA)))
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_range_reads_back_exactly(
    ranged_file: tuple[Client, str], offset: int, length: int
) -> None:
    """readinto fetches with no read-ahead: each example is a checked request to the slave."""
    client, path = ranged_file
    with client.open(path, READ) as handle:
        handle.seek(offset)
        buffer = bytearray(length)
        count = handle.readinto(buffer)
        assert buffer[:count] == RANGES_DATA[offset : offset + length]
        assert count == len(RANGES_DATA[offset : offset + length])


#: Large enough that a read of a MiB or more goes straight to the slave (no read-ahead).
LARGE_RANGES_DATA = os.urandom(4 * MiB + 4321)


@given(st.integers(0, len(LARGE_RANGES_DATA)), st.integers(MiB, 3 * MiB))
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_large_range_reads_back_exactly(
    large_ranged_file: tuple[Client, str], offset: int, length: int
) -> None:
    """read() of a MiB or more at any offset: one request received in place, checked."""
    client, path = large_ranged_file
    with client.open(path, READ) as handle:
        handle.seek(offset)
        assert handle.read(length) == LARGE_RANGES_DATA[offset : offset + length]


@pytest.fixture(scope="module")
def large_ranged_file(cluster: LocalCluster) -> Iterator[tuple[Client, str]]:
    with stored(cluster, "/tests/integrity-large-ranges", LARGE_RANGES_DATA) as found:
        yield found


# --- the scrub ------------------------------------------------------------------------


def test_the_scrub_finds_a_flipped_byte_on_its_own(make_cluster) -> None:
    """No reader, no fsck: the slave's background scrub (SCRUB_RATE, MB/s) finds the
    damage, quarantines the replica and tells the master, which stops offering it."""
    cluster = make_cluster(slaves=1, scrub_rate=50)
    client = connect(cluster)
    data = os.urandom(4 * MiB)
    for name in ("a", "b", "c"):
        with client.open(f"/scrubbed/{name}", sector.WRITE) as handle:
            handle.write(data + name.encode())
    flip_byte(object_path(cluster, 1, client, "/scrubbed/b"), 2 * MiB + 7)
    wait_until(lambda: not client.stat("/scrubbed/b").slaves, what="the scrub to find it")
    assert len(quarantined(cluster, 1)) == 2  # the bytes and their sums
    assert all(client.stat(f"/scrubbed/{name}").slaves for name in ("a", "c"))
    client.close()


# --- copies between slaves are checked too ----------------------------------------------


def test_a_copy_from_a_rotten_replica_is_refused_and_its_source_quarantined(
    make_cluster,
) -> None:
    """Replicas on A (rotted) and B; B dies, so the master copies A's to C. C checks
    each block as it arrives: the bad bytes are never kept, the master hears that A
    sent them and has A check its replica (quarantined); once B is back, the file is
    made whole again from B."""
    cluster = make_cluster(slaves=3)
    client = connect(cluster)
    data = os.urandom(3 * MiB)
    with client.open("/copied/f", sector.WRITE) as handle:
        handle.write(data)
    wait_until(lambda: len(client.stat("/copied/f").slaves) == 2, what="two replicas")
    a, b = (number_of(cluster, client, s) for s in client.stat("/copied/f").slaves)
    [c] = set(slave_numbers(cluster)) - {a, b}
    flip_byte(object_path(cluster, a, client, "/copied/f"), 2 * MiB + 1)

    cluster.stop_process(f"slave{b}", kill=True)
    wait_until(lambda: quarantined(cluster, a), timeout=30, what="A's replica quarantined")
    assert not list((cluster.layout.slave_dir(c) / "objects").rglob("*.*.*")), "nothing kept"

    cluster.start_slave(b)
    wait_until(lambda: len(client.stat("/copied/f").slaves) == 2, what="the file made whole")
    for number in {number_of(cluster, client, s) for s in client.stat("/copied/f").slaves}:
        assert object_path(cluster, number, client, "/copied/f").read_bytes() == data
    client.close()
